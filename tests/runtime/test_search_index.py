"""Search indexes (runtime/search_index.py): SQLite FTS5 trigram tables kept by triggers,
PostgreSQL trigram GIN indexes; found rows after every kind of write, search lists changed by a
pack or the studio, hidden fields, short terms, and plans that really use the index."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.runtime import migrate, search_index
from engine.runtime.query import ListQuery, QueryBuilder
from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import create_user
from tests.runtime.conftest import SALES

Build = Callable[..., Runtime]
SEARCH_NOTES = {"kind": "entity", "data": {"extend": "account", "search": ["notes"]}}
HIDE_NOTES = {"kind": "role", "data": {"extend": "rep", "fields": {"account.notes": "hidden"}}}


def found(rec: RecordService, words: str, entity: str = "account") -> set[str]:
    return {r["name"] for r in rec.query(entity, ListQuery(search=words, limit=500, count=False)).rows}


def structures(rt: Runtime) -> dict[str, tuple[str, ...]]:
    """{table: searched columns} as the database's search structures have them."""
    with rt.engine.connect() as conn:
        if rt.engine.dialect.name == "sqlite":
            return {t: tuple(sorted(search_index._fts_columns(next(s for s in sqls if s.startswith("CREATE VIRTUAL")))))
                    for t, sqls in search_index.sqlite_state(conn).items()}
        return {t: tuple(sorted(ix.values())) for t, ix in search_index.pg_trigram_indexes(conn).items()}


def search_sql(rt: Runtime, entity: str, words: str) -> sa.Select[tuple[int]]:
    qb = QueryBuilder(rt, rt.registry.entity(entity), rt.records().value_context())
    clause = qb.search_clause(words)
    assert clause is not None
    return sa.select(qb.table.c.id).where(qb.table.c.deleted_at.is_(None), clause)


def test_every_write_path_keeps_the_index(rec: RecordService, runtime: Runtime) -> None:
    assert structures(runtime)["account"] == ("code", "name")
    acme = rec.create("account", {"name": "Acme Hydraulics"})
    bulk = rec.bulk_create("account", [{"name": "Hydra Pumps"}, {"name": "华信机械有限公司"}, {"name": "Zeta"}])
    assert found(rec, "hydra") == {"Acme Hydraulics", "Hydra Pumps"}
    assert found(rec, "HYDRAULIC") == {"Acme Hydraulics"}  # case-insensitive
    assert found(rec, "华信机械") == {"华信机械有限公司"}
    assert found(rec, acme["code"]) == {"Acme Hydraulics"}  # every search field
    rec.update("account", bulk[2], {"name": "Zeta Hydraulics"}, version=1)
    assert found(rec, "hydraulics") == {"Acme Hydraulics", "Zeta Hydraulics"}
    assert found(rec, "zeta") == {"Zeta Hydraulics"}
    rec.update("account", bulk[0], {"name": "Pumps Only"}, version=1)
    assert found(rec, "hydra") == {"Acme Hydraulics", "Zeta Hydraulics"}  # the old words are gone
    rec.delete("account", acme["id"])
    assert found(rec, "hydraulics") == {"Zeta Hydraulics"}  # in the recycle bin: not found
    rec.purge("account", acme["id"])
    assert found(rec, "hydraulics") == {"Zeta Hydraulics"}
    # a plain UPDATE outside the record service is followed too (triggers, not service code)
    with runtime.engine.begin() as conn:
        conn.execute(sa.text("UPDATE account SET name = 'Quokka Ltd' WHERE id = :i"), {"i": bulk[1]})
    assert found(rec, "quokka") == {"Quokka Ltd"} and found(rec, "华信机械") == set()


def test_every_word_in_any_field_and_odd_characters(rec: RecordService) -> None:
    first = rec.create("account", {"name": "Acme Rockets"})
    rec.create("account", {"name": "Acme 100% Pure_Water \"Co\""})
    assert found(rec, f"rockets {first['code']}") == {"Acme Rockets"}  # words in different fields
    assert found(rec, "acme rockets") == {"Acme Rockets"}
    assert found(rec, "rockets pure") == set()
    assert found(rec, "100%") == {"Acme 100% Pure_Water \"Co\""}
    assert found(rec, "e%w") == set() and found(rec, "e_w") != set() and found(rec, "pure_w") == {"Acme 100% Pure_Water \"Co\""}
    assert found(rec, '"co"') == {"Acme 100% Pure_Water \"Co\""}
    assert found(rec, 'ro" OR "x') == set()  # FTS query syntax in a word is just text
    assert found(rec, "NEAR(acme") == set()


