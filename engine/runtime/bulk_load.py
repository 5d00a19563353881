"""Loading many records into empty tables: build their indexes once at the end, not row by row.

Every row inserted into a table with ~30 secondary indexes (customer) and a search index pays for
each of them, one B-tree descent and page write per index, and on SQLite one FTS5 trigram insert
through a trigger. For a data set of millions of rows that is most of the load's time. Building
an index over the finished table is one sort, several times cheaper.

`deferred_indexes(runtime, entities)` drops the secondary indexes and the search structures of
those of the `entities` whose tables are still empty, lets the caller load, and then rebuilds
everything with the engine's own migration (`Runtime.migrate`), which finds exactly what is
missing. Kept throughout are what the load itself needs or what guards data: unique indexes,
and the indexes that rollups look children up by (their `via` reference).

Meant for fresh databases (`crm demo`, the benchmark's data sets); tables that hold rows keep their
indexes. Each step commits on its own: if the process dies mid-load, the next `crm db migrate`
(or `crm serve`, which migrates on start) builds the indexes again. Queries against the tables
while the load runs would scan, so nothing else should be using them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from engine.runtime import search_index

if TYPE_CHECKING:
    from engine.runtime.service import Runtime

log = logging.getLogger("engine.bulk_load")


def _kept(runtime: Runtime, table: sa.Table) -> set[str]:
    """Names of the indexes of `table` the load must keep: unique ones and rollup lookups."""
    vias = {f.options["via"] for f in runtime.rollups.get(table.name, [])}
    return {str(ix.name) for ix in table.indexes
            if ix.unique or next(iter(ix.columns)).name in vias}


def empty_tables(runtime: Runtime, entities: Iterable[str]) -> list[str]:
    with runtime.engine.connect() as conn:
        return [key for key in entities
                if conn.execute(sa.select(sa.literal(1)).select_from(runtime.table(key)).limit(1)).first() is None]


@contextmanager
def deferred_indexes(runtime: Runtime, entities: Iterable[str]) -> Iterator[list[str]]:
    """Drop the deferrable indexes of the still-empty tables of `entities`, yield those tables'
    names, and rebuild the indexes afterwards, also when the load fails."""
    tables = empty_tables(runtime, entities)
    _drop(runtime, tables)
    try:
        yield tables
    finally:
        if tables:
            started = time.perf_counter()
            runtime.migrate()
            log.info("rebuilt the indexes of %s in %.1f s", ", ".join(tables), time.perf_counter() - started)


def _drop(runtime: Runtime, tables: list[str]) -> None:
    if not tables:
        return
    with runtime.engine.begin() as conn:
        inspector = sa.inspect(conn)
        for name in tables:
            table = runtime.table(name)
            present = {ix["name"] for ix in inspector.get_indexes(name)}
            keep = _kept(runtime, table)
            for index in table.indexes:
                if index.name in present and index.name not in keep:
                    index.drop(conn)
        if conn.dialect.name == "sqlite":
            state = search_index.sqlite_state(conn)
            for name in tables:
                if name in state:
                    for statement in search_index.fts_drop(name):
                        conn.exec_driver_sql(statement)
        elif conn.dialect.name == "postgresql":
            trigram = search_index.pg_trigram_indexes(conn)
            quote = conn.dialect.identifier_preparer.quote
            for name in tables:
                for trigram_index in trigram.get(name, {}):
                    conn.exec_driver_sql(f"DROP INDEX {quote(trigram_index)}")
    search_index.forget(runtime.engine)
