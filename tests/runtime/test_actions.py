"""Record actions, hook warnings, pack settings and scheduled jobs (the `actioned` test pack)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.runtime.errors import Forbidden, NotFound, Rejected, ValidationFailed
from engine.runtime.hooks import HookRegistry
from engine.runtime.service import Runtime
from engine.runtime.users import create_user
from tests.conftest import FIXTURES
from tests.runtime.conftest import SALES

ACTIONED = FIXTURES / "actioned"


@pytest.fixture
def rt(build_runtime: Callable[..., Runtime]) -> Runtime:
    from engine.metadata import load_registry

    registry = load_registry([SALES, ACTIONED])
    return build_runtime([SALES, ACTIONED], hooks=HookRegistry.load(registry.packs, use_entry_points=False))


def test_actions_are_declared_and_compiled(rt: Runtime) -> None:
    account = rt.registry.entity("account")
    heat, give = account.action("heat"), account.action("give_to")
    assert heat is not None and heat.bulk and heat.when == ("hot eq false",) and heat.permission == "edit"
    assert give is not None and [f.name for f in give.inputs] == ["user", "note", "close_on"] and give.inputs[0].required
    assert account.list.highlight == ("hot eq true",)


def test_an_action_runs_with_permission_when_and_setting(rt: Runtime) -> None:
    rep = create_user(rt, "rep1", "demo-rep1", roles=("rep",))
    records = rt.records(rep.actor())
    mine = [records.create("account", {"name": f"A{i}", "phone": "010-12345678"})["id"] for i in range(3)]
    outcome = records.run_action("account", mine[0], "heat")
    assert outcome["message"].text("en") == "Marked hot." and rt.records().get("account", mine[0])["hot"]
    with pytest.raises(ValidationFailed) as caught:  # `when`: only accounts that are not hot yet
        records.run_action("account", mine[0], "heat")
    assert "does not apply" in caught.value.errors[""][0].text("en")
    records.run_action("account", mine[1], "heat")
    with pytest.raises(Rejected):  # the pack's setting caps hot accounts at 2
        records.run_action("account", mine[2], "heat")
    rt.set_setting("max_hot_accounts", "3")
    assert rt.setting("max_hot_accounts") == 3
    records.run_action("account", mine[2], "heat")
    with pytest.raises(ValidationFailed):
        rt.set_setting("max_hot_accounts", "many")
    other = rt.records().create("account", {"name": "Not mine", "phone": "010-12345678"})
    with pytest.raises(NotFound):  # no read access: no hint that it exists
        records.run_action("account", other["id"], "heat")
    with pytest.raises(NotFound):
        records.run_action("account", mine[0], "no_such_action")


def test_action_inputs_are_validated_and_the_action_is_one_transaction(rt: Runtime) -> None:
    rep = create_user(rt, "rep1", "demo-rep1", roles=("rep",))
    boss = create_user(rt, "boss", "demo-boss1", roles=("rep",))
    account = rt.records().create("account", {"name": "Acme", "owner": rep.id, "phone": "010-12345678"})
    with pytest.raises(Forbidden):  # reps may not assign
        rt.records(rep.actor()).run_action("account", account["id"], "give_to", {"user": boss.id})
    system = rt.records()
    with pytest.raises(ValidationFailed) as caught:
        system.run_action("account", account["id"], "give_to", {"note": "x" * 30, "bogus": 1})
    assert set(caught.value.errors) == {"user", "note", "bogus"}
    outcome = system.run_action("account", account["id"], "give_to", {"user": boss.id, "note": "welcome"})
    deal_id = outcome["open"][1]
    assert outcome["open"][0] == "deal" and system.get("deal", deal_id)["owner"] == boss.id
    assert system.get("deal", deal_id)["close_on"] == rt.now().date()  # the input's default, $today, read now
    assert system.get("account", account["id"])["owner"] == boss.id


def test_hooks_can_warn_and_still_save(rt: Runtime) -> None:
    saved = rt.records().create("account", {"name": "No phone"})
    assert [m.text("en") for m in saved["_warnings"]] == ["No phone number yet."]
    assert rt.records().get("account", saved["id"])["name"] == "No phone"
    assert "_warnings" not in rt.records().create("account", {"name": "With phone", "phone": "010-12345678"})


def test_jobs_run_as_the_system(rt: Runtime) -> None:
    rt.records().create("account", {"name": "Cold", "hot": True, "phone": "010-12345678"})
    assert rt.records().run_job("cool_down") == ["Cold cooled down"]
    assert rt.records().run_job("cool_down") == []
    with pytest.raises(NotFound):
        rt.records().run_job("nope")