def test_a_common_word_is_searched_without_the_candidates(rec: RecordService, runtime: Runtime,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rec.bulk_create("account", [{"name": f"Common {w}"} for w in ("alpha", "bravo", "charlie", "delta", "echo")]
                    + [{"name": "Rare"}])
    monkeypatch.setattr(search_index, "FEW_CANDIDATES", 3)
    assert len(found(rec, "common")) == 5  # more than 3 candidates: the LIKE walk alone
    assert found(rec, "rare") == {"Rare"} and found(rec, "common delt") == {"Common delta"}
    if runtime.engine.dialect.name == "sqlite":
        assert "MATCH" not in str(search_sql(runtime, "account", "common"))
        assert "MATCH" in str(search_sql(runtime, "account", "rare"))


def test_postgresql_plans_each_pattern(runtime: Runtime) -> None:
    """The pattern is a literal on PostgreSQL, so a prepared statement's generic plan (blind to
    the word) never replaces the plan that uses the trigram indexes."""
    stmt = search_sql(runtime, "account", "o'neil 50%")
    sql = str(stmt.compile(runtime.engine, compile_kwargs={"render_postcompile": True}))
    if runtime.engine.dialect.name == "postgresql":
        assert "o''neil" in sql and "50\\%" in sql  # escaped by the dialect
    else:
        assert "neil" not in sql
    rec = runtime.records()
    rec.create("account", {"name": "O'Neil 50% Ltd"})
    assert found(rec, "o'neil 50%") == {"O'Neil 50% Ltd"} and found(rec, "o'neil 50_") == set()


def test_short_terms_still_match(rec: RecordService) -> None:
    rec.create("account", {"name": "华信机械"})
    rec.create("account", {"name": "Beta Ox"})
    assert found(rec, "华信") == {"华信机械"}
    assert found(rec, "华") == {"华信机械"}
    assert found(rec, "ox") == {"Beta Ox"}
    assert found(rec, "ox beta") == {"Beta Ox"}  # a short word with a long one
    assert found(rec, "华信 机械") == {"华信机械"}


def test_a_changed_search_list_is_followed_by_migrate(build_runtime: Build, tmp_path: Path) -> None:
    base = build_runtime()
    rec = base.records()
    rec.create("account", {"name": "Plain", "notes": "zephyr wind"})
    assert found(rec, "zephyr") == set()
    # the studio's way: an overlay adds notes to the search fields
    wider = build_runtime(overlay=[SEARCH_NOTES], migrate=False)
    plan = wider.migration_plan()
    assert any("search index" in line for line in plan.describe()) and plan.kept == []
    ddl = migrate.ddl(wider.engine, plan)
    assert 'fts5("name", "code", "notes"' in ddl or "trgm_account__notes ON account USING gin" in ddl
    wider.migrate()
    assert structures(wider)["account"] == ("code", "name", "notes")
    assert wider.migration_plan().empty
    assert found(wider.records(), "zephyr") == {"Plain"}  # rows already there are found (backfill)
    wider.records().create("account", {"name": "Second", "notes": "zephyrs"})
    assert found(wider.records(), "zephyr") == {"Plain", "Second"}
    # a pack change: the account searches its name only
    pack = tmp_path / "sales_basic"
    shutil.copytree(SALES, pack)
    path = pack / "entities" / "account.yaml"
    path.write_text(path.read_text().replace("search: [name, code]", "search: [name]"))
    narrow = build_runtime(packs=[pack], migrate=False)
    assert not narrow.migration_plan().empty
    narrow.migrate()
    assert structures(narrow)["account"] == ("name",)
    assert narrow.migration_plan().empty
    rec = narrow.records()
    code = rec.query("account", ListQuery(search="plain")).rows[0]["code"]
    assert found(rec, "plain") == {"Plain"} and found(rec, code) == set() and found(rec, "zephyr") == set()
    rec.create("account", {"name": "Third plain"})
    assert found(rec, "plain") == {"Plain", "Third plain"}


def test_an_existing_database_gets_its_index_on_migrate(rec: RecordService, runtime: Runtime) -> None:
    rec.create("account", {"name": "Existing Row"})
    with runtime.engine.begin() as conn:  # a database from before the search indexes
        if runtime.engine.dialect.name == "sqlite":
            for statement in search_index.fts_drop("account"):
                conn.exec_driver_sql(statement)
        else:
            for index in search_index.pg_trigram_indexes(conn)["account"]:
                conn.exec_driver_sql(f"DROP INDEX {index}")
    search_index.forget(runtime.engine)
    assert found(rec, "existing") == {"Existing Row"}  # without the index: the plain scan
    plan = runtime.migration_plan()
    assert plan.operations == [] and plan.kept == []
    assert [line for line in plan.describe() if "account" in line]
    runtime.migrate()
    assert "account" in structures(runtime) and runtime.migration_plan().empty
    assert found(rec, "existing") == {"Existing Row"}
    if runtime.engine.dialect.name == "sqlite":
        assert "MATCH" in str(search_sql(runtime, "account", "existing"))


def test_hidden_fields_are_not_searchable(build_runtime: Build) -> None:
    rt = build_runtime(overlay=[SEARCH_NOTES, HIDE_NOTES])
    rep = create_user(rt, "rep1", "correct horse 1", roles=("rep",))
    mine = rt.records(rep.actor())
    rt.records().create("account", {"name": "Rep's account", "notes": "secret zephyr", "owner": rep.id})
    assert found(rt.records(), "zephyr") == {"Rep's account"}
    assert found(mine, "zephyr") == set()
    assert found(mine, "zephyr rep's") == set()
    assert found(mine, "rep's") == {"Rep's account"}


def test_explain_uses_the_index(build_runtime: Build) -> None:
    rt = build_runtime()
    rec = rt.records()
    rec.bulk_create("account", [{"name": f"Firm {i:04d}"} for i in range(300)] + [{"name": "华信机械"}])
    stmt = search_sql(rt, "account", "华信机械")
    with rt.engine.begin() as conn:
        compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        if rt.engine.dialect.name == "sqlite":
            plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            assert "VIRTUAL TABLE INDEX" in plan and "crm_account__fts" in plan, plan
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a small table: show it *can* be used
            plan = " | ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert "Bitmap Index Scan on trgm_account__name" in plan, plan
        assert [r[0] for r in conn.execute(stmt)] == [rec.query("account", ListQuery(search="华信机械")).rows[0]["id"]]
    short = search_sql(rt, "account", "华信")  # too short for trigrams: LIKE only, never the index
    with rt.engine.begin() as conn:
        if rt.engine.dialect.name == "sqlite":
            assert "MATCH" not in str(short)
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            compiled = short.compile(conn, compile_kwargs={"literal_binds": True})
            assert "trgm_" not in " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
        assert len(conn.execute(short).all()) == 1


def test_without_pg_trgm_search_scans_and_says_so(build_runtime: Build, db_url: str,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    rt = build_runtime(migrate=False)
    monkeypatch.setattr(search_index, "pg_trigram_schema", lambda conn: None)
    monkeypatch.setattr(search_index, "_warned", set())
    # not creatable: no trigram operations, a log line, and the plan is complete without them
    monkeypatch.setattr(search_index, "pg_trigram_creatable", lambda conn: None)
    with caplog.at_level(logging.WARNING, logger="engine.search"):
        rt.migrate()
    assert "pg_trgm" in caplog.text and structures(rt) == {} and rt.migration_plan().empty
    rt.records().create("account", {"name": "Scanned Firm"})
    assert found(rt.records(), "scanned") == {"Scanned Firm"}
    # creatable by the look of it, but CREATE EXTENSION fails: logged, indexes skipped, no error
    monkeypatch.setattr(search_index, "_warned", set())
    monkeypatch.setattr(search_index, "CREATE_EXTENSION", "CREATE EXTENSION no_such_extension SCHEMA {schema}")
    with rt.engine.begin() as conn, caplog.at_level(logging.WARNING, logger="engine.search"):
        search_index.apply(conn, [search_index.SearchOp("create extension", extension="public"),
                                  search_index.SearchOp("index", ["SELECT 1/0"], trigram=True)])
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1  # the transaction is still usable
    assert "could not create extension pg_trgm" in caplog.text
