"""Batch writes (`RecordService.create_many`): create()'s steps for many rows at once, hooks run
step by step with their prefetch functions, the row-by-row fallback for hooks that are not
batch-safe, errors keyed by row; and fresh bulk loads that build their indexes afterwards
(`bulk_load.deferred_indexes`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from engine.plugins import HookContext, hook
from engine.runtime import bulk_load, search_index
from engine.runtime.errors import ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from engine.runtime.users import User
from tests.runtime.test_hooks import _registry

Build = Callable[..., Runtime]
TAX_ID = {"kind": "entity", "data": {"extend": "account", "fields": {
    "x_tax_id": {"type": "string", "unique": True, "label": {"en": "Tax id", "zh": "税号"}}}}}


def _history(rt: Runtime, record_id: int) -> list[tuple[str, str | None, str | None]]:
    history = rt.table("crm_history")
    with rt.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(history.c.action, history.c.field, history.c.comment).where(
            history.c.entity == "account", history.c.record_id == record_id))]  # type: ignore[misc]


def test_create_many_runs_each_step_for_all_rows_with_one_prefetch(build_runtime: Build) -> None:
    calls: list[tuple[str, Any]] = []

    def prefetch_names(contexts: list[HookContext]) -> None:
        calls.append(("prefetch", [c.record["name"] for c in contexts]))
        assert contexts[0].batch is not None
        contexts[0].batch["taken"] = {"Taken"}

    @hook("account", "before_save", prefetch=prefetch_names)
    def refuse_taken(ctx: HookContext) -> None:
        calls.append(("hook", ctx.record["name"]))
        if ctx.record["name"] in (ctx.batch or {}).get("taken", ()):
            ctx.reject("that name is taken", field="name")
        ctx.record["website"] = f"https://{ctx.record['name'].lower()}.example"

    @hook("account", "after_save", batch=True)
    def warn_big(ctx: HookContext) -> None:
        assert ctx.record["id"] and ctx.record["code"]
        if (ctx.record.get("employees") or 0) > 100:
            ctx.warn("a big one")

    rt = build_runtime(hooks=_registry(refuse_taken, warn_big))
    rec = rt.records()
    saved = rec.create_many("account", [{"name": "Alpha", "employees": "500"}, {"name": "Beta"}], comment="import")
    assert calls == [("prefetch", ["Alpha", "Beta"]), ("hook", "Alpha"), ("hook", "Beta")]
    assert [r["website"] for r in saved] == ["https://alpha.example", "https://beta.example"]
    assert [len(r.get("_warnings", [])) for r in saved] == [1, 0]
    stored = rec.get("account", saved[0]["id"])
    assert (stored["name"], stored["employees"], stored["website"]) == ("Alpha", 500, "https://alpha.example")
    assert saved[1]["code"] > saved[0]["code"]  # autonumbers as one block, in row order
    assert _history(rt, saved[0]["id"]) == [("create", None, "import")]

    # A row a hook rejects, a row with a wrong value: both reported by row; nothing is saved.
    calls.clear()
    with pytest.raises(ValidationFailed) as caught:
        rec.create_many("account", [{"name": "Gamma"}, {"name": "Taken"}, {"name": "Delta", "employees": "many"}])
    assert set(caught.value.errors) == {"1.name", "2.employees"}
    assert ("hook", "Delta") not in calls  # a row with a wrong value does not reach the hooks
    assert rec.query("account", ListQuery(filters=["name in Gamma,Delta"])).rows == []


def test_create_many_validates_references_and_unique_values_per_row(build_runtime: Build) -> None:
    rt = build_runtime(overlay=[TAX_ID])
    rec = rt.records()
    kept = rec.create("account", {"name": "Kept", "x_tax_id": "T-1"})
    gone = rec.create("account", {"name": "Gone"})
    rec.delete("account", gone["id"])
    with pytest.raises(ValidationFailed) as caught:
        rec.create_many("account", [{"name": "A", "x_tax_id": "T-1"}, {"name": "B", "x_tax_id": "T-2"},
                                    {"name": "C", "x_tax_id": "T-2"}, {"name": "", "x_tax_id": "T-3"}])
    errors = {k: [m.code for m in v] for k, v in caught.value.errors.items()}
    assert errors == {"0.x_tax_id": ["not_unique"], "2.x_tax_id": ["not_unique"], "3.name": ["required"]}
    with pytest.raises(ValidationFailed) as caught:
        rec.create_many("deal", [{"name": "D1", "account": kept["id"]}, {"name": "D2", "account": gone["id"]}])
    assert {k: [m.code for m in v] for k, v in caught.value.errors.items()} == {"1.account": ["no_such_record"]}
    # the rollups of the parents follow a batch
    rec.create_many("deal", [{"name": "D1", "account": kept["id"]}, {"name": "D2", "account": kept["id"]}])
    assert rec.get("account", kept["id"])["deal_count"] == 2


def test_create_many_checks_permissions_per_row(build_runtime: Build, alice: User, bob: User) -> None:
    rt = build_runtime()
    as_alice = rt.records(alice.actor())
    mine = as_alice.create("account", {"name": "Mine"})
    theirs = rt.records().create("account", {"name": "Theirs", "owner": bob.id})
    with pytest.raises(ValidationFailed) as caught:
        as_alice.create_many("deal", [{"name": "ok", "account": mine["id"]},
                                      {"name": "not visible", "account": theirs["id"]},
                                      {"name": "given away", "account": mine["id"], "owner": bob.id}])
    assert set(caught.value.errors) == {"1.account", "2.owner"}


def test_hooks_that_are_not_batch_safe_get_each_row_saved_before_the_next(build_runtime: Build) -> None:
    @hook("account", "before_save")
    def numbered(ctx: HookContext) -> None:
        # reads what the rows before it saved: only correct row by row
        count = ctx.records.query("account", ListQuery(limit=1, titles=())).total
        ctx.record["notes"] = f"#{count + 1}"

    rt = build_runtime(hooks=_registry(numbered))
    assert not rt.hooks.batch_safe("account", ("before_save",))
    saved = rt.records().create_many("account", [{"name": "A"}, {"name": "B"}, {"name": "C"}])
    assert [r["notes"] for r in saved] == ["#1", "#2", "#3"]
    with pytest.raises(ValidationFailed) as caught:
        rt.records().create_many("account", [{"name": "D"}, {"name": "E", "employees": "x"}])
    assert set(caught.value.errors) == {"1.employees"}
    assert rt.records().query("account", ListQuery(filters=["name eq D"])).rows == []


def _index_names(rt: Runtime, table: str) -> set[str]:
    with rt.engine.connect() as conn:
        return {str(ix["name"]) for ix in sa.inspect(conn).get_indexes(table)}


def test_tables_that_hold_rows_keep_their_indexes(build_runtime: Build) -> None:
    rt = build_runtime()
    rt.records().create("account", {"name": "Seed"})
    full = _index_names(rt, "account")
    with bulk_load.deferred_indexes(rt, ["account", "deal"]) as deferred:
        assert deferred == ["deal"]
        assert _index_names(rt, "account") == full


def test_a_fresh_load_keeps_unique_and_rollup_indexes_and_search_works_after(build_runtime: Build) -> None:
    rt = build_runtime()
    full = {"account": _index_names(rt, "account"), "deal": _index_names(rt, "deal")}
    with bulk_load.deferred_indexes(rt, ["account", "deal"]) as deferred:
        assert deferred == ["account", "deal"]
        during = _index_names(rt, "account")
        assert during < full["account"]
        assert "ux_account_code" in during  # unique: kept
        assert any(name.startswith("ix_deal_account") for name in _index_names(rt, "deal"))  # rollups look up by it
        if rt.engine.dialect.name == "sqlite":
            with rt.engine.connect() as conn:
                assert "account" not in search_index.sqlite_state(conn)
        ids = rt.records().bulk_create("account", [{"name": f"上海华信{n}号"} for n in range(50)])
        rt.records().bulk_create("deal", [{"name": "D", "account": ids[0], "amount": 5}])
    assert {"account": _index_names(rt, "account"), "deal": _index_names(rt, "deal")} == full
    assert rt.migration_plan().empty
    found = rt.records().query("account", ListQuery(search="华信7号", titles=())).rows
    assert [r["name"] for r in found] == ["上海华信7号"]
    assert rt.records().get("account", ids[0])["deal_count"] == 1


def test_a_failed_load_still_gets_its_indexes_back(build_runtime: Build) -> None:
    rt = build_runtime()
    full = _index_names(rt, "account")
    with pytest.raises(ValidationFailed), bulk_load.deferred_indexes(rt, ["account"]):
        rt.records().bulk_create("account", [{"name": ""}])
    assert _index_names(rt, "account") == full
    assert rt.migration_plan().empty
