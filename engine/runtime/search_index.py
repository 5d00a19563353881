"""Search indexes: what lets `QueryBuilder.search_clause` find `%term%` without scanning tables.

Search is a case-insensitive substring match of every word in any of an entity's `search:` text
fields. No B-tree index serves `LIKE '%term%'`, so each database gets its own substring index:

- **PostgreSQL**: the `pg_trgm` extension and one GIN trigram index (`gin_trgm_ops`) per searched
  column, named `trgm_<table>__<column>`. The query is unchanged (`col ILIKE '%term%'` per column,
  OR-ed); the planner combines the columns' indexes with a BitmapOr and rechecks every row, so
  results are exactly those of the plain scan. Terms of fewer than 3 characters have no trigram,
  and the planner scans instead. When the extension cannot be created (not installed on the
  server, or no privilege), search keeps the plain scans and a log line says so.
- **SQLite**: one FTS5 table per searched entity, `crm_<table>__fts`, with the `trigram`
  tokenizer over the searched columns, as an external-content table (`content='<table>'`,
  `content_rowid='id'`: it stores only the index). Three triggers (`crm_<table>__fts_ai`, `_ad`,
  `_au`) keep it in step with every write, whatever path it takes (record service, bulk insert,
  plain UPDATE). A term of 3+ characters narrows the rows to `id IN (SELECT rowid FROM fts WHERE
  fts MATCH ...)`; the `LIKE` conditions stay as the exact test, so results do not change.

The wanted structures follow the tables' `info["search"]` (set by tables.py from the registry);
`plan` compares them with the database and returns operations that `migrate` runs after its
alembic operations: created for new databases, added with a backfill (`'rebuild'`) for existing
ones, dropped and built again when the set of searched columns changes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import time
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("engine.search")

MIN_TERM = 3  # trigram indexes can only serve terms of at least 3 characters
FEW_CANDIDATES = 1000  # SQLite: narrow to the FTS candidates only when at most this many match
STATE_TTL = 5.0  # seconds a process trusts what it read of the SQLite search tables
CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA {schema}"
_BARE = re.compile(r"^[a-z][a-z0-9_]*$")
_FTS_RESERVED = {"rowid", "rank"}


# -- names ----------------------------------------------------------------------------------------

def searched_columns(table: sa.Table) -> tuple[str, ...]:
    """The text columns `table` is searched on (from the registry, via tables.py)."""
    return tuple(table.info.get("search", ()))


def fts_name(table: str) -> str:
    # "__fts" at the end: no FTS table of one entity can be a shadow table (`_data`, `_idx`, ...)
    # of another's, whatever the entity keys are.
    return f"crm_{table}__fts"


def is_search_object(name: str | None) -> bool:
    """Whether a table or index name is one of ours here (kept away from alembic's comparison)."""
    return bool(name) and (str(name).startswith("trgm_") or (str(name).startswith("crm_") and "__fts" in str(name)))


def trigram_index_name(table: str, column: str) -> str:
    name = f"trgm_{table}__{column}"
    if len(name) > 60:  # PostgreSQL truncates at 63; keep names stable and distinct
        name = f"{name[:51]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


@lru_cache(maxsize=1)
def sqlite_trigram_supported() -> bool:
    """FTS5 with the trigram tokenizer (SQLite 3.34+, compiled with FTS5)."""
    try:
        with sqlite3.connect(":memory:") as probe:
            probe.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='trigram')")
        return True
    except sqlite3.Error:
        return False


def fts_eligible(columns: tuple[str, ...]) -> bool:
    return bool(columns) and all(_BARE.match(c) and c not in _FTS_RESERVED for c in columns)


# -- SQLite: the FTS table and its triggers --------------------------------------------------------

def _q(name: str) -> str:
    return f'"{name}"'  # names are checked to be [a-z][a-z0-9_]*, but may be keywords ("order")


def fts_statements(table: str, columns: tuple[str, ...]) -> list[str]:
    """CREATE statements of the FTS table and the triggers keeping it in step (exact text: the
    database stores it, and a later plan compares it)."""
    fts, base = _q(fts_name(table)), _q(table)
    cols = ", ".join(_q(c) for c in columns)
    new = ", ".join(f"new.{_q(c)}" for c in columns)
    old = ", ".join(f"old.{_q(c)}" for c in columns)
    delete = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    insert = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new});"
    trigger = _q(fts_name(table) + "_{}")
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{table}', content_rowid='id', tokenize='trigram')",
        f"CREATE TRIGGER {trigger.format('ai')} AFTER INSERT ON {base} BEGIN {insert} END",
        f"CREATE TRIGGER {trigger.format('ad')} AFTER DELETE ON {base} BEGIN {delete} END",
        # Only changes of searched columns touch the index (not every version/updated_at bump).
        f"CREATE TRIGGER {trigger.format('au')} AFTER UPDATE OF {cols} ON {base} BEGIN {delete} {insert} END",
    ]


def fts_drop(table: str) -> list[str]:
    fts = fts_name(table)
    return [f"DROP TRIGGER IF EXISTS {_q(f'{fts}_{k}')}" for k in ("ai", "ad", "au")] + [f"DROP TABLE IF EXISTS {_q(fts)}"]


