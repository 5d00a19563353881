"""The field_service industry pack: customer assets, work orders with parts and hours, dispatch,
maintenance plans and their job, warranty and service warnings, roles, demo data and installing
it onto a running standard CRM, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.metadata import load_registry, validate
from engine.runtime.db import make_engine
from engine.runtime.errors import Forbidden, NotFound, Rejected, ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from engine.runtime.users import create_user
from tests.conftest import ROOT, make_runtime
from tests.packs.conftest import CRM, password

STANDARD = ROOT / "packs" / "standard_crm"
PACK = ROOT / "packs" / "industry_templates" / "field_service"

# user name -> (roles, department)
PEOPLE: dict[str, tuple[tuple[str, ...], str]] = {
    "admin": (("admin",), "HQ"),
    "manager": (("sales_manager",), "East"),
    "sales1": (("salesperson",), "East"),
    "sales2": (("salesperson",), "North"),
    "service1": (("service_agent",), "Service"),
    "disp": (("dispatcher",), "Service"),
    "eng1": (("field_engineer",), "Field"),
    "eng2": (("field_engineer",), "Field"),
}
DEPARTMENTS = {"HQ": None, "East": "HQ", "North": "HQ", "Service": "HQ", "Field": "Service"}
ENGINEERS = {"eng1": ("east", ["electrical", "plc_programming"]), "eng2": ("north", ["mechanical"])}


@pytest.fixture
def fs(db_url: str, tmp_path: Path) -> Iterator[CRM]:
    runtime = make_runtime(db_url, STANDARD, PACK)
    runtime.files_dir = str(tmp_path / "files")
    system = runtime.records()
    people = {name: create_user(runtime, name, password(name), display_name=name.title(), roles=roles,
                                is_admin=name == "admin") for name, (roles, _) in PEOPLE.items()}
    units: dict[str, int] = {}
    for unit, parent in DEPARTMENTS.items():
        units[unit] = system.create("department", {"name": unit, "parent": units[parent] if parent else None})["id"]
    for name, (_, unit) in PEOPLE.items():
        region, skills = ENGINEERS.get(name, (None, []))
        system.create("employee", {"name": name.title(), "user": people[name].id, "department": units[unit],
                                   "field_engineer": name in ENGINEERS, "service_region": region, "skills": skills})
    yield CRM(runtime, people)
    runtime.engine.dispose()


def today(crm: CRM) -> date:
    return crm.runtime.now().date()


def product(crm: CRM, code: str, name: str, price: str = "100", **values: Any) -> int:
    return int(crm.system.create("product", {"code": code, "name": name, "standard_price": price, **values})["id"])


def setup_asset(crm: CRM, owner: str = "sales1", serial: str = "SN-001", **values: Any) -> dict[str, Any]:
    """A customer in Jiangsu owned by `owner` with one PLC installed 100 days ago."""
    customer = crm.customer(f"苏州博远电子{serial}有限公司", owner, province="jiangsu", city="苏州")
    plc = product(crm, f"P-{serial}", "PLC控制器", "3680", unit="unit")
    return crm.system.create("customer_asset", {"customer": customer["id"], "product": plc, "serial_number": serial,
                                                "install_date": today(crm) - timedelta(days=100), **values})


def work_order(crm: CRM, asset: dict[str, Any], actor: str | None = None, **values: Any) -> dict[str, Any]:
    records = crm.as_(actor) if actor else crm.system
    return records.create("service_request", {"subject": "变频器报过流故障", "asset": asset["id"],
                                              "service_type": "repair", **values})


def view(crm: CRM, entity: str, key: str) -> tuple[str, ...]:
    return next(v.filter for v in crm.runtime.registry.entity(entity).list.views if v.key == key)


def in_view(crm: CRM, entity: str, key: str, actor: str | None = None) -> set[int]:
    return {r["id"] for r in crm.find(entity, *view(crm, entity, key), actor=actor)}


# -- the pack --------------------------------------------------------------------------------------------


def test_the_pack_validates_with_the_standard_pack() -> None:
    assert validate([STANDARD, PACK]) == []
    registry = load_registry([STANDARD, PACK])
    pack = next(p for p in registry.packs if p.name == "field_service")
    assert pack.version == "1.0.0"
    assert {"dispatcher", "field_engineer"} <= set(registry.roles)
    for key in ("customer_asset", "asset_component", "work_order_part", "maintenance_plan"):
        entity = registry.entity(key)
        assert entity.label["en"] and entity.label["zh"]
        for field in entity.user_fields:
            assert field.label["en"] and field.label["zh"], f"{key}.{field.name}"
    request = registry.entity("service_request")
    assert request.label == {"en": "Service work order", "zh": "服务工单"}
    assert {"asset", "region", "required_skill", "labour_hours", "travel_km", "parts_total", "total_amount",
            "confirmed_by", "signature"} <= set(request.fields)
    assert "waiting_parts" in [s.key for s in request.field("status").stages]
    assert {"dispatch", "start_work", "complete_work"} <= {a.key for a in request.actions}
    assert registry.entity("customer_asset").related[0].tree == "parent_component"
    assert any(r.tree == "parent_asset" for r in registry.entity("customer").related)
    assert request.list.highlight == ("due_date lt today", "status not_in resolved,closed")
    en, zh = (set(registry.messages[lang]) for lang in ("en", "zh"))
    assert {k for k in en if k.startswith("fs_")} == {k for k in zh if k.startswith("fs_")}


# -- customer assets --------------------------------------------------------------------------------------


def test_an_asset_gets_its_name_site_region_owner_and_warranty(fs: CRM) -> None:
    asset = setup_asset(fs)
    assert asset["name"] == "PLC控制器 SN-001"
    assert (asset["province"], asset["city"], asset["region"]) == ("jiangsu", "苏州", "east")
    assert asset["owner"] == fs.id("sales1")  # the customer's owner, whoever created it
    install = today(fs) - timedelta(days=100)
    assert asset["warranty_end"] > install and asset["warranty_status"] == "in_warranty"
    assert (asset["warranty_end"] + timedelta(days=1)).day == install.day  # 12 months, the day before
    assert asset["service_status"] == "none" and asset["code"].startswith("ZC")

    with pytest.raises(Rejected, match="already registered"):
        fs.system.create("customer_asset", {"customer": asset["customer"], "product": asset["product"],
                                            "serial_number": "SN-001"})
    other = product(fs, "P-VF", "变频器")
    twin = fs.as_("service1").create("customer_asset", {"customer": asset["customer"], "product": other,
                                                        "serial_number": "SN-001", "warranty_type": "none"})
    assert twin["owner"] == fs.id("sales1") and twin["warranty_end"] is None
    assert twin["warranty_status"] == "unknown"


def test_the_asset_tree_stays_within_one_customer_and_has_no_loops(fs: CRM) -> None:
    cabinet = setup_asset(fs, serial="PB-1")
    plc = fs.system.create("customer_asset", {"customer": cabinet["customer"], "product": cabinet["product"],
                                              "serial_number": "PB-2", "parent_asset": cabinet["id"]})
    with pytest.raises(Rejected, match="cannot be installed in itself"):
        fs.system.update("customer_asset", cabinet["id"], {"parent_asset": plc["id"]}, cabinet["version"])
    elsewhere = setup_asset(fs, serial="XX-1")
    with pytest.raises(Rejected, match="another customer"):
        fs.system.update("customer_asset", elsewhere["id"], {"parent_asset": cabinet["id"]}, elsewhere["version"])

    rack = fs.system.create("asset_component", {"asset": plc["id"], "name": "PLC机架"})
    cpu = fs.system.create("asset_component", {"asset": plc["id"], "name": "CPU模块", "parent_component": rack["id"]})
    assert rack["owner"] == fs.id("sales1") == cpu["owner"]
    with pytest.raises(Rejected, match="cannot be mounted in itself"):
        fs.system.update("asset_component", rack["id"], {"parent_component": cpu["id"]}, rack["version"])
    with pytest.raises(Rejected, match="another asset"):
        fs.system.create("asset_component", {"asset": cabinet["id"], "name": "风扇", "parent_component": rack["id"]})


def test_equipment_follows_its_customer_to_a_new_owner(fs: CRM) -> None:
    asset = setup_asset(fs)
    component = fs.system.create("asset_component", {"asset": asset["id"], "name": "电源模块"})
    plan = fs.system.create("maintenance_plan", {"asset": asset["id"], "next_due": today(fs) + timedelta(days=60)})
    assert plan["owner"] == fs.id("sales1") and plan["customer"] == asset["customer"]
    customer = fs.get("customer", asset["customer"])
    fs.as_("admin").update("customer", customer["id"], {"owner": fs.id("sales2")}, customer["version"])
    for entity, record in (("customer_asset", asset), ("asset_component", component), ("maintenance_plan", plan)):
        assert fs.get(entity, record["id"])["owner"] == fs.id("sales2"), entity
    assert asset["id"] in {r["id"] for r in fs.find("customer_asset", actor="sales2")}
    assert not fs.find("customer_asset", actor="sales1")


# -- work orders, parts and totals -------------------------------------------------------------------------


def test_a_work_order_is_filled_from_its_equipment(fs: CRM) -> None:
    asset = setup_asset(fs)
    order = work_order(fs, asset, "service1", priority="urgent")
    assert (order["customer"], order["product"], order["serial_number"]) == (asset["customer"], asset["product"], "SN-001")
    assert order["region"] == "east" and order["warranty_covered"] is True
    assert order["due_date"] == today(fs) + timedelta(days=1)  # urgent: service_sla_days_urgent
    assert order["labour_rate"] == Decimal("200.00")
    assert order["code"].startswith("FW") and order["status"] == "new"
    other = setup_asset(fs, serial="SN-OTHER")
    with pytest.raises(Rejected, match="belongs to another customer"):
        work_order(fs, asset, customer=other["customer"])
    normal = work_order(fs, asset)
    assert normal["due_date"] == today(fs) + timedelta(days=5)


def test_spare_parts_and_fees_add_up(fs: CRM) -> None:
    asset = setup_asset(fs)
    order = work_order(fs, asset, "disp")
    fs.as_("disp").run_action("service_request", order["id"], "dispatch", {"engineer": fs.id("eng1")})
    engineer = fs.as_("eng1")
    module = product(fs, "P-4001", "电源模块", "320", unit="pcs", specification="PW-24V 10A")
    fan = product(fs, "P-4002", "散热风扇组件", "65")
    first = engineer.create("work_order_part", {"service_request": order["id"], "product": module, "quantity": 2})
    assert (first["unit_price"], first["amount"], first["unit"]) == (Decimal("320.00"), Decimal("640.00"), "pcs")
    assert first["description"] == "电源模块 PW-24V 10A" and first["owner"] == fs.id("eng1")
    second = engineer.create("work_order_part", {"service_request": order["id"], "product": fan, "quantity": "1.5",
                                                 "unit_price": "0"})
    assert second["amount"] == Decimal("0.00")
    order = engineer.get("service_request", order["id"])
    assert order["parts_total"] == Decimal("640.00") and order["total_amount"] == Decimal("640.00")

    order = engineer.update("service_request", order["id"], {"labour_hours": "2.5", "travel_km": "40"}, order["version"])
    assert order["travel_fee"] == Decimal("80.00")  # 40 km x 2.00 (service_travel_fee_per_km)
    assert order["total_amount"] == Decimal("1220.00")  # 2.5 h x 200 + 80 + 640
    order = engineer.update("service_request", order["id"], {"travel_km": "50"}, order["version"])
    assert order["travel_fee"] == Decimal("100.00")  # still the calculated fee: it follows the distance
    order = fs.as_("disp").update("service_request", order["id"], {"travel_fee": "150"}, order["version"])
    order = engineer.update("service_request", order["id"], {"travel_km": "60"}, order["version"])
    assert order["travel_fee"] == Decimal("150.00")  # typed by hand: kept
    engineer.delete("work_order_part", first["id"])
    order = engineer.get("service_request", order["id"])
    assert order["parts_total"] == Decimal("0.00") and order["total_amount"] == Decimal("650.00")
    with pytest.raises(ValidationFailed):  # the labour rate is the dispatcher's, not the engineer's
        engineer.update("service_request", order["id"], {"labour_rate": "500"}, order["version"])


def test_completing_and_closing_on_site_work(fs: CRM) -> None:
    fs.runtime.set_setting("service_travel_fee_per_km", "0")
    asset = setup_asset(fs, warranty_end=(today(fs) - timedelta(days=1)).isoformat())
    assert asset["warranty_status"] == "expired"
    order = work_order(fs, asset)
    assert order["warranty_covered"] is False
    fs.as_("disp").run_action("service_request", order["id"], "dispatch", {"engineer": fs.id("eng1")})
    engineer = fs.as_("eng1")
    engineer.run_action("service_request", order["id"], "start_work")
    order = engineer.get("service_request", order["id"])
    assert order["status"] == "in_progress" and order["arrived_at"] is not None
    assert fs.get("customer_asset", asset["id"])["status"] == "under_repair"
    with pytest.raises(Rejected, match="labour hours"):
        engineer.update("service_request", order["id"], {"status": "resolved", "resolution": "换风扇"}, order["version"])
    with pytest.raises(ValidationFailed):
        engineer.run_action("service_request", order["id"], "complete_work", {"resolution": "换风扇"})
    done = engineer.run_action("service_request", order["id"], "complete_work",
                               {"resolution": "更换散热风扇，运行正常。", "labour_hours": "3", "travel_km": "12"})
    assert "completed" in done["message"].text("en")
    order = engineer.get("service_request", order["id"])
    assert order["status"] == "resolved" and order["completed_at"] and order["resolved_at"]
    assert order["service_fee"] == Decimal("600.00")  # out of warranty: the cost is charged
    asset = fs.get("customer_asset", asset["id"])
    assert asset["status"] == "in_use" and asset["last_service_date"] == today(fs)
    assert order["id"] in in_view(fs, "service_request", "to_confirm")

    with pytest.raises(Rejected, match="not signed off"):
        engineer.update("service_request", order["id"], {"status": "closed"}, order["version"])
    order = engineer.update("service_request", order["id"], {"confirmed_by": "设备科 王工"}, order["version"])
    assert order["confirmed_at"] is not None
    order = engineer.update("service_request", order["id"], {"status": "closed"}, order["version"])
    assert order["status"] == "closed"
    with pytest.raises(Rejected, match="is closed"):
        engineer.create("work_order_part", {"service_request": order["id"], "product": asset["product"]})

    fs.runtime.set_setting("require_customer_signoff", False)
    second = work_order(fs, asset, assigned_to=fs.id("eng1"), status="assigned")
    second = fs.system.update("service_request", second["id"], {"status": "closed", "labour_hours": 1,
                                                                "resolution": "远程指导"}, second["version"])
    assert second["status"] == "closed"


# -- dispatch, queues and roles -----------------------------------------------------------------------------


def test_the_dispatcher_assigns_from_the_queue_and_is_warned_about_skills_and_regions(fs: CRM) -> None:
    asset = setup_asset(fs)
    order = work_order(fs, asset, "sales1", required_skill="hydraulics_pneumatics")
    assert order["id"] in in_view(fs, "service_request", "dispatch_queue", "disp")
    assert order["id"] in in_view(fs, "service_request", "queue_east", "disp")
    assert order["id"] not in in_view(fs, "service_request", "queue_north", "disp")
    outcome = fs.as_("disp").run_action("service_request", order["id"], "dispatch", {
        "engineer": fs.id("eng2"), "scheduled_at": f"{today(fs).isoformat()} 14:00"})
    warnings = " ".join(w.text("en") for w in outcome["warnings"])
    assert "does not have the skill Hydraulics and pneumatics" in warnings
    assert "does not serve the region East China" in warnings
    assert "dispatched to Eng2" in outcome["message"].text("en")
    order = fs.get("service_request", order["id"])
    assert (order["assigned_to"], order["owner"], order["status"]) == (fs.id("eng2"), fs.id("eng2"), "assigned")
    assert order["scheduled_at"] == datetime.combine(today(fs), time(14, 0))
    assert order["id"] not in in_view(fs, "service_request", "dispatch_queue", "disp")
    assert order["id"] in in_view(fs, "service_request", "my_open", "eng2")
    assert order["id"] in in_view(fs, "service_request", "my_today", "eng2")
    assert fs.as_("sales1").get("service_request", order["id"])  # who logged it still sees it

    quiet = fs.as_("disp").run_action("service_request", order["id"], "dispatch", {"engineer": fs.id("eng1")})
    assert [w.text("en") for w in quiet["warnings"]] == ["Eng1 does not have the skill Hydraulics and pneumatics "
                                                         f"that work order {order['code']} needs."]
    employee = fs.find("employee", f"user eq {fs.id('eng2')}")[0]
    fs.system.update("employee", employee["id"], {"active": False}, employee["version"])
    with pytest.raises(Rejected, match="has left"):
        fs.as_("disp").run_action("service_request", order["id"], "dispatch", {"engineer": fs.id("eng2")})


def test_engineers_see_and_work_their_own_work_orders_only(fs: CRM) -> None:
    asset = setup_asset(fs)
    mine = work_order(fs, asset)
    theirs = work_order(fs, asset)
    queued = work_order(fs, asset)
    fs.as_("disp").run_action("service_request", mine["id"], "dispatch", {"engineer": fs.id("eng1")})
    fs.as_("disp").run_action("service_request", theirs["id"], "dispatch", {"engineer": fs.id("eng2")})
    part = product(fs, "P-4001", "电源模块", "320")
    by_dispatcher = fs.as_("disp").create("work_order_part", {"service_request": mine["id"], "product": part})
    engineer = fs.as_("eng1")
    assert {r["id"] for r in fs.find("service_request", actor="eng1")} == {mine["id"]}
    assert {r["id"] for r in fs.find("work_order_part", actor="eng1")} == {by_dispatcher["id"]}
    with pytest.raises(NotFound):
        engineer.get("service_request", theirs["id"])
    with pytest.raises(Rejected, match="work orders you may edit"):
        engineer.create("work_order_part", {"service_request": theirs["id"], "product": part})
    with pytest.raises(Forbidden):  # no 'assign': an engineer cannot dispatch
        engineer.run_action("service_request", mine["id"], "dispatch", {"engineer": fs.id("eng1")})
    record = engineer.get("service_request", mine["id"])
    with pytest.raises(Rejected, match="Only a dispatcher"):  # nor hand a work order to a colleague
        engineer.update("service_request", mine["id"], {"assigned_to": fs.id("eng2")}, record["version"])
    engineer.update("service_request", mine["id"], {"labour_hours": "1.5"}, record["version"])
    with pytest.raises(Rejected, match="Only a dispatcher"):  # nor at creation
        work_order(fs, asset, "eng1", assigned_to=fs.id("eng2"))
    found_on_site = work_order(fs, asset, "eng1", assigned_to=fs.id("eng1"))  # a fault they found on site
    assert found_on_site["owner"] == fs.id("eng1")
    with pytest.raises(Rejected, match="Only a dispatcher"):
        work_order(fs, asset, "sales1", assigned_to=fs.id("eng1"))
    assert engineer.get("customer_asset", asset["id"])["id"] == asset["id"]  # the equipment, to work on it
    assert "order" not in engineer.get("customer_asset", asset["id"])  # but not the sales order

    opportunity = fs.system.create("opportunity", {"name": "二期改造", "customer": asset["customer"],
                                                   "owner": fs.id("sales1")})
    fs.system.create("quote", {"customer": asset["customer"], "subject": "报价", "owner": fs.id("sales1")})
    for name in ("eng1", "disp"):
        for entity in ("opportunity", "quote", "order", "lead", "campaign"):
            assert fs.find(entity, actor=name) == [], (name, entity)
        with pytest.raises(NotFound):
            fs.as_(name).get("opportunity", opportunity["id"])
    assert {r["id"] for r in fs.find("service_request", actor="disp")} >= {mine["id"], theirs["id"], queued["id"]}
    assert fs.find("customer_asset", actor="sales2") == []  # not their customer's equipment
    assert [r["id"] for r in fs.find("customer_asset", actor="manager")] == [asset["id"]]  # their team's


# -- maintenance plans ---------------------------------------------------------------------------------------


def test_the_plan_job_raises_work_orders_once_and_moves_the_plans_on(fs: CRM) -> None:
    asset = setup_asset(fs)
    day = today(fs)
    quarterly = fs.system.create("maintenance_plan", {
        "asset": asset["id"], "interval": 3, "interval_unit": "months", "next_due": (day + timedelta(days=5)).isoformat(),
        "required_skill": "plc_programming", "checklist": "备份程序；检查电源模块", "priority": "high"})
    assert quarterly["name"] == "每3个月保养：PLC控制器 SN-001" and quarterly["code"].startswith("BY")
    assert fs.get("customer_asset", asset["id"])["next_service_date"] == day + timedelta(days=5)
    later = fs.system.create("maintenance_plan", {"asset": asset["id"], "next_due": (day + timedelta(days=40)).isoformat()})
    fs.system.create("maintenance_plan", {"asset": asset["id"], "next_due": day.isoformat(), "active": False})
    weekly = fs.system.create("maintenance_plan", {
        "asset": asset["id"], "interval": 1, "interval_unit": "weeks", "next_due": day.isoformat(),
        "engineer": fs.id("eng1"), "lead_days": 10})
    missed = fs.system.create("maintenance_plan", {
        "asset": asset["id"], "interval": 1, "interval_unit": "months", "next_due": add_days(day, -75)})

    report = fs.system.run_job("generate_maintenance_orders")
    assert report[-2:] == ["2 missed date(s) skipped (a later date of the same plan was raised)",
                           "4 work order(s) raised from maintenance plans"]
    orders = fs.find("service_request", "maintenance_plan is_not_empty", sort=["id"])
    by_plan: dict[int, list[dict[str, Any]]] = {}
    for order in orders:
        by_plan.setdefault(order["maintenance_plan"], []).append(order)
    assert set(by_plan) == {quarterly["id"], weekly["id"], missed["id"]}
    (first,) = by_plan[quarterly["id"]]
    assert first["planned_for"] == first["due_date"] == day + timedelta(days=5)
    assert (first["asset"], first["customer"], first["service_type"], first["required_skill"], first["priority"]) == (
        asset["id"], asset["customer"], "maintenance", "plc_programming", "high")
    assert first["description"] == "备份程序；检查电源模块" and first["source"] == "maintenance_plan"
    assert first["status"] == "new" and first["assigned_to"] is None and first["region"] == "east"
    assert first["subject"].startswith("每3个月保养：PLC控制器 SN-001")
    assert first["id"] in in_view(fs, "service_request", "dispatch_queue", "disp")
    plan = fs.get("maintenance_plan", quarterly["id"])
    assert plan["next_due"] == add_months_to(day + timedelta(days=5), 3)
    assert (plan["last_generated_on"], plan["last_work_order"]) == (day + timedelta(days=5), first["id"])
    # the weekly plan raised today's and next week's (lead 10 days), straight to its engineer
    assert [o["planned_for"] for o in by_plan[weekly["id"]]] == [day, day + timedelta(days=7)]
    assert all(o["assigned_to"] == o["owner"] == fs.id("eng1") and o["status"] == "assigned"
               for o in by_plan[weekly["id"]])
    assert fs.get("maintenance_plan", weekly["id"])["next_due"] == day + timedelta(days=14)
    # missed dates collapse into the latest one, in the past: overdue at once
    (late,) = by_plan[missed["id"]]
    assert late["planned_for"] < day and late["id"] in in_view(fs, "service_request", "overdue")
    assert fs.get("maintenance_plan", missed["id"])["next_due"] > day
    assert fs.get("maintenance_plan", later["id"])["next_due"] == day + timedelta(days=40)
    assert fs.get("customer_asset", asset["id"])["next_service_date"] == late["planned_for"]

    again = fs.system.run_job("generate_maintenance_orders")
    assert again == ["0 work order(s) raised from maintenance plans"]
    assert len(fs.find("service_request", "maintenance_plan is_not_empty")) == len(orders)
    # a work order someone deleted is not raised again for the same date
    fs.system.delete("service_request", first["id"])
    plan = fs.get("maintenance_plan", quarterly["id"])
    fs.system.update("maintenance_plan", plan["id"], {"next_due": first["planned_for"]}, plan["version"])
    fs.system.run_job("generate_maintenance_orders")
    assert not fs.find("service_request", f"maintenance_plan eq {quarterly['id']}")
    assert fs.get("maintenance_plan", quarterly["id"])["next_due"] == add_months_to(first["planned_for"], 3)


def test_completing_a_plan_work_order_moves_the_asset_service_dates(fs: CRM) -> None:
    asset = setup_asset(fs)
    day = today(fs)
    plan = fs.system.create("maintenance_plan", {"asset": asset["id"], "interval": 6, "next_due": day.isoformat(),
                                                 "engineer": fs.id("eng1")})
    fs.system.run_job("generate_maintenance_orders")
    (order,) = fs.find("service_request", f"maintenance_plan eq {plan['id']}")
    asset = fs.get("customer_asset", asset["id"])
    assert asset["next_service_date"] == day and asset["service_status"] == "due_soon"
    fs.as_("eng1").run_action("service_request", order["id"], "complete_work",
                              {"resolution": "按清单完成保养", "labour_hours": "2"})
    asset = fs.get("customer_asset", asset["id"])
    assert asset["last_service_date"] == day and asset["next_service_date"] == add_months_to(day, 6)
    assert asset["service_status"] == "ok"
    # the action raises the next one now, whatever the lead days
    done = fs.as_("disp").run_action("maintenance_plan", plan["id"], "generate_now")
    assert done["open"][0] == "service_request"
    assert fs.get("service_request", done["open"][1])["planned_for"] == add_months_to(day, 6)
    assert fs.get("maintenance_plan", plan["id"])["next_due"] == add_months_to(day, 12)


def test_an_asset_without_plans_keeps_its_hand_typed_date_until_it_is_maintained(fs: CRM) -> None:
    day = today(fs)
    asset = setup_asset(fs, next_service_date=add_days(day, -1))
    repair = work_order(fs, asset, assigned_to=fs.id("eng1"), status="assigned")
    fs.system.update("service_request", repair["id"], {"status": "resolved", "resolution": "更换风扇",
                                                       "labour_hours": 1}, repair["version"])
    asset = fs.get("customer_asset", asset["id"])
    assert asset["last_service_date"] == day and asset["next_service_date"] == day - timedelta(days=1)
    visit = work_order(fs, asset, service_type="maintenance", assigned_to=fs.id("eng1"), status="assigned")
    fs.as_("eng1").run_action("service_request", visit["id"], "complete_work", {"resolution": "保养完成",
                                                                               "labour_hours": "2"})
    asset = fs.get("customer_asset", asset["id"])
    assert asset["next_service_date"] is None and asset["service_status"] == "none"


def test_texts_the_pack_writes_follow_the_language_setting(fs: CRM) -> None:
    fs.runtime.set_setting("generated_text_language", "en")
    asset = setup_asset(fs)
    plan = fs.system.create("maintenance_plan", {"asset": asset["id"], "interval": 1, "next_due": add_days(today(fs), 1)})
    assert plan["name"] == "Every 1 month: PLC控制器 SN-001"
    fs.system.run_job("generate_maintenance_orders")
    (order,) = fs.find("service_request", f"maintenance_plan eq {plan['id']}")
    assert order["subject"] == f"Every 1 month: PLC控制器 SN-001 ({add_days(today(fs), 1)})"


# -- warnings ------------------------------------------------------------------------------------------------


def test_warranty_and_service_warnings_views_highlights_and_reminders(fs: CRM) -> None:
    day = today(fs)
    expiring = setup_asset(fs, serial="W-1", warranty_end=add_days(day, 10), next_service_date=add_days(day, 3))
    covered = setup_asset(fs, serial="W-2", warranty_end=add_days(day, 100), next_service_date=add_days(day, 60))
    expired = setup_asset(fs, serial="W-3", warranty_end=add_days(day, -5), next_service_date=add_days(day, -2))
    planned = setup_asset(fs, serial="W-4", warranty_end=add_days(day, 200))
    fs.system.create("maintenance_plan", {"asset": planned["id"], "next_due": add_days(day, 2)})
    assert [fs.get("customer_asset", a["id"])["warranty_status"] for a in (expiring, covered, expired)] == [
        "expiring", "in_warranty", "expired"]
    assert [fs.get("customer_asset", a["id"])["service_status"] for a in (expiring, covered, expired, planned)] == [
        "due_soon", "ok", "overdue", "due_soon"]
    assert in_view(fs, "customer_asset", "warranty_expiring") == {expiring["id"]}
    assert in_view(fs, "customer_asset", "out_of_warranty") == {expired["id"]}
    assert in_view(fs, "customer_asset", "service_due") == {expiring["id"], expired["id"], planned["id"]}
    assert in_view(fs, "customer_asset", "service_overdue") == {expired["id"]}
    assert in_view(fs, "customer_asset", "warranty_expiring", "sales1") == {expiring["id"]}  # the home card's
    highlighted = fs.system.query("customer_asset", ListQuery(
        highlight=fs.runtime.registry.entity("customer_asset").list.highlight, limit=50)).rows
    assert {r["id"] for r in highlighted if r["_highlight"]} == {expired["id"]}

    report = fs.system.run_job("refresh_asset_warnings")
    assert report == ["0 asset status(es) updated", "3 reminder(s) put on owners' activities"]
    calls = fs.find("activity", "customer_asset is_not_empty", actor="sales1", sort=["id"])
    assert {(c["customer_asset"], c["owner"], c["status"], c["activity_type"]) for c in calls} == {
        (expiring["id"], fs.id("sales1"), "planned", "call"),  # warranty, and service (no plan, no work order)
        (expired["id"], fs.id("sales1"), "planned", "call")}
    assert len(calls) == 3 and any(c["subject"].startswith("保修将于") for c in calls)
    assert all(c["planned_start"].date() == day for c in calls)
    assert fs.system.run_job("refresh_asset_warnings")[-1] == "0 reminder(s) put on owners' activities"

    # a longer warning period: the job moves the statuses on (and reminds once more)
    fs.runtime.set_setting("warranty_warning_days", 150)
    report = fs.system.run_job("refresh_asset_warnings")
    assert report == ["1 asset status(es) updated", "1 reminder(s) put on owners' activities"]
    assert fs.get("customer_asset", covered["id"])["warranty_status"] == "expiring"
    fs.runtime.set_setting("warranty_warning_days", 0)
    assert fs.system.run_job("refresh_asset_warnings")[0] == "2 asset status(es) updated"
    assert not in_view(fs, "customer_asset", "warranty_expiring")


def test_overdue_work_orders_are_listed_and_highlighted(fs: CRM) -> None:
    asset = setup_asset(fs)
    late = work_order(fs, asset, due_date=add_days(today(fs), -2))
    on_time = work_order(fs, asset)
    done = work_order(fs, asset, due_date=add_days(today(fs), -2), status="resolved", resolution="电话指导解决")
    assert in_view(fs, "service_request", "overdue") == {late["id"]}
    entity = fs.runtime.registry.entity("service_request")
    rows = fs.system.query("service_request", ListQuery(highlight=entity.list.highlight, limit=50)).rows
    assert {r["id"]: bool(r["_highlight"]) for r in rows} == {late["id"]: True, on_time["id"]: False, done["id"]: False}


# -- demo data and installing onto a running CRM ----------------------------------------------------------


def test_demo_data(db_url: str) -> None:
    from engine.demo import generate, generate_pack

    runtime = make_runtime(db_url, STANDARD, PACK)
    generate(runtime, customers=24, seed=5)
    demo = generate_pack(runtime, "field_service", seed=5)
    fs = CRM(runtime, {})
    assert demo is not None
    assert {u.username for u in demo.users} == {"dispatcher1", "engineer1", "engineer2", "engineer3"}
    assert all(demo.counts.get(e, 0) > 0 for e in ("customer_asset", "asset_component", "maintenance_plan",
                                                     "service_request", "work_order_part"))
    assert generate_pack(fs.runtime, "field_service") is None  # once per database
    engineers = fs.find("employee", *view(fs, "employee", "field_engineers"))
    assert {e["name"] for e in engineers} == {"周强", "吴磊", "郑浩"}
    assert fs.find("service_request", *view(fs, "service_request", "dispatch_queue"))
    assert fs.find("service_request", "maintenance_plan is_not_empty")  # the job ran in the demo
    assert fs.find("customer_asset", "parent_asset is_not_empty")
    assert fs.find("asset_component", "parent_component is_not_empty")
    closed = fs.find("service_request", "asset is_not_empty", "status eq closed")
    assert closed and all(o["confirmed_by"] and o["labour_hours"] is not None for o in closed)
    assert fs.find("customer_asset", "warranty_status eq expiring")
    assert fs.find("activity", "customer_asset is_not_empty")
    assert not fs.find("service_request", "region is_empty", "customer is_not_empty")
    runtime.engine.dispose()


def test_installing_onto_a_running_standard_crm_keeps_every_row(db_url: str) -> None:
    from engine.demo import generate
    from engine.runtime.customization import load_overlay
    from engine.runtime.installer import active_dirs, install, installed

    engine = make_engine(db_url)
    standard = Runtime(load_registry([STANDARD]), engine)
    standard.migrate()
    generate(standard, customers=20, seed=3)
    customer = standard.records().query("customer", ListQuery(filters=["owner is_not_empty"], limit=1)).rows[0]
    standard.records().create("service_request", {"subject": "设备无法开机", "customer": customer["id"],
                                                  "service_type": "repair", "assigned_to": customer["owner"]})

    def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table that existed before, with the columns it had (ordered)."""
        meta = sa.MetaData()
        out = {}
        with engine.connect() as conn:
            for name in sorted(before_tables):
                table = sa.Table(name, meta, autoload_with=conn)
                columns = [table.c[c] for c in before_tables[name]]
                out[name] = sorted((tuple(r) for r in conn.execute(sa.select(*columns))), key=repr)
        return out

    inspector = sa.inspect(engine)
    before_tables = {t: [c["name"] for c in inspector.get_columns(t)] for t in inspector.get_table_names()}
    before = snapshot()
    assert sum(len(rows) for rows in before.values()) > 200 and before["service_request"]
    report = install([STANDARD], PACK, engine, timezone="Asia/Shanghai", files_dir="files")
    assert (report.name, report.version) == ("field_service", "1.0.0")
    assert any("customer_asset" in line for line in report.ddl)
    assert installed(engine)["field_service"][0] == "1.0.0"
    runtime = Runtime(load_registry(active_dirs([STANDARD], engine), load_overlay(engine)), engine)
    assert runtime.migration_plan().empty
    after = snapshot()
    changed = {t for t in before if after[t] != before[t]}
    assert changed <= {"crm_pack", "crm_audit"}, changed  # every other row, every value, as it was
    records = runtime.records()
    request = records.query("service_request", ListQuery(limit=1, sort=["-id"])).rows[0]
    assert request["labour_hours"] is None and request["asset"] is None
    plc = records.query("product", ListQuery(filters=["code eq P-1003"], limit=1)).rows[0]
    asset = records.create("customer_asset", {"customer": customer["id"], "product": plc["id"], "serial_number": "X1"})
    assert asset["owner"] == customer["owner"]
    engine.dispose()


def add_days(day: date, days: int) -> str:
    return (day + timedelta(days=days)).isoformat()


def add_months_to(day: date, months: int) -> date:
    import calendar

    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
