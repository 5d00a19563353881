"""Schema sync: bring the database to the registry's tables with alembic's comparison and operations.

Only additive operations are applied (create table, add column, create index, and dropping an
index of ours that the metadata no longer asks for). A table or column the registry no longer
has is reported and kept: data is never dropped by a migration.

The search indexes (search_index.py: SQLite FTS5 tables with their triggers, PostgreSQL trigram
indexes) are planned and applied alongside, after alembic's operations; alembic never sees them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from sqlalchemy.engine import Engine

from engine.runtime import search_index

ADDITIVE = (ops.CreateTableOp, ops.AddColumnOp, ops.CreateIndexOp)


@dataclass
class MigrationPlan:
    operations: list[ops.MigrateOperation] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # tables/columns in the database but not the registry
    search: list[search_index.SearchOp] = field(default_factory=list)  # run after `operations`

    @property
    def empty(self) -> bool:
        return not self.operations and not self.search

    def describe(self) -> list[str]:
        out = []
        for op in self.operations:
            if isinstance(op, ops.CreateTableOp):
                out.append(f"create table {op.table_name}")
            elif isinstance(op, ops.AddColumnOp):
                out.append(f"add column {op.table_name}.{op.column.name}")
            elif isinstance(op, ops.CreateIndexOp):
                out.append(f"create index {op.index_name} on {op.table_name}")
            elif isinstance(op, ops.DropIndexOp):
                out.append(f"drop index {op.index_name}")
        return out + [op.description for op in self.search]


def _flatten(items: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in items:
        if isinstance(item, ops.ModifyTableOps | ops.UpgradeOps):
            flat += _flatten(item.ops)
        else:
            flat.append(item)
    return flat


def plan(engine: Engine, metadata: sa.MetaData) -> MigrationPlan:
    ours = set(metadata.tables)

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return True
        table = getattr(obj, "table", None)
        return table is None or table.name in ours or (reflected and table.name in ours)

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        # The search indexes' tables (SQLite FTS5 and its shadow tables) and trigram indexes are
        # search_index's: alembic would report them as tables to drop and indexes to remove.
        return not (type_ in ("table", "index") and search_index.is_search_object(name))

    result = MigrationPlan()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False, "include_object": include_object,
                                                         "include_name": include_name})
        script = produce_migrations(context, metadata)
        existing = set(sa.inspect(conn).get_table_names())
        result.search = search_index.plan(conn, metadata, existing | {
            op.table_name for op in _flatten(script.upgrade_ops.ops if script.upgrade_ops else [])
            if isinstance(op, ops.CreateTableOp)})
    assert script.upgrade_ops is not None
    for op in _flatten(script.upgrade_ops.ops):
        if isinstance(op, ADDITIVE):
            result.operations.append(op)
        elif isinstance(op, ops.DropIndexOp) and op.table_name in ours and str(op.index_name).startswith(("ix_", "ux_")):
            result.operations.append(op)
        elif isinstance(op, ops.DropTableOp):
            if op.table_name not in ("alembic_version",):
                result.kept.append(f"table {op.table_name}")
        elif isinstance(op, ops.DropColumnOp):
            result.kept.append(f"column {op.table_name}.{op.column_name}")
    # Tables first, then columns, then index changes: an index may use a new column.
    order = {ops.CreateTableOp: 0, ops.AddColumnOp: 1, ops.DropIndexOp: 2, ops.CreateIndexOp: 3}
    result.operations.sort(key=lambda o: order.get(type(o), 9))
    return result


def apply(engine: Engine, migration: MigrationPlan) -> None:
    if migration.empty:
        return
    with engine.begin() as conn:
        operations = Operations(MigrationContext.configure(conn))
        for op in migration.operations:
            operations.invoke(op)
        search_index.apply(conn, migration.search)


def ddl(engine: Engine, migration: MigrationPlan) -> str:
    """The SQL the plan would run, for review; nothing is executed."""
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name=engine.dialect.name,
                                         opts={"as_sql": True, "output_buffer": buffer})
    operations = Operations(context)
    for op in migration.operations:
        operations.invoke(op)
    return buffer.getvalue() + search_index.render(migration.search)
