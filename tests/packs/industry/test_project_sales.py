"""The project sales industry pack (packs/industry_templates/project_sales): it validates with the
standard pack (and the other industry packs), its behaviours (decision tree rules, stage plans and
their overdue highlight, delegated tasks and their shares, team access, the summary at close, bid
bonds, owners following the opportunity), who may do what, its screens, installing it onto a
running standard CRM with data, and its demo data. Every database test runs on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
import yaml
from starlette.testclient import TestClient

from engine.cli import main as crm_main
from engine.demo import generate, generate_pack
from engine.metadata import load_registry
from engine.runtime import users as user_accounts
from engine.runtime.db import make_engine
from engine.runtime.errors import Forbidden, NotFound, ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from engine.runtime.users import create_user
from tests.conftest import ROOT, make_runtime
from tests.packs import conftest as standard
from tests.packs.conftest import CRM, STANDARD, form_token, password

PACK = ROOT / "packs" / "industry_templates" / "project_sales"
OTHERS = [ROOT / "packs" / "industry_templates" / name for name in ("membership_retail", "field_service")]
PEOPLE = {**standard.PEOPLE, "presales1": (("presales_engineer",), "Presales")}
DEPARTMENTS = {**standard.DEPARTMENTS, "Presales": "HQ"}
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the CRM's time zone (the default), not the machine's

Web = Callable[[str], TestClient]
Api = Callable[[str], Callable[..., httpx.Response]]


@pytest.fixture
def crm(db_url: str, tmp_path: Path) -> Iterator[CRM]:
    """The standard pack and this one, with one user per role (the standard tests' organisation
    plus a pre-sales engineer in their own department). Replaces tests/packs/conftest.py's `crm`,
    so its `web` and `api` clients serve this pack too."""
    runtime = make_runtime(db_url, STANDARD, PACK)
    runtime.files_dir = str(tmp_path / "files")
    system = runtime.records()
    people = {name: create_user(runtime, name, password(name), display_name=name.title(), roles=roles,
                                is_admin=name == "admin") for name, (roles, _) in PEOPLE.items()}
    units: dict[str, int] = {}
    for unit, parent in DEPARTMENTS.items():
        units[unit] = system.create("department", {"name": unit, "code": unit.upper(),
                                                   "parent": units[parent] if parent else None})["id"]
    for name, (_, unit) in PEOPLE.items():
        system.create("employee", {"name": name.title(), "user": people[name].id, "department": units[unit]})
    yield CRM(runtime, people)
    runtime.engine.dispose()


def opportunity(crm: CRM, owner: str = "sales1", **values: Any) -> dict[str, Any]:
    """A customer and an opportunity of `owner` (no expected close date: no automatic plan)."""
    customer = crm.customer(f"{owner}的客户{values.get('name', '')}", owner)
    return crm.system.create("opportunity", {"name": "产线自动化改造项目", "customer": customer["id"],
                                             "amount": 1200000, "owner": crm.id(owner), **values})


def contact(crm: CRM, opp: dict[str, Any], name: str, **values: Any) -> dict[str, Any]:
    return crm.system.create("contact", {"customer": opp["customer"], "name": name, "owner": opp["owner"], **values})


def rejected(call: Callable[[], Any], field: str = "", text: str = "") -> str:
    """Run `call`, which must be refused on `field`; the English message."""
    with pytest.raises(ValidationFailed) as caught:
        call()
    assert field in caught.value.errors, caught.value.errors
    message = caught.value.errors[field][0].text("en")
    assert text in message, message
    return message


def tab_index(runtime: Runtime, entity: str, child: str) -> int:
    return next(i for i, rel in enumerate(runtime.registry.entity(entity).related) if rel.entity == child)


# -- the pack validates ---------------------------------------------------------------------------------

def test_pack_validates_with_the_standard_pack_and_the_other_industry_packs(capsys: pytest.CaptureFixture[str]) -> None:
    registry = load_registry([STANDARD, PACK])
    assert [p.name for p in registry.packs] == ["standard_crm", "project_sales"]
    assert registry.packs[1].version == "1.0.0"
    assert crm_main(["pack", "validate", str(STANDARD), str(PACK)]) == 0
    assert capsys.readouterr().out.startswith("OK:")
    present = [d for d in OTHERS if (d / "pack.yaml").is_file()]
    if present:  # all industry packs may be active together
        assert crm_main(["pack", "validate", str(STANDARD), str(PACK), *map(str, present)]) == 0
    tabs = {rel.entity: rel for rel in registry.entity("opportunity").related}
    assert tabs["decision_maker"].tree == "reports_to"
    assert tabs["opportunity_stage_plan"].highlight == ("planned_end lt today", "status in not_started,in_progress")
    stages = [s.key for s in registry.entity("opportunity").field("stage").stages]
    assert stages.index("bidding") == stages.index("proposal") + 1
    menu = {g.key: g.entities for g in registry.menu}
    assert "project_task" in menu["projects"]


def test_every_label_and_message_has_both_languages() -> None:
    en = yaml.safe_load((PACK / "locales" / "en.yaml").read_text(encoding="utf-8"))
    zh = yaml.safe_load((PACK / "locales" / "zh.yaml").read_text(encoding="utf-8"))
    assert set(en) == set(zh)
    for key in en:
        assert re.findall(r"{(\w+)}", en[key]) == re.findall(r"{(\w+)}", zh[key]), key
    used = set(re.findall(r'message\("(\w+)"', (PACK / "hooks.py").read_text(encoding="utf-8")))
    assert used and used <= set(en), used - set(en)
    registry = load_registry([STANDARD, PACK])
    mine = [e for e in registry.entities.values() if e.pack == "project_sales"]
    assert {e.key for e in mine} == {"opportunity_stage_plan", "decision_maker", "opportunity_competitor", "project_task"}
    for entity in registry.entities.values():
        for f in entity.fields.values():
            assert f.label.get("en") and f.label.get("zh"), f"{entity.key}.{f.name}"
            for option in f.picklist.options if f.picklist else ():
                assert option.label.get("en") and option.label.get("zh"), f"{f.picklist.key}.{option.key}"


# -- the decision tree -------------------------------------------------------------------------------------

def test_decision_makers_form_a_tree_without_loops(crm: CRM) -> None:
    opp = opportunity(crm)
    other = opportunity(crm, name="另一个")
    sales1 = crm.as_("sales1")
    boss_contact = contact(crm, opp, "王总", title="总经理", decision_role="decision_maker", influence="high")
    boss = sales1.create("decision_maker", {"opportunity": opp["id"], "contact": boss_contact["id"]})
    # name, job title, role and influence come from the contact
    assert (boss["name"], boss["job_title"], boss["decision_role"], boss["influence"]) == \
        ("王总", "总经理", "decision_maker", "high")
    vp = sales1.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "李副总")["id"],
                                          "reports_to": boss["id"], "decision_role": "approver"})
    engineer = sales1.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "赵工")["id"],
                                                "reports_to": vp["id"], "attitude": "opponent"})
    # a loop, directly or through the tree, or a boss outside the opportunity, is refused
    boss = sales1.get("decision_maker", boss["id"])
    rejected(lambda: sales1.update("decision_maker", boss["id"], {"reports_to": engineer["id"]}, boss["version"]),
             "reports_to", "loop")
    rejected(lambda: sales1.update("decision_maker", vp["id"], {"reports_to": vp["id"]}, vp["version"]),
             "reports_to", "themselves")
    elsewhere = sales1.create("decision_maker", {"opportunity": other["id"], "contact": contact(crm, other, "孙总")["id"]})
    rejected(lambda: sales1.update("decision_maker", engineer["id"], {"reports_to": elsewhere["id"]},
                                   engineer["version"]), "reports_to", "same opportunity")
    rejected(lambda: sales1.create("decision_maker", {"opportunity": other["id"], "contact": contact(crm, other, "钱工")["id"],
                                                      "reports_to": boss["id"]}), "reports_to", "same opportunity")
    # one row per contact; a decision maker stays with its opportunity
    rejected(lambda: sales1.create("decision_maker", {"opportunity": opp["id"], "contact": boss_contact["id"]}),
             "contact", "already")
    rejected(lambda: sales1.update("decision_maker", engineer["id"], {"opportunity": other["id"]}, engineer["version"]),
             "opportunity")
    # moving someone within the tree is fine; a boss in the recycle bin cannot be chosen (their
    # reports show as roots of the tree until the boss is restored)
    moved = sales1.update("decision_maker", engineer["id"], {"reports_to": boss["id"]}, engineer["version"])
    assert moved["reports_to"] == boss["id"]
    sales1.delete("decision_maker", boss["id"])
    rejected(lambda: sales1.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "吴工")["id"],
                                                      "reports_to": boss["id"]}), "reports_to")


def test_a_contact_of_another_customer_is_accepted_with_a_warning(crm: CRM) -> None:
    opp = opportunity(crm)
    institute = crm.customer("华东建筑设计研究院", "sales1")
    consultant = crm.system.create("contact", {"customer": institute["id"], "name": "周工", "owner": crm.id("sales1")})
    made = crm.as_("sales1").create("decision_maker", {"opportunity": opp["id"], "contact": consultant["id"],
                                                       "decision_role": "consultant"})
    assert [w.text("en") for w in made["_warnings"]] == ["周工 is a contact of another customer (e.g. a design institute or consultant)."]


def test_the_decision_tree_tab_nests_rows_and_marks_opponents(crm: CRM, web: Web) -> None:
    opp = opportunity(crm)
    sales1 = crm.as_("sales1")
    boss = sales1.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "王总")["id"]})
    vp = sales1.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "李副总")["id"],
                                          "reports_to": boss["id"], "attitude": "opponent"})
    sales1.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "赵工")["id"],
                                     "reports_to": vp["id"], "attitude": "champion"})
    sales1.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "钱经理")["id"],
                                     "reports_to": boss["id"]})
    tab = tab_index(crm.runtime, "opportunity", "decision_maker")
    page = web("sales1").get(f"/app/opportunity/{opp['id']}?tab=r{tab}")
    assert page.status_code == 200
    table = page.text[page.text.index('data-test="related"'):]
    rows = re.findall(r'<tr class="([^"]*)" data-depth="(\d)">.*?<a href="/app/decision_maker/\d+">([^<]+)</a>', table)
    assert [(name, int(depth)) for _, depth, name in rows] == [("王总", 0), ("李副总", 1), ("赵工", 2), ("钱经理", 1)]
    assert ["highlight" in cls for cls, _, _ in rows] == [False, True, False, False]


# -- stage plans ---------------------------------------------------------------------------------------------

def test_overdue_stage_plans_are_highlighted_and_listed(crm: CRM, web: Web) -> None:
    opp = opportunity(crm, stage="proposal")
    sales1 = crm.as_("sales1")
    late = sales1.create("opportunity_stage_plan", {"opportunity": opp["id"], "stage": "proposal",
                                                    "planned_start": TODAY - timedelta(days=20),
                                                    "planned_end": TODAY - timedelta(days=2), "status": "in_progress"})
    done = sales1.create("opportunity_stage_plan", {"opportunity": opp["id"], "stage": "needs_analysis",
                                                    "planned_end": TODAY - timedelta(days=30),
                                                    "actual_end": TODAY - timedelta(days=25)})
    ahead = sales1.create("opportunity_stage_plan", {"opportunity": opp["id"], "stage": "negotiation",
                                                     "planned_end": TODAY + timedelta(days=30)})
    assert done["status"] == "done"  # an actual end finishes the stage
    assert late["name"] == "Proposal / quote"  # the goal defaults to the stage's name (the user's language)
    entity = crm.runtime.registry.entity("opportunity")
    highlight = entity.related[tab_index(crm.runtime, "opportunity", "opportunity_stage_plan")].highlight
    rows = sales1.query("opportunity_stage_plan", ListQuery(filters=[f"opportunity eq {opp['id']}"],
                                                            highlight=highlight)).rows
    assert {r["id"]: r["_highlight"] for r in rows} == {late["id"]: True, done["id"]: False, ahead["id"]: False}
    view = next(v for v in crm.runtime.registry.entity("opportunity_stage_plan").list.views if v.key == "overdue")
    assert [r["id"] for r in crm.find("opportunity_stage_plan", *view.filter, actor="sales1")] == [late["id"]]
    # the same on the screens: the opportunity's tab and the list view mark the late row
    client = web("sales1")
    tab = tab_index(crm.runtime, "opportunity", "opportunity_stage_plan")
    page = client.get(f"/app/opportunity/{opp['id']}?tab=r{tab}").text
    marked = re.findall(r'<tr class="highlight[^"]*"[^>]*>.*?/app/opportunity_stage_plan/(\d+)', page)
    assert marked == [str(late["id"])]
    listing = client.get("/app/opportunity_stage_plan?view=overdue").text
    assert f"/app/opportunity_stage_plan/{late['id']}" in listing and f"/app/opportunity_stage_plan/{ahead['id']}" not in listing
    # one row per stage; the end not before the start
    rejected(lambda: sales1.create("opportunity_stage_plan", {"opportunity": opp["id"], "stage": "proposal",
                                                              "planned_end": TODAY}), "stage", "already")
    rejected(lambda: sales1.create("opportunity_stage_plan", {"opportunity": opp["id"], "stage": "bidding",
                                                              "planned_start": TODAY, "planned_end": TODAY - timedelta(days=1)}),
             "planned_end")


def test_a_new_opportunity_gets_a_plan_that_follows_its_stage(crm: CRM) -> None:
    close = TODAY + timedelta(days=80)
    opp = opportunity(crm, stage="needs_analysis", expected_close_date=close)
    plans = crm.find("opportunity_stage_plan", f"opportunity eq {opp['id']}", sort=["planned_start"])
    assert [p["stage"] for p in plans] == ["needs_analysis", "proposal", "bidding", "negotiation"]
    assert [p["status"] for p in plans] == ["in_progress", "not_started", "not_started", "not_started"]
    assert plans[0]["planned_start"] == TODAY and plans[-1]["planned_end"] <= close
    assert all(a["planned_end"] < b["planned_start"] for a, b in zip(plans, plans[1:], strict=False))
    assert {p["owner"] for p in plans} == {p["responsible"] for p in plans} == {crm.id("sales1")}
    sales1 = crm.as_("sales1")
    # the tender stage needs its deadline; entering it finishes the stages before it
    opp = sales1.get("opportunity", opp["id"])
    rejected(lambda: sales1.update("opportunity", opp["id"], {"stage": "bidding"}, opp["version"]), "bid_deadline")
    opp = sales1.update("opportunity", opp["id"], {"stage": "bidding", "bid_deadline": f"{close} 09:30"}, opp["version"])
    plans = {p["stage"]: p for p in crm.find("opportunity_stage_plan", f"opportunity eq {opp['id']}")}
    assert [(plans[k]["status"], plans[k]["actual_end"]) for k in ("needs_analysis", "proposal")] == [("done", TODAY)] * 2
    assert plans["bidding"]["status"] == "in_progress" and plans["bidding"]["actual_start"] == TODAY
    # the action adds what is missing
    sales1.delete("opportunity_stage_plan", plans["negotiation"]["id"])
    outcome = sales1.run_action("opportunity", opp["id"], "generate_stage_plan")
    assert outcome["message"].text("en") == "1 stage plan row(s) created."
    assert len(crm.find("opportunity_stage_plan", f"opportunity eq {opp['id']}")) == 4
    # winning finishes every open stage
    opp = sales1.get("opportunity", opp["id"])
    sales1.update("opportunity", opp["id"], {"stage": "won", "close_summary": "技术方案评分第一。",
                                             "win_loss_factors": ["technical_solution"]}, opp["version"])
    assert {p["status"] for p in crm.find("opportunity_stage_plan", f"opportunity eq {opp['id']}")} == {"done"}
    # losing skips them
    lost = opportunity(crm, name="丢单", stage="proposal", expected_close_date=close)
    sales1.update("opportunity", lost["id"], {"stage": "lost", "lost_reason": "price", "close_summary": "价格高。",
                                              "win_loss_factors": ["price"]}, lost["version"])
    assert {p["status"] for p in crm.find("opportunity_stage_plan", f"opportunity eq {lost['id']}")} == {"skipped"}
    # the setting switches the automatic plan off
    crm.runtime.set_setting("stage_plan_auto", False)
    quiet = opportunity(crm, name="无计划", expected_close_date=close)
    assert crm.find("opportunity_stage_plan", f"opportunity eq {quiet['id']}") == []


# -- the summary at close, bid bonds ---------------------------------------------------------------------

def test_closing_needs_a_project_summary(crm: CRM) -> None:
    sales1 = crm.as_("sales1")
    opp = opportunity(crm, stage="negotiation")
    rejected(lambda: sales1.update("opportunity", opp["id"], {"stage": "won"}, opp["version"]),
             "close_summary", "project summary")
    rejected(lambda: sales1.update("opportunity", opp["id"], {"stage": "won", "close_summary": "赢在方案"}, opp["version"]),
             "win_loss_factors")
    rejected(lambda: sales1.update("opportunity", opp["id"], {"stage": "lost", "lost_reason": "price"}, opp["version"]),
             "close_summary")
    won = sales1.update("opportunity", opp["id"], {"stage": "won", "close_summary": "赢在方案与服务",
                                                   "win_loss_factors": ["technical_solution", "service_capability"]},
                        opp["version"])
    assert won["stage"] == "won"
    crm.runtime.set_setting("project_summary_required", False)
    other = opportunity(crm, name="二", stage="negotiation")
    assert sales1.update("opportunity", other["id"], {"stage": "won"}, other["version"])["stage"] == "won"


def test_bid_bond_bookkeeping(crm: CRM) -> None:
    sales1 = crm.as_("sales1")
    opp = opportunity(crm, bid_bond=24000, bid_bond_paid_on=TODAY - timedelta(days=40))
    assert opp["bid_bond_returned"] is False
    outstanding = ["bid_bond gt 0", "bid_bond_returned eq false"]
    assert [r["id"] for r in crm.find("opportunity", *outstanding)] == [opp["id"]]
    opp = sales1.update("opportunity", opp["id"], {"bid_bond_returned_on": TODAY - timedelta(days=3)}, opp["version"])
    assert opp["bid_bond_returned"] is True
    assert crm.find("opportunity", *outstanding) == []
    opp = sales1.update("opportunity", opp["id"], {"bid_bond_returned": False}, opp["version"])
    assert opp["bid_bond_returned_on"] is None
    opp = sales1.update("opportunity", opp["id"], {"bid_bond_returned": True}, opp["version"])
    assert opp["bid_bond_returned_on"] == TODAY
    rejected(lambda: sales1.update("opportunity", opp["id"], {"bid_bond_returned_on": TODAY - timedelta(days=50)},
                                   opp["version"]), "bid_bond_returned_on")


# -- who may do what --------------------------------------------------------------------------------------

def test_records_of_an_opportunity_belong_to_its_owner(crm: CRM) -> None:
    opp = opportunity(crm)
    competitor = crm.system.create("competitor", {"name": "北京华控软件股份有限公司"})
    # the manager adds an analysis to sales1's opportunity: it is sales1's
    analysis = crm.as_("manager").create("opportunity_competitor", {"opportunity": opp["id"], "competitor": competitor["id"],
                                                                    "quoted_price": 980000, "threat_level": "high"})
    assert analysis["owner"] == crm.id("sales1") and analysis["name"] == "北京华控软件股份有限公司"
    assert crm.as_("sales1").get("opportunity_competitor", analysis["id"])["id"] == analysis["id"]
    assert crm.get("opportunity", opp["id"])["lowest_competitor_quote"] == 980000
    rejected(lambda: crm.as_("sales1").create("opportunity_competitor", {"opportunity": opp["id"],
                                                                         "competitor": competitor["id"]}),
             "competitor", "already")
    # someone who may not change the opportunity cannot add to it, nor see its records
    for user in ("sales2", "east1"):
        rejected(lambda user=user: crm.as_(user).create("opportunity_competitor", {"opportunity": opp["id"],
                                                                                   "competitor": competitor["id"]}),
                 "opportunity", "may not change")
        with pytest.raises(NotFound):
            crm.as_(user).get("opportunity_competitor", analysis["id"])
    # pre-sales read everything of every opportunity, and change none of it
    presales = crm.as_("presales1")
    assert presales.get("opportunity", opp["id"])["id"] == opp["id"]
    assert presales.get("opportunity_competitor", analysis["id"])["id"] == analysis["id"]
    opp = crm.get("opportunity", opp["id"])
    with pytest.raises(Forbidden):
        presales.update("opportunity", opp["id"], {"next_step": "x"}, opp["version"])
    with pytest.raises(Forbidden):
        presales.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "王总")["id"]})
    with pytest.raises(Forbidden):
        crm.as_("service1").create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "李总")["id"]})
    assert crm.find("opportunity", actor="service1") == []  # until a task is assigned to them
    # manager's team sees it all, marketing none of it
    assert len(crm.find("opportunity_competitor", actor="manager")) == 1
    assert crm.find("opportunity_competitor", actor="marketing1") == []


def test_a_team_member_with_edit_access_adds_records_and_keeps_them(crm: CRM) -> None:
    opp = opportunity(crm)
    sales1, sales2 = crm.as_("sales1"), crm.as_("sales2")
    member = sales1.create("opportunity_member", {"opportunity": opp["id"], "user": crm.id("sales2"), "role": "co_sales",
                                                  "access": "edit", "responsibility": "华北区客户关系"})
    opp = sales2.get("opportunity", opp["id"])  # the team member reads and edits the opportunity
    opp = sales2.update("opportunity", opp["id"], {"next_step": "约见技术总监"}, opp["version"])
    competitor = crm.system.create("competitor", {"name": "上海德工电气有限公司"})
    analysis = sales2.create("opportunity_competitor", {"opportunity": opp["id"], "competitor": competitor["id"]})
    assert analysis["owner"] == crm.id("sales1")  # the opportunity's owner's, and still editable by who added it
    analysis = sales2.update("opportunity_competitor", analysis["id"], {"threat_level": "high"}, analysis["version"])
    assert analysis["threat_level"] == "high"
    # contacts: only those the member can see (the engine checks references against the user's scope)
    rejected(lambda: sales2.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "王总")["id"]}),
             "contact")
    member = sales1.update("opportunity_member", member["id"], {"access": "read"}, member["version"])
    with pytest.raises(Forbidden):
        sales2.update("opportunity", opp["id"], {"next_step": "x"}, opp["version"])
    sales1.update("opportunity_member", member["id"], {"access": "none"}, member["version"])
    with pytest.raises(NotFound):
        sales2.get("opportunity", opp["id"])
    member = sales1.get("opportunity_member", member["id"])
    sales1.update("opportunity_member", member["id"], {"access": "read"}, member["version"])
    assert sales2.get("opportunity", opp["id"])["id"] == opp["id"]
    # a member who may not share the opportunity cannot open it to others by adding them
    sales1.update("opportunity_member", member["id"], {"access": "edit"}, sales1.get("opportunity_member", member["id"])["version"])
    sales2.create("opportunity_member", {"opportunity": opp["id"], "user": crm.id("east1"), "access": "edit"})
    with pytest.raises(NotFound):
        crm.as_("east1").get("opportunity", opp["id"])
    sales1.delete("opportunity_member", member["id"])
    with pytest.raises(NotFound):
        sales2.get("opportunity", opp["id"])


def test_a_new_owner_takes_the_project_records_along(crm: CRM) -> None:
    opp = opportunity(crm, stage="proposal", expected_close_date=TODAY + timedelta(days=60))
    sales1 = crm.as_("sales1")
    dm = sales1.create("decision_maker", {"opportunity": opp["id"], "contact": contact(crm, opp, "王总")["id"]})
    task = sales1.create("project_task", {"subject": "编制技术方案", "opportunity": opp["id"], "task_type": "solution_design",
                                          "assigned_to": crm.id("presales1"), "due_date": TODAY + timedelta(days=5)})
    opp = crm.get("opportunity", opp["id"])
    crm.as_("manager").update("opportunity", opp["id"], {"owner": crm.id("east1")}, opp["version"])
    east1 = crm.as_("east1")
    assert east1.get("decision_maker", dm["id"])["owner"] == crm.id("east1")
    plans = crm.find("opportunity_stage_plan", f"opportunity eq {opp['id']}", actor="east1")
    assert plans and {(p["owner"], p["responsible"]) for p in plans} == {(crm.id("east1"), crm.id("east1"))}
    assert east1.get("project_task", task["id"])["owner"] == crm.id("east1")
    with pytest.raises(NotFound):
        sales1.get("decision_maker", dm["id"])


# -- delegated tasks ----------------------------------------------------------------------------------------------

def test_a_delegated_task_is_worked_by_its_assignee(crm: CRM) -> None:
    opp = opportunity(crm, stage="proposal")
    sales1, presales = crm.as_("sales1"), crm.as_("presales1")
    task = sales1.create("project_task", {"subject": "编制技术方案", "opportunity": opp["id"], "task_type": "solution_design",
                                          "assigned_to": crm.id("presales1"), "due_date": TODAY + timedelta(days=7),
                                          "description": "按招标文件第五章编写\n重点说明冗余设计"})
    assert task["code"].startswith("RW") and task["status"] == "pending"
    assert task["department"] == crm.find("department", "code eq PRESALES")[0]["id"]  # the assignee's department
    mine = next(v for v in crm.runtime.registry.entity("project_task").list.views if v.key == "assigned_to_me")
    assert [t["id"] for t in crm.find("project_task", *mine.filter, actor="presales1")] == [task["id"]]
    delegated = next(v for v in crm.runtime.registry.entity("project_task").list.views if v.key == "delegated_by_me")
    assert [t["id"] for t in crm.find("project_task", *delegated.filter, actor="sales1")] == [task["id"]]
    # the assignee works it: status, result, deliverable; not the rest, and does not cancel it
    task = presales.update("project_task", task["id"], {"status": "in_progress"}, task["version"])
    # a form sending the request back with other line breaks changes nothing of it
    task = presales.update("project_task", task["id"], {"description": "按招标文件第五章编写\r\n重点说明冗余设计"},
                           task["version"])
    assert task["description"] == "按招标文件第五章编写\n重点说明冗余设计"
    rejected(lambda: presales.update("project_task", task["id"], {"due_date": TODAY + timedelta(days=30)}, task["version"]),
             "", "Due date")
    rejected(lambda: presales.update("project_task", task["id"], {"status": "cancelled"}, task["version"]), "status")
    rejected(lambda: presales.update("project_task", task["id"], {"status": "done"}, task["version"]), "result")
    task = presales.update("project_task", task["id"], {"status": "done", "result": "方案已提交，见附件"}, task["version"])
    assert task["completed_on"] == TODAY
    # the requester may do everything, and reopening clears the completion date
    task = sales1.update("project_task", task["id"], {"status": "in_progress", "due_date": TODAY + timedelta(days=3)},
                         task["version"])
    assert task["completed_on"] is None
    # others see nothing of it
    for user in ("sales2", "service1"):
        with pytest.raises(NotFound):
            crm.as_(user).get("project_task", task["id"])


def test_an_assignee_outside_sales_sees_the_task_and_its_opportunity(crm: CRM) -> None:
    opp = opportunity(crm, stage="needs_analysis")
    sales1, service1 = crm.as_("sales1"), crm.as_("service1")
    task = sales1.create("project_task", {"subject": "现场勘察", "opportunity": opp["id"], "task_type": "site_survey",
                                          "assigned_to": crm.id("service1"), "due_date": TODAY - timedelta(days=1)})
    assert service1.get("project_task", task["id"])["id"] == task["id"]
    assert service1.get("opportunity", opp["id"])["id"] == opp["id"]  # read, for the context
    opp = crm.get("opportunity", opp["id"])
    with pytest.raises(Forbidden):
        service1.update("opportunity", opp["id"], {"next_step": "x"}, opp["version"])
    overdue = next(v for v in crm.runtime.registry.entity("project_task").list.views if v.key == "overdue")
    assert [t["id"] for t in crm.find("project_task", *overdue.filter, actor="sales1")] == [task["id"]]
    assert crm.get("opportunity", opp["id"])["open_task_count"] == 1
    # handed to someone else: service1 loses the task and the opportunity
    sales1.update("project_task", task["id"], {"assigned_to": crm.id("presales1")}, task["version"])
    for entity, record_id in (("project_task", task["id"]), ("opportunity", opp["id"])):
        with pytest.raises(NotFound):
            service1.get(entity, record_id)
    # a pre-sales engineer (who reads every opportunity but may not share it) delegates a survey
    # to service1: service1 gets the task, not the opportunity
    survey = crm.as_("presales1").create("project_task", {
        "subject": "复勘", "opportunity": opp["id"], "task_type": "site_survey", "assigned_to": crm.id("service1"),
        "due_date": TODAY + timedelta(days=3)})
    assert service1.get("project_task", survey["id"])["id"] == survey["id"]
    with pytest.raises(NotFound):
        service1.get("opportunity", opp["id"])
    # someone who cannot see an opportunity cannot delegate work on it
    rejected(lambda: crm.as_("sales2").create("project_task", {"subject": "x", "opportunity": opp["id"],
                                                               "task_type": "other", "assigned_to": crm.id("presales1"),
                                                               "due_date": TODAY}), "opportunity")


def test_forms_create_project_records(crm: CRM, web: Web, api: Api) -> None:
    opp = opportunity(crm, stage="proposal")
    client = web("sales1")
    token = form_token(client)
    saved = client.post("/app/project_task/new", data={
        "_csrf": token, "subject": "成本测算", "opportunity": str(opp["id"]), "task_type": "cost_estimate",
        "assigned_to": str(crm.id("presales1")), "due_date": str(TODAY + timedelta(days=4)), "priority": "high",
        "status": "pending"})
    assert saved.status_code == 303, saved.text[:3000]
    task = crm.find("project_task", f"opportunity eq {opp['id']}")[0]
    page = web("presales1").get(f"/app/project_task/{task['id']}")
    assert page.status_code == 200 and "成本测算" in page.text
    body = api("presales1")("PATCH", f"/api/v1/project_task/{task['id']}", {"status": "in_progress", "version": task["version"]})
    assert body.status_code == 200, body.text
    home = web("presales1").get("/").text
    assert "Tasks assigned to me" in home and "成本测算" in home


# -- installing onto a running CRM, demo data --------------------------------------------------------------

def table_counts(runtime: Runtime) -> dict[str, int]:
    with runtime.engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in runtime.metadata.tables.items()}


def test_install_onto_a_running_standard_crm_keeps_every_row_and_loads_the_demo(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    before_rt = make_runtime(db_url, STANDARD)
    generate(before_rt, customers=40, seed=7)
    opp = before_rt.records().query("opportunity", ListQuery(limit=1, sort=["id"])).rows[0]
    before = table_counts(before_rt)
    before_rt.engine.dispose()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRM_PACKS", "standard_crm")
    monkeypatch.setenv("CRM_DATABASE_URL", db_url)
    assert crm_main(["pack", "install", str(PACK)]) == 0
    assert "project_sales installed: 1.0.0" in capsys.readouterr().out
    runtime = Runtime(load_registry([STANDARD, PACK]), make_engine(db_url))
    assert not runtime.migration_plan().describe()  # the schema is up to date
    after = table_counts(runtime)
    assert {t: after[t] for t in before if t != "crm_pack"} == {t: n for t, n in before.items() if t != "crm_pack"}
    # the old records work with the new fields
    old = runtime.records().get("opportunity", opp["id"])
    assert old["name"] == opp["name"] and old["project_type"] is None
    runtime.records().update("opportunity", old["id"], {"project_type": "system_integration", "bid_bond": 30000},
                             old["version"])
    outstanding = runtime.records().query("opportunity", ListQuery(filters=["bid_bond gt 0", "bid_bond_returned eq false"]))
    assert [r["id"] for r in outstanding.rows] == [old["id"]]
    # the pack's demo data builds on the standard demo's
    demo = generate_pack(runtime, "project_sales", seed=7)
    assert demo is not None and demo.counts["opportunity_stage_plan"] > 0 and demo.counts["decision_maker"] > 0
    assert generate_pack(runtime, "project_sales", seed=7) is None  # once per database
    check_demo(runtime)
    runtime.engine.dispose()


def check_demo(runtime: Runtime) -> None:
    system = runtime.records()
    assert user_accounts.check_password(runtime, "presales1", "demo-presales1") is not None
    presales1 = user_accounts.check_password(runtime, "presales1", "demo-presales1")
    assert presales1 is not None and presales1.roles == ("presales_engineer",)
    as_presales = runtime.records(presales1.actor())
    tasks = as_presales.query("project_task", ListQuery(filters=["assigned_to eq $me"], limit=500)).rows
    assert tasks and all(as_presales.get("project_task", t["id"]) for t in tasks)
    assert all(as_presales.update("project_task", t["id"], {"result": "已处理"}, t["version"])
               for t in tasks if t["status"] == "in_progress")
    plans = system.query("opportunity_stage_plan", ListQuery(filters=["planned_end lt today",
                                                                      "status in not_started,in_progress"], limit=500)).rows
    assert plans
    makers = system.query("decision_maker", ListQuery(limit=500)).rows
    by_id = {m["id"]: m for m in makers}
    for maker in makers:
        seen = {maker["id"]}
        up = maker["reports_to"]
        while up is not None:
            assert by_id[up]["opportunity"] == maker["opportunity"] and up not in seen
            seen.add(up)
            up = by_id[up]["reports_to"]
    closed = system.query("opportunity", ListQuery(filters=["stage in won,lost", "project_type is_not_empty"])).rows
    assert all(o["close_summary"] and o["win_loss_factors"] for o in closed)
