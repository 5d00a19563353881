"""Hooks: registration (HookRegistry, a pack's hooks.py, crm.plugins entry points), events and
their order, changes made by hooks, rejections and rollback of the whole transaction."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.plugins import HookContext, hook
from engine.runtime.errors import Rejected, ValidationFailed
from engine.runtime.hooks import EVENTS, HookRegistry
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from tests.runtime.conftest import HOOKED, SALES, codes

Build = Callable[..., Runtime]


def _registry(*functions: Callable[[HookContext], Any]) -> HookRegistry:
    hooks = HookRegistry()
    for fn in functions:
        for entity, event in fn.__crm_hooks__:  # type: ignore[attr-defined]
            hooks.add(entity, event, fn)
    return hooks


def test_event_order_within_writes(build_runtime: Build) -> None:
    seen: list[tuple[str, str, str | None]] = []

    @hook("*", *EVENTS)
    def record_events(ctx: HookContext) -> None:
        seen.append((ctx.entity.key, ctx.event, ctx.stage_field))

    rt = build_runtime(hooks=_registry(record_events))
    rec = rt.records()
    acct = rec.create("account", {"name": "A"})
    assert seen == [("account", e, None) for e in ("before_validate", "after_validate", "before_save", "after_save")]
    seen.clear()
    deal = rec.create("deal", {"name": "D", "account": acct["id"]})
    assert [e for k, e, _ in seen if k == "deal"] == [
        "before_validate", "after_validate", "before_stage_change", "before_save", "after_save", "after_stage_change"]
    assert {s for k, e, s in seen if "stage" in e} == {"stage"}
    seen.clear()
    rec.update("deal", deal["id"], {"name": "D2"}, version=1)
    assert [e for k, e, _ in seen if k == "deal"] == ["before_validate", "after_validate", "before_save", "after_save"]
    seen.clear()
    rec.update("deal", deal["id"], {"stage": "lost", "lost_reason": "price"}, version=2)
    assert [e for k, e, _ in seen if k == "deal"] == [
        "before_validate", "after_validate", "before_stage_change", "before_save", "after_save", "after_stage_change"]
    seen.clear()
    rec.delete("deal", deal["id"])
    assert [e for k, e, _ in seen if k == "deal"] == ["before_delete", "after_delete"]


def test_before_save_changes_are_saved_and_after_save_sees_the_record(build_runtime: Build) -> None:
    saved: list[dict[str, Any]] = []

    @hook("account", "before_save")
    def shout(ctx: HookContext) -> None:
        ctx.record["name"] = ctx.record["name"].upper()
        if ctx.is_new:
            ctx.record["notes"] = "created by hook"

    @hook("account", "after_save")
    def remember(ctx: HookContext) -> None:
        saved.append({"id": ctx.record["id"], "name": ctx.record["name"], "code": ctx.record["code"],
                      "new": ctx.is_new, "old": ctx.old and ctx.old["name"], "changed": ctx.changed("name")})

    rec = build_runtime(hooks=_registry(shout, remember)).records()
    acct = rec.create("account", {"name": "acme"})
    assert (acct["name"], acct["notes"]) == ("ACME", "created by hook")
    assert saved == [{"id": acct["id"], "name": "ACME", "code": acct["code"], "new": True, "old": None, "changed": True}]
    rec.update("account", acct["id"], {"name": "acme two"}, version=1)
    assert saved[-1]["name"] == "ACME TWO" and saved[-1]["old"] == "ACME" and not saved[-1]["new"]
    history = {h["field"]: h["new_value"] for h in rec.history("account", acct["id"]) if h["action"] == "create"}
    assert history["name"] == '"ACME"'


def test_values_set_before_validate_are_validated(build_runtime: Build) -> None:
    @hook("account", "before_validate")
    def bad(ctx: HookContext) -> None:
        ctx.record["employees"] = None
        ctx.record["name"] = ""

    rec = build_runtime(hooks=_registry(bad)).records()
    with pytest.raises(ValidationFailed) as caught:
        rec.create("account", {"name": "A"})
    assert codes(caught.value, "name") == ["required"]


def test_stage_change_hooks(build_runtime: Build) -> None:
    calls: list[tuple[str, str | None, Any, Any]] = []

    @hook("deal", "before_stage_change", "after_stage_change")
    def on_stage(ctx: HookContext) -> None:
        calls.append((ctx.event, ctx.stage_field, ctx.old and ctx.old["stage"], ctx.record["stage"]))

    rec = build_runtime(hooks=_registry(on_stage)).records()
    acct = rec.create("account", {"name": "A"})
    deal = rec.create("deal", {"name": "D", "account": acct["id"]})
    rec.update("deal", deal["id"], {"stage": "proposal", "amount": 1}, version=1)
    assert calls[-2:] == [("before_stage_change", "stage", "qualify", "proposal"),
                          ("after_stage_change", "stage", "qualify", "proposal")]
    rec.update("deal", deal["id"], {"amount": 2}, version=2)
    assert len(calls) == 4  # no stage change, no stage hooks


def test_rejections_and_rollback(runtime: Runtime, build_runtime: Build) -> None:
    @hook("deal", "before_delete")
    def keep(ctx: HookContext) -> None:
        if ctx.record["name"] == "keep":
            ctx.reject({"en": "Kept.", "zh": "保留。"})

    @hook("account", "before_save")
    def no_spam(ctx: HookContext) -> None:
        if "spam" in ctx.record["name"]:
            ctx.reject({"en": "No spam.", "zh": "禁止垃圾信息。"}, field="name")

    @hook("account", "after_save")
    def side_effect_then_fail(ctx: HookContext) -> None:
        if ctx.record["name"] == "explode":
            # a write through ctx.records joins the same transaction ...
            ctx.records.create("account", {"name": "written by the hook"})
            raise RuntimeError("boom")  # ... and goes when the hook fails

    rt = build_runtime(hooks=_registry(keep, no_spam, side_effect_then_fail))
    rec = rt.records()
    with pytest.raises(Rejected) as caught:
        rec.create("account", {"name": "spam inc"})
    assert caught.value.errors["name"][0].text("zh") == "禁止垃圾信息。"
    assert caught.value.as_dict("en")["fields"] == {"name": ["No spam."]}
    with pytest.raises(RuntimeError):
        rec.create("account", {"name": "explode"})
    assert rec.query("account").rows == []
    acct = rec.create("account", {"name": "fine"})
    assert acct["code"].endswith("00001")  # the failed creates gave their numbers back
    deal = rec.create("deal", {"name": "keep", "account": acct["id"]})
    with pytest.raises(Rejected) as rejected:
        rec.delete("deal", deal["id"])
    assert rejected.value.errors[""][0].text("en") == "Kept."
    assert rec.get("deal", deal["id"])["deleted_at"] is None
    assert rec.get("account", acct["id"])["deal_count"] == 1
    with rt.engine.connect() as conn:
        table = rt.table("crm_history")
        actions = conn.execute(sa.select(table.c.action).where(table.c.entity == "deal")).scalars().all()
    assert "delete" not in actions


def test_hook_writes_with_the_callers_transaction(build_runtime: Build) -> None:
    @hook("deal", "after_save")
    def add_line(ctx: HookContext) -> None:
        if ctx.is_new:
            ctx.records.create("deal_line", {"deal": ctx.record["id"], "product": "setup fee", "price": 100})

    rt = build_runtime(hooks=_registry(add_line))
    rec = rt.records()
    acct = rec.create("account", {"name": "A"})
    deal = rec.create("deal", {"name": "D", "account": acct["id"]})
    assert str(deal["total"]) == "100.00"  # the rollup saw the hook's line
    # with a caller's own transaction, a later failure rolls back the hook's writes as well
    with pytest.raises(ValidationFailed), rt.engine.begin() as conn:
        service = rt.records(conn=conn)
        service.create("deal", {"name": "E", "account": acct["id"]})
        service.create("deal", {"name": "", "account": acct["id"]})
    assert len(rec.query("deal_line").rows) == 1


def test_registry_refuses_unknown_events() -> None:
    with pytest.raises(ValueError):
        hook("account", "before_lunch")
    with pytest.raises(ValueError):
        hook("account")
    with pytest.raises(ValueError):
        HookRegistry().add("account", "whenever", lambda ctx: None)


def test_pack_hooks_py_example(build_runtime: Build) -> None:
    """The example pack of docs/plugins.md, loaded the way the application loads it."""
    from engine.metadata import load_registry

    registry = load_registry([SALES, HOOKED])
    rt = build_runtime(packs=[SALES, HOOKED], hooks=HookRegistry.load(registry.packs, use_entry_points=False))
    rec = rt.records()
    acct = rec.create("account", {"name": "  Acme    Trading   Ltd "})
    assert acct["name"] == "Acme Trading Ltd"  # tidy_name
    deal = rec.create("deal", {"name": "Big one", "account": acct["id"], "stage": "proposal", "amount": 10})
    with pytest.raises(Rejected) as caught:
        rec.update("deal", deal["id"], {"stage": "lost", "lost_reason": "no"}, version=1)
    assert codes(caught.value, "lost_reason") == ["rejected"]
    won = rec.update("deal", deal["id"], {"stage": "won"}, version=1)
    assert rec.get("account", acct["id"])["hot"] is True  # won_deal_makes_account_hot
    with pytest.raises(Rejected) as caught:
        rec.update("deal", deal["id"], {"amount": 11}, version=won["version"])  # closed_deals_are_frozen
    assert caught.value.errors[""][0].text("en") == "Deal Big one is closed and cannot change."
    assert caught.value.errors[""][0].text("zh") == "商机 Big one 已关闭，不能修改。"
    with pytest.raises(Rejected) as caught:
        rec.delete("deal", deal["id"])  # keep_won_deals, with the pack's own message
    assert caught.value.errors[""][0].text("zh") == "商机 Big one 已赢单，不能删除。"
    assert [r["id"] for r in rec.query("deal", ListQuery(filters=["stage eq won"])).rows] == [deal["id"]]


def test_hooks_from_entry_points(build_runtime: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution registers hooks under `crm.plugins`: a module, or a callable."""
    (tmp_path / "crm_test_plugin.py").write_text(textwrap.dedent('''
        from engine.plugins import HookContext, hook

        @hook("account", "before_save")
        def stamp(ctx: HookContext) -> None:
            ctx.record["notes"] = (ctx.record.get("notes") or "") + "[module]"

        def register(hooks) -> None:
            def also(ctx: HookContext) -> None:
                ctx.record["notes"] = (ctx.record.get("notes") or "") + "[callable]"
            hooks.add("account", "before_save", also)
    '''))
    dist = tmp_path / "crm_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crm-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[crm.plugins]\nmodule = crm_test_plugin\ncallable = crm_test_plugin:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from engine.metadata import load_registry

    hooks = HookRegistry.load(load_registry([SALES]).packs)
    rec = build_runtime(hooks=hooks).records()
    notes = rec.create("account", {"name": "A"})["notes"]
    assert sorted(notes.replace("][", "] [").split()) == ["[callable]", "[module]"]