def _fts_columns(create_sql: str) -> tuple[str, ...]:
    inside = create_sql[create_sql.index("(") + 1:]
    return tuple(p.strip().strip('"') for p in inside.split(",") if "=" not in p and p.strip())


def sqlite_state(conn: Connection) -> dict[str, list[str]]:
    """{base table: [stored CREATE statements of its FTS table and triggers]} as in the database."""
    rows = conn.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name LIKE 'crm\\_%\\_\\_fts%' ESCAPE '\\' "
        "AND sql IS NOT NULL").all()
    state: dict[str, list[str]] = {}
    for type_, name, tbl_name, sql in rows:
        if type_ == "trigger":
            state.setdefault(tbl_name, []).append(sql)
        elif type_ == "table" and sql.startswith("CREATE VIRTUAL TABLE") and name.endswith("__fts"):
            state.setdefault(name[len("crm_"):-len("__fts")], []).append(sql)
    return state


# -- PostgreSQL: pg_trgm and the trigram indexes ---------------------------------------------------

def pg_trigram_schema(conn: Connection) -> str | None:
    """The schema pg_trgm is installed in, or None."""
    return conn.exec_driver_sql(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'").scalar()


def pg_trigram_creatable(conn: Connection) -> str | None:
    """The schema pg_trgm would be created in, when the server has it and we may create it."""
    row = conn.exec_driver_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'), "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR ("
        " COALESCE((SELECT v.trusted FROM pg_available_extension_versions v JOIN pg_available_extensions a"
        "  ON a.name = v.name AND a.default_version = v.version WHERE v.name = 'pg_trgm'), false)"
        " AND has_database_privilege(current_database(), 'CREATE')), "
        # `public` when we may create objects there: an extension in a schema dropped later
        # (a test's or a tenant's) would take every trigram index of the database with it.
        "CASE WHEN to_regnamespace('public') IS NOT NULL AND has_schema_privilege('public', 'CREATE')"
        " THEN 'public' ELSE current_schema() END").one()
    available, allowed, schema = row
    return str(schema) if available and allowed and schema else None


def pg_trigram_indexes(conn: Connection) -> dict[str, dict[str, str]]:
    """{table: {index name: column}} of our trigram indexes in the current schema."""
    rows = conn.exec_driver_sql(
        "SELECT t.relname, i.relname, a.attname FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] "
        "WHERE t.relnamespace = current_schema()::regnamespace AND left(i.relname, 5) = 'trgm_'").all()
    out: dict[str, dict[str, str]] = {}
    for table, index, column in rows:
        out.setdefault(table, {})[index] = column
    return out


# -- the plan ---------------------------------------------------------------------------------------

@dataclass
class SearchOp:
    """One change of the search structures: a few statements run in order."""

    description: str
    statements: list[str] = field(default_factory=list)
    extension: str | None = None  # create pg_trgm in this schema (may fail: then skip trigram ops)
    trigram: bool = False  # needs pg_trgm


def plan(conn: Connection, metadata: sa.MetaData, existing_tables: set[str]) -> list[SearchOp]:
    """The operations that bring the database's search structures to `metadata`'s.

    `existing_tables`: the entity tables that exist or that the same migration creates.
    """
    wanted = {name: searched_columns(t) for name, t in metadata.tables.items()
              if name in existing_tables and searched_columns(t)}
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return _plan_sqlite(conn, wanted)
    if dialect == "postgresql":
        return _plan_postgresql(conn, wanted)
    return []


def _plan_sqlite(conn: Connection, wanted: dict[str, tuple[str, ...]]) -> list[SearchOp]:
    state = sqlite_state(conn)
    result: list[SearchOp] = []
    supported = sqlite_trigram_supported()
    for table in sorted(set(state) | set(wanted)):
        columns = wanted.get(table, ())
        want = fts_statements(table, columns) if supported and fts_eligible(columns) else []
        have = state.get(table, [])
        if sorted(have) == sorted(want):
            continue
        statements = fts_drop(table) if have else []
        if want:
            statements += want + [f"INSERT INTO {_q(fts_name(table))}({_q(fts_name(table))}) VALUES ('rebuild')"]
            verb = "rebuild" if have else "create"
            result.append(SearchOp(f"{verb} search index {fts_name(table)} ({', '.join(columns)})", statements))
        else:
            result.append(SearchOp(f"drop search index {fts_name(table)}", statements))
    return result


