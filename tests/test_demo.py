"""`crm demo`: demo users and deterministic demo data for the standard CRM pack."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from engine.demo import DEMO_USERS, generate
from engine.runtime import users
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from engine.runtime.users import check_password
from tests.conftest import ROOT, make_runtime

STANDARD = ROOT / "packs" / "standard_crm"
CUSTOMERS = 30


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2 parameters cost ~0.1 s a hash; the demo hashes a dozen passwords per run."""
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


@pytest.fixture
def crm(db_url: str) -> Iterator[Runtime]:
    """The standard CRM pack, migrated into a fresh database."""
    runtime = make_runtime(db_url, STANDARD)
    yield runtime
    runtime.engine.dispose()


def count(runtime: Runtime, entity: str) -> int:
    table = runtime.table(entity)
    with runtime.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def column(runtime: Runtime, entity: str, *names: str) -> list[Any]:
    table = runtime.table(entity)
    with runtime.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*(table.c[n] for n in names)).order_by(table.c.id))]


def test_demo_users_data_and_todays_to_dos(crm: Runtime) -> None:
    summary = generate(crm, customers=CUSTOMERS, seed=7)
    assert not summary.skipped
    assert [(u.username, status) for u, status in summary.users] == [(u.username, "created") for u in DEMO_USERS]

    # Every demo user signs in with demo-<name> and has the roles of the brief.
    users = {u.username: check_password(crm, u.username, f"demo-{u.username}") for u in DEMO_USERS}
    roles = {name: (user.roles, user.is_admin) for name, user in users.items() if user}
    assert roles == {"admin": (("admin",), True), "manager": (("sales_manager",), False),
                     "sales1": (("salesperson",), False), "sales2": (("salesperson",), False),
                     "marketing1": (("marketing",), False), "service1": (("service_agent",), False)}
    assert check_password(crm, "sales1", "wrong password") is None

    # The organisation: the manager heads East China sales, where sales1 works; sales2 is in North China.
    departments = dict(column(crm, "department", "code", "name"))
    assert departments["SALES-E"] == "华东销售部" and departments["SALES-N"] == "华北销售部"
    employees = {user: dept for user, dept in column(crm, "employee", "user", "department")}
    dept_ids = dict(column(crm, "department", "name", "id"))
    assert employees[users["manager"].id] == employees[users["sales1"].id] == dept_ids["华东销售部"]  # type: ignore[union-attr]
    assert employees[users["sales2"].id] == dept_ids["华北销售部"]  # type: ignore[union-attr]

    # The size asked for, and what the summary says was made.
    assert count(crm, "customer") == summary.counts["customer"] == CUSTOMERS
    for entity in ("contact", "follow_up", "activity", "opportunity", "lead", "product", "campaign"):
        assert count(crm, entity) == summary.counts[entity] > 0, entity
    assert count(crm, "contact") >= CUSTOMERS

    # Customers belong to the salespeople, or to nobody in the pool.
    owners = {owner for owner, in column(crm, "customer", "owner")}
    assert owners <= {users["sales1"].id, users["sales2"].id, users["manager"].id, None}  # type: ignore[union-attr]
    assert all((owner is None) == bool(pooled) for owner, pooled in column(crm, "customer", "owner", "in_pool"))

    # Only option keys and stages the registry knows.
    for entity in crm.registry.entities.values():
        for f in entity.fields_of_type("choice", "stage"):
            valid = {o.key for o in f.picklist.options} if f.picklist else {s.key for s in f.stages}
            used = {value for value, in column(crm, entity.key, f.name)} - {None}
            assert used <= valid, (entity.key, f.name, used - valid)

    # Opportunities across the pipeline, won and lost included.
    stages = {stage for stage, in column(crm, "opportunity", "stage")}
    assert len(stages) >= 4 and {"won", "lost"} <= stages, stages

    # sales1's home page has a follow-up due and a call planned today, visible to sales1.
    as_sales1 = crm.records(users["sales1"].actor())  # type: ignore[union-attr]
    mine = f"owner eq {users['sales1'].id}"  # type: ignore[union-attr]
    due = as_sales1.query("customer", ListQuery(filters=[mine, "next_follow_up_at eq today"]))
    planned = as_sales1.query("activity", ListQuery(filters=[mine, "status eq planned", "planned_start eq today"]))
    assert due.total and planned.total


