"""Schema sync: additive changes to tables that hold rows, removed fields kept, idempotence, DDL preview."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from engine.runtime import migrate
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from tests.runtime.conftest import SALES

Build = Callable[..., Runtime]
SIZE = {"kind": "entity", "data": {"extend": "account", "fields": {
    "x_size": {"type": "integer", "label": {"en": "Size", "zh": "规模"}, "index": True}}}}


def _columns(rt: Runtime, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(rt.engine).get_columns(table)}


def test_add_a_field_to_a_table_with_rows(build_runtime: Build) -> None:
    old = build_runtime()
    first = old.records().create("account", {"name": "Kept"})
    new = build_runtime(overlay=[SIZE], migrate=False)
    plan = new.migration_plan()
    assert "add column account.x_size" in plan.describe()
    assert any(line.startswith("create index") for line in plan.describe())
    assert plan.kept == []
    new.migrate()
    assert "x_size" in _columns(new, "account")
    rec = new.records()
    kept = rec.get("account", first["id"])
    assert kept["name"] == "Kept" and kept["x_size"] is None and kept["code"] == first["code"]
    rec.update("account", first["id"], {"x_size": 500}, version=1)
    second = rec.create("account", {"name": "New", "x_size": 20})
    assert [r["id"] for r in rec.query("account", ListQuery(filters=["x_size gt 100"])).rows] == [first["id"]]
    assert [r["id"] for r in rec.query("account", ListQuery(sort=["x_size"])).rows] == [second["id"], first["id"]]
    assert new.migration_plan().empty  # a second run has nothing to do
    assert new.migrate().empty


def test_removed_field_is_reported_and_kept(build_runtime: Build, tmp_path: Path) -> None:
    wide = build_runtime(overlay=[SIZE])
    acct = wide.records().create("account", {"name": "A", "x_size": 7})
    # the same pack without the field: a copy with `notes` removed from account, and no overlay
    pack = tmp_path / "sales_basic"
    shutil.copytree(SALES, pack)
    path = pack / "entities" / "account.yaml"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("notes:")))
    narrow = build_runtime(packs=[pack], migrate=False)
    plan = narrow.migration_plan()
    assert sorted(plan.kept) == ["column account.notes", "column account.x_size"]
    narrow.migrate()
    assert {"notes", "x_size"} <= _columns(narrow, "account")  # nothing dropped
    rec = narrow.records()
    got = rec.get("account", acct["id"])
    assert "x_size" not in got and got["name"] == "A"
    rec.create("account", {"name": "B"})  # inserts work without the old columns
    with wide.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT x_size FROM account WHERE id = :i"), {"i": acct["id"]}).scalar() == 7
    # and the field can come back with its data
    again = build_runtime(overlay=[SIZE])
    assert again.records().get("account", acct["id"])["x_size"] == 7


def test_fresh_database_and_second_migrate(build_runtime: Build) -> None:
    rt = build_runtime(migrate=False)
    plan = rt.migration_plan()
    tables = {line.split()[-1] for line in plan.describe() if line.startswith("create table")}
    assert {"account", "deal", "deal_line", "crm_user", "crm_history", "crm_counter"} <= tables
    rt.migrate()
    assert rt.migrate().empty
    assert rt.migration_plan().operations == []


def test_ddl_preview_applies_nothing(build_runtime: Build) -> None:
    rt = build_runtime(migrate=False)
    text = migrate.ddl(rt.engine, rt.migration_plan())
    assert "CREATE TABLE account" in text and "CREATE TABLE deal_line" in text
    assert "CREATE INDEX" in text or "CREATE UNIQUE INDEX" in text
    assert not sa.inspect(rt.engine).has_table("account")
    rt.migrate()
    rt.records().create("account", {"name": "A"})
    bigger = build_runtime(overlay=[SIZE], migrate=False)
    text = migrate.ddl(bigger.engine, bigger.migration_plan())
    assert "ALTER TABLE account ADD COLUMN x_size" in text
    assert "x_size" not in _columns(bigger, "account")
