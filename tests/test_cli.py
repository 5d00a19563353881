"""The `crm` command end to end, as a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.runtime import search_index
from tests.conftest import FIXTURES, ROOT

CRM = [sys.executable, "-m", "engine.cli"]


def crm(tmp_path: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRM_DATABASE_URL": db_url, "CRM_PACKS": str(FIXTURES / "sales_basic"),
           "PYTHONPATH": str(ROOT)}
    return subprocess.run(CRM + list(args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_record_commands_round_trip(tmp_path: Path, db_url: str) -> None:
    plan = crm(tmp_path, db_url, "db", "migrate", "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "CREATE TABLE account" in plan.stdout
    assert crm(tmp_path, db_url, "db", "migrate").returncode == 0
    again = crm(tmp_path, db_url, "db", "migrate")
    assert "up to date" in again.stdout
    # A database that lost only a search index (say, a bulk load killed midway) gets it back,
    # and the count says so.
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            for statement in search_index.fts_drop("account"):
                conn.exec_driver_sql(statement)
        else:
            conn.exec_driver_sql(f"DROP INDEX {search_index.trigram_index_name('account', 'name')}")
    engine.dispose()
    rebuilt = crm(tmp_path, db_url, "db", "migrate")
    assert "search index" in rebuilt.stdout and "Applied 1 change(s)." in rebuilt.stdout, rebuilt.stdout

    user = crm(tmp_path, db_url, "user", "create", "rep1", "--password", "correct-horse-1", "--role", "rep")
    assert user.returncode == 0, user.stderr
    assert json.loads(user.stdout)["roles"] == ["rep"]

    created = crm(tmp_path, db_url, "record", "create", "account", "--data", '{"name": "华为", "revenue": "1,000"}')
    assert created.returncode == 0, created.stderr
    account = json.loads(created.stdout)
    assert account["id"] == 1 and account["version"] == 1 and account["revenue"] == "1000.00"
    assert account["code"].startswith("KH") and account["created_at"]

    bad = crm(tmp_path, db_url, "record", "create", "account", "--data", '{"email": "nope"}')
    assert bad.returncode == 1
    fields = json.loads(bad.stderr)["fields"]
    assert set(fields) == {"email", "name"}

    updated = crm(tmp_path, db_url, "record", "update", "account", "1", "--data", '{"hot": true}', "--version", "1")
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["version"] == 2
    stale = crm(tmp_path, db_url, "record", "update", "account", "1", "--data", '{"hot": false}', "--version", "1")
    assert stale.returncode == 1, stale.stdout
    assert json.loads(stale.stderr)["error"] == "Conflict", stale.stderr

    crm(tmp_path, db_url, "record", "create", "account", "--data", '{"name": "Acme", "industry": "it"}')
    listed = crm(tmp_path, db_url, "record", "list", "account", "--filter", "industry eq it", "--sort", "-name")
    rows = json.loads(listed.stdout)["rows"]
    assert [r["name"] for r in rows] == ["Acme"]
    bad_filter = crm(tmp_path, db_url, "record", "list", "account", "--filter", "name; DROP TABLE account eq 1")
    assert bad_filter.returncode == 1 and "BadQuery" in bad_filter.stderr

    deleted = crm(tmp_path, db_url, "record", "delete", "account", "1")
    assert json.loads(deleted.stdout)["deleted_at"]
    trash = json.loads(crm(tmp_path, db_url, "record", "list", "account", "--trash").stdout)["rows"]
    assert [r["id"] for r in trash] == [1]
    restored = crm(tmp_path, db_url, "record", "restore", "account", "1")
    assert json.loads(restored.stdout)["deleted_at"] is None
    got = crm(tmp_path, db_url, "record", "get", "account", "999")
    assert got.returncode == 1 and "NotFound" in got.stderr


@pytest.mark.parametrize("args", [["record", "get", "nosuch", "1"], ["record", "create", "account", "--data", "[1]"]])
def test_caller_mistakes_exit_1_without_traceback(tmp_path: Path, args: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    crm(tmp_path, url, "db", "migrate")
    result = crm(tmp_path, url, *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_pack_list_and_unknown_pack(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    listed = crm(tmp_path, url, "pack", "list")
    assert listed.stdout.startswith("sales_basic\t1.0.0")
    env = {**os.environ, "CRM_DATABASE_URL": url, "CRM_PACKS": "no_such_pack", "PYTHONPATH": str(ROOT)}
    missing = subprocess.run(CRM + ["pack", "list"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "no_such_pack" in missing.stderr


def test_record_import_all_or_nothing(tmp_path: Path, db_url: str) -> None:
    assert crm(tmp_path, db_url, "db", "migrate").returncode == 0
    good = tmp_path / "good.csv"
    good.write_text("Name,行业,Employees\n华为,信息技术,100\n小米,,20\n", encoding="utf-8")
    done = crm(tmp_path, db_url, "record", "import", "account", str(good))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["created"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Employees\n中兴,10\n,-5\n", encoding="utf-8")
    refused = crm(tmp_path, db_url, "record", "import", "account", str(bad))
    assert refused.returncode == 1
    problems = json.loads(refused.stdout)["problems"]
    assert {p["line"] for p in problems} == {3} and json.loads(refused.stdout)["created"] == 0
    listed = json.loads(crm(tmp_path, db_url, "record", "list", "account").stdout)
    assert sorted(r["name"] for r in listed["rows"]) == ["华为", "小米"]
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    failed = crm(tmp_path, db_url, "record", "import", "account", str(empty))
    assert failed.returncode != 0 and "The file is empty" in failed.stdout + failed.stderr