def test_same_seed_same_data(crm: Runtime, tmp_path: Path) -> None:
    other = make_runtime(f"sqlite:///{tmp_path / 'other.sqlite3'}", STANDARD)
    third = make_runtime(f"sqlite:///{tmp_path / 'third.sqlite3'}", STANDARD)
    try:
        generate(crm, customers=CUSTOMERS, seed=3)
        generate(other, customers=CUSTOMERS, seed=3)
        generate(third, customers=CUSTOMERS, seed=4)
        for entity, fields in {"customer": ("name", "owner", "province", "phone", "next_follow_up_at"),
                               "contact": ("customer", "name", "mobile"),
                               "opportunity": ("name", "stage", "amount", "expected_close_date"),
                               "order_line": ("order", "product", "line_amount")}.items():
            assert column(crm, entity, *fields) == column(other, entity, *fields), entity
        assert column(crm, "customer", "name") != column(third, "customer", "name")
    finally:
        other.engine.dispose()
        third.engine.dispose()


def test_rerun_skips_and_force_adds_without_duplicating(crm: Runtime) -> None:
    generate(crm, customers=10, seed=1)
    again = generate(crm, customers=10, seed=1)
    assert again.skipped and not again.counts
    assert [status for _, status in again.users] == ["existing"] * len(DEMO_USERS)
    assert count(crm, "customer") == 10

    more = generate(crm, customers=5, seed=2, force=True)
    assert more.counts["customer"] == 5 and count(crm, "customer") == 15
    # Users and reference data are reused, not made twice.
    assert count(crm, "crm_user") == len(DEMO_USERS)
    assert count(crm, "department") == 5 and count(crm, "product") == 20 and count(crm, "campaign") == 8
    assert "product" not in more.counts and "employee" not in more.counts


def test_command_prints_users_and_is_idempotent(tmp_path: Path) -> None:
    # SQLite only: the tests above cover PostgreSQL; this one is about the command's output.
    db_url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    env = {**os.environ, "CRM_DATABASE_URL": db_url, "CRM_PACKS": str(STANDARD), "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli", "demo", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    first = run("--customers", "8", "--seed", "5")
    assert first.returncode == 0, first.stderr
    assert "customer" in first.stdout and "sales1       demo-sales1" in first.stdout
    second = run("--customers", "8")
    assert second.returncode == 0, second.stderr
    assert "already exists" in second.stdout and "demo-manager" in second.stdout


def test_a_packs_demo_runs_once_in_one_transaction(db_url: str) -> None:
    from engine.demo import generate_pack
    from engine.runtime.audit import entries
    from tests.conftest import FIXTURES

    runtime = make_runtime(db_url, FIXTURES / "sales_basic", FIXTURES / "treed")
    try:
        demo = generate_pack(runtime, "treed", seed=3)
        assert demo is not None and demo.counts == {"account": 1, "stakeholder": 4}
        assert [u.username for u in demo.users] == ["treerep"]
        assert check_password(runtime, "treerep", "demo-treerep") is not None
        rep = check_password(runtime, "treerep", "demo-treerep")
        assert rep is not None and rep.roles == ("rep",)
        tree = runtime.records().query("stakeholder", ListQuery(filters=["reports_to is_not_empty"])).rows
        assert len(tree) == 3
        assert generate_pack(runtime, "treed") is None  # once per database
        assert runtime.records().query("account", ListQuery()).total == 1
        assert [e["detail"]["pack"] for e in entries(runtime, events=["demo_loaded"])] == ["treed"]
        with pytest.raises(LookupError, match="ships no demo data"):
            generate_pack(runtime, "sales_basic")
        with pytest.raises(LookupError, match="is not active"):
            generate_pack(runtime, "field_service")
    finally:
        runtime.engine.dispose()


def test_a_failing_pack_demo_leaves_nothing_behind(db_url: str, tmp_path: Path) -> None:
    import shutil

    from engine.demo import generate_pack
    from tests.conftest import FIXTURES

    pack = tmp_path / "treed"
    shutil.copytree(FIXTURES / "treed", pack)
    script = pack / "demo.py"
    script.write_text(script.read_text(encoding="utf-8") + "    raise RuntimeError('boom')\n", encoding="utf-8")
    runtime = make_runtime(db_url, FIXTURES / "sales_basic", pack)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            generate_pack(runtime, "treed")
        assert runtime.records().query("account", ListQuery()).total == 0
        assert check_password(runtime, "treerep", "demo-treerep") is None  # the user went too
        script.write_text(script.read_text(encoding="utf-8").replace("    raise RuntimeError('boom')\n", ""),
                          encoding="utf-8")
        sys.modules.pop("crm_pack_demo.treed", None)  # the script changed: import it again
        assert generate_pack(runtime, "treed") is not None  # not marked as loaded: it runs again
    finally:
        runtime.engine.dispose()