_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _plan_postgresql(conn: Connection, wanted: dict[str, tuple[str, ...]]) -> list[SearchOp]:
    result: list[SearchOp] = []
    schema = pg_trigram_schema(conn)
    if schema is None and wanted:
        schema = pg_trigram_creatable(conn)
        if schema is None:
            _warn_once("pg_trgm", "pg_trgm is not available or may not be created here: "
                                  "search uses plain ILIKE scans (no trigram indexes)")
            return []
        result.append(SearchOp(f"create extension pg_trgm in schema {schema}", extension=schema))
    have = pg_trigram_indexes(conn)
    preparer = conn.dialect.identifier_preparer
    for table in sorted(set(have) | set(wanted)):
        want = {trigram_index_name(table, c): c for c in wanted.get(table, ())}
        present = have.get(table, {})
        for index in sorted(set(present) - set(want)):
            result.append(SearchOp(f"drop search index {index}", [f"DROP INDEX {preparer.quote(index)}"]))
        for index in sorted(set(want) - set(present)):
            assert schema is not None
            result.append(SearchOp(
                f"create search index {index} on {table}",
                [f"CREATE INDEX {preparer.quote(index)} ON {preparer.quote(table)} "
                 f"USING gin ({preparer.quote(want[index])} {preparer.quote(schema)}.gin_trgm_ops)"],
                trigram=True))
    return result


def apply(conn: Connection, operations: list[SearchOp]) -> None:
    """Run the operations in `conn`'s transaction; a pg_trgm that cannot be created is logged and
    its indexes are skipped (search then scans, as before), never an error."""
    trigram_ok = True
    for op in operations:
        if op.extension is not None:
            trigram_ok = _create_extension(conn, op.extension)
            continue
        if op.trigram and not trigram_ok:
            continue
        for statement in op.statements:
            conn.exec_driver_sql(statement)
    forget(conn.engine)


def _create_extension(conn: Connection, schema: str) -> bool:
    quoted = conn.dialect.identifier_preparer.quote(schema)
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(CREATE_EXTENSION.format(schema=quoted))
        return True
    except sa.exc.DBAPIError as exc:
        # Another process may have created it at the same moment (unique violation): then use it.
        if pg_trigram_schema(conn) is not None:
            return True
        _warn_once("pg_trgm", f"could not create extension pg_trgm ({exc.orig!s}".strip() +
                   "): search uses plain ILIKE scans (no trigram indexes)")
        return False


def render(operations: list[SearchOp]) -> str:
    """The SQL of the operations, for review (`crm db migrate --plan`, the studio)."""
    out = []
    for op in operations:
        if op.extension is not None:
            out.append(CREATE_EXTENSION.format(schema=op.extension) + ";")
        out += [s + ";" for s in op.statements]
    return "\n\n".join(out) + ("\n" if out else "")


# -- what queries may use ----------------------------------------------------------------------------

# Weak keys: a disposed engine (tests make hundreds) takes its entry with it.
_state: weakref.WeakKeyDictionary[Engine, tuple[float, dict[str, tuple[str, ...]]]] = weakref.WeakKeyDictionary()


def forget(engine: Engine) -> None:
    _state.pop(engine, None)


def fts_columns(engine: Engine, table: str) -> tuple[str, ...]:
    """The columns the SQLite FTS table of `table` indexes (empty: none, or not SQLite).

    Read from the database, not the registry, so that a database not yet migrated (or a SQLite
    without FTS5) simply searches without the index. Cached per engine for a few seconds.
    """
    if engine.dialect.name != "sqlite":
        return ()
    now = time.monotonic()
    cached = _state.get(engine)
    if cached is None or now - cached[0] > STATE_TTL:
        with engine.connect() as conn:
            found: dict[str, tuple[str, ...]] = {}
            for base, sqls in sqlite_state(conn).items():
                creates = [s for s in sqls if s.startswith("CREATE VIRTUAL TABLE")]
                if creates and len(sqls) == 4:  # the table and its three triggers
                    found[base] = _fts_columns(creates[0])
        cached = _state[engine] = (now, found)
    return cached[1].get(table, ())


def fts_match(columns: list[str], terms: list[str]) -> str:
    """The FTS5 query: every term (3+ characters) as a phrase within the given columns."""
    scope = "{" + " ".join(columns) + "}"
    return " AND ".join(f'{scope} : "{t.replace(chr(34), chr(34) * 2)}"' for t in terms)


def fts_candidates(engine: Engine, table: str, columns: list[str], terms: list[str]) -> Any:
    """A subquery of the FTS table's rowids matching `terms`, or None when more than
    FEW_CANDIDATES rows match.

    Narrowing to the candidates pays when they are few: the page reads them by id and sorts them.
    A word found in many rows is better served the old way, walking the list's sort index and
    testing LIKE until the page is full, which stops early exactly because matches are common;
    materialising thousands of candidates first would be slower (429 ms against 5 ms for 有限公司
    over 100k customers). One cheap probe (the FTS query, stopped after FEW_CANDIDATES + 1 rows)
    tells the two apart.
    """
    fts = fts_name(table)
    match = fts_match(columns, terms)
    with engine.connect() as conn:
        found = conn.exec_driver_sql(
            f'SELECT count(*) FROM (SELECT 1 FROM {_q(fts)} WHERE {_q(fts)} MATCH ? LIMIT ?)',
            (match, FEW_CANDIDATES + 1)).scalar_one()
    if found > FEW_CANDIDATES:
        return None
    source = sa.table(fts, sa.column("rowid"))
    return sa.select(source.c.rowid).where(sa.literal_column(_q(fts)).op("MATCH")(match))
