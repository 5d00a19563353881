"""Schema sync: bring the database to the registry's tables with alembic's comparison and operations.

Only additive operations are applied (create table, add column, create index, and dropping an
index of ours that the metadata no longer asks for). A table or column the registry no longer
has is reported and kept: data is never dropped by a migration.
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

ADDITIVE = (ops.CreateTableOp, ops.AddColumnOp, ops.CreateIndexOp)


@dataclass
class MigrationPlan:
    operations: list[ops.MigrateOperation] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # tables/columns in the database but not the registry

    @property
    def empty(self) -> bool:
        return not self.operations

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
        return out


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

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False, "include_object": include_object})
        script = produce_migrations(context, metadata)
    result = MigrationPlan()
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


def ddl(engine: Engine, migration: MigrationPlan) -> str:
    """The SQL the plan would run, for review; nothing is executed."""
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name=engine.dialect.name,
                                         opts={"as_sql": True, "output_buffer": buffer})
    operations = Operations(context)
    for op in migration.operations:
        operations.invoke(op)
    return buffer.getvalue()
