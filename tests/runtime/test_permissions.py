"""Record scopes over the organisation tree, sharing, field rules and "why can I see this?",
decided in the runtime for the standard CRM's roles (plus a department-scoped test role)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.metadata import load_registry
from engine.runtime.db import make_engine
from engine.runtime.errors import BadQuery, Forbidden, NotFound, ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from engine.runtime.users import User, create_user
from tests.conftest import ROOT

STANDARD = ROOT / "packs" / "standard_crm"
TEST_ROLE = {"kind": "role", "ref": "test:role/dept_viewer", "data": {
    "role": "dept_viewer", "label": {"en": "Department viewer", "zh": "部门查看"},
    "permissions": {"customer": {"read": "department", "edit": "own", "create": "all"}},
    "fields": {"customer.annual_revenue": "hidden", "customer.value_grade": "read_only"}}}


@pytest.fixture
def org(db_url: str) -> Any:
    """HQ > East > East-1, and North; people in each; a customer owned by each person."""
    runtime = Runtime(load_registry([STANDARD], [TEST_ROLE]), make_engine(db_url))
    runtime.migrate()
    rec = runtime.records()
    people: dict[str, User] = {}
    for name, roles in (("manager", ("sales_manager",)), ("sales1", ("salesperson",)), ("east1", ("salesperson",)),
                        ("sales2", ("salesperson",)), ("viewer", ("dept_viewer",)), ("admin", ("admin",))):
        people[name] = create_user(runtime, name, f"demo-{name}", roles=roles)
    hq = rec.create("department", {"name": "总部"})["id"]
    east = rec.create("department", {"name": "华东", "parent": hq})["id"]
    east1 = rec.create("department", {"name": "华东一组", "parent": east})["id"]
    north = rec.create("department", {"name": "华北", "parent": hq})["id"]
    for name, dept in (("manager", east), ("sales1", east), ("viewer", east), ("east1", east1), ("sales2", north)):
        rec.create("employee", {"name": name, "user": people[name].id, "department": dept})
    customers = {name: rec.create("customer", {"name": f"{name} 的客户", "owner": people[name].id,
                                               "annual_revenue": "990001", "value_grade": "a"})["id"]
                 for name in ("manager", "sales1", "east1", "sales2")}
    yield runtime, people, customers
    runtime.engine.dispose()


def visible(runtime: Runtime, user: User, entity: str = "customer") -> set[str]:
    return {r["name"] for r in runtime.records(user.actor()).query(entity, ListQuery(limit=500)).rows}


def test_scopes_follow_the_department_tree(org: Any) -> None:
    runtime, people, customers = org
    assert visible(runtime, people["sales1"]) == {"sales1 的客户"}  # own
    assert visible(runtime, people["manager"]) == {"manager 的客户", "sales1 的客户", "east1 的客户"}  # subtree
    assert visible(runtime, people["viewer"]) == {"manager 的客户", "sales1 的客户"}  # department only
    assert len(visible(runtime, people["admin"])) == 4
    manager = runtime.records(people["manager"].actor())
    assert manager.query("customer").total == 3  # counts carry the same scope
    with pytest.raises(NotFound):
        manager.get("customer", customers["sales2"])  # outside the subtree: not even its existence
    record = manager.get("customer", customers["east1"])
    manager.update("customer", record["id"], {"remarks": "checked"}, record["version"])  # edit: subtree


def test_moving_an_employee_changes_reach_at_once(org: Any) -> None:
    runtime, people, customers = org
    rec = runtime.records()
    employee = rec.query("employee", ListQuery(filters=[f"user eq {people['sales2'].id}"])).rows[0]
    east = rec.query("department", ListQuery(filters=["name eq 华东"])).rows[0]["id"]
    rec.update("employee", employee["id"], {"department": east}, employee["version"])
    assert "sales2 的客户" in visible(runtime, people["manager"])


def test_writes_may_not_leave_the_scope_or_assign_beyond_it(org: Any) -> None:
    runtime, people, customers = org
    sales1 = runtime.records(people["sales1"].actor())
    record = sales1.get("customer", customers["sales1"])
    with pytest.raises(Forbidden):  # salespeople may not assign
        sales1.update("customer", record["id"], {"owner": people["sales2"].id}, record["version"])
    with pytest.raises(Forbidden):
        sales1.create("customer", {"name": "给别人建的", "owner": people["sales2"].id})
    manager = runtime.records(people["manager"].actor())
    mine = manager.get("customer", customers["manager"])
    with pytest.raises((Forbidden, NotFound)):  # sales2 is outside the manager's assign scope
        manager.update("customer", mine["id"], {"owner": people["sales2"].id}, mine["version"])
    moved = manager.update("customer", mine["id"], {"owner": people["east1"].id}, mine["version"])
    assert moved["owner"] == people["east1"].id


def test_sharing_grants_read_or_edit_and_can_be_revoked(org: Any) -> None:
    runtime, people, customers = org
    sales1, sales2 = runtime.records(people["sales1"].actor()), runtime.records(people["sales2"].actor())
    cid = customers["sales1"]
    with pytest.raises(NotFound):
        sales2.get("customer", cid)
    sales1.share("customer", cid, people["sales2"].id, "read")
    assert sales2.get("customer", cid)["name"] == "sales1 的客户"
    assert "sales1 的客户" in visible(runtime, people["sales2"])
    with pytest.raises(Forbidden):  # read share: no edit
        sales2.update("customer", cid, {"remarks": "x"}, sales2.get("customer", cid)["version"])
    sales1.share("customer", cid, people["sales2"].id, "edit")
    sales2.update("customer", cid, {"remarks": "x"}, sales2.get("customer", cid)["version"])
    assert [s["access"] for s in sales1.shares("customer", cid)] == ["edit"]
    with pytest.raises((Forbidden, NotFound)):  # sharing needs the share action on the record
        runtime.records(people["east1"].actor()).share("customer", cid, people["east1"].id)
    sales1.unshare("customer", cid, people["sales2"].id)
    with pytest.raises(NotFound):
        sales2.get("customer", cid)
    actions = [h["action"] for h in runtime.records().history("customer", cid)]
    assert "share" in actions and "unshare" in actions
    with pytest.raises(ValidationFailed):
        sales1.share("customer", cid, people["sales2"].id, "own")


def test_hidden_fields_never_leave_and_read_only_fields_do_not_change(org: Any) -> None:
    runtime, people, customers = org
    viewer = runtime.records(people["viewer"].actor())
    record = viewer.get("customer", customers["sales1"])
    assert "annual_revenue" not in record and record["value_grade"] == "a"
    assert all("annual_revenue" not in r for r in viewer.query("customer").rows)
    for bad in (ListQuery(filters=["annual_revenue gt 1"]), ListQuery(sort=["annual_revenue"])):
        with pytest.raises(BadQuery) as caught:
            viewer.query("customer", bad)
        assert "990001" not in str(caught.value.message)
    assert viewer.query("customer", ListQuery(search="990001")).total == 0
    with pytest.raises(BadQuery):
        viewer.summarize("customer", None, "customer_type", ["annual_revenue"])
    admin = runtime.records()
    full = admin.get("customer", customers["manager"])
    admin.update("customer", full["id"], {"annual_revenue": "5"}, full["version"])
    assert all(h["field"] != "annual_revenue" for h in viewer.history("customer", customers["manager"]))
    own = runtime.records(people["viewer"].actor())
    mine = own.create("customer", {"name": "viewer 的客户"})
    with pytest.raises(ValidationFailed) as caught:
        own.update("customer", mine["id"], {"value_grade": "b", "annual_revenue": "1"}, mine["version"])
    assert {m.code for m in caught.value.errors["value_grade"]} == {"read_only"}
    assert {m.code for m in caught.value.errors["annual_revenue"]} == {"unknown_field"}  # no hint it exists


def test_most_permissive_role_wins(org: Any) -> None:
    runtime, people, customers = org
    both = create_user(runtime, "both", "demo-both", roles=("dept_viewer", "sales_manager"))
    runtime.records().create("employee", {"name": "both", "user": both.id,
                                          "department": runtime.records().query(
                                              "department", ListQuery(filters=["name eq 华东"])).rows[0]["id"]})
    records = runtime.records(both.actor())
    assert "annual_revenue" in records.get("customer", customers["sales1"])  # the manager role shows it
    assert visible(runtime, both) == {"manager 的客户", "sales1 的客户", "east1 的客户"}  # subtree beats department


def test_why_can_i_see_this(org: Any) -> None:
    runtime, people, customers = org
    admin = runtime.records(people["admin"].actor())
    reasons = {d.action: d for d in admin.explain("customer", customers["east1"], people["manager"].actor())}
    assert reasons["read"].allowed and "department or one below" in reasons["read"].reason["en"]
    assert not reasons["import"].allowed or reasons["import"].reason
    denied = {d.action: d for d in admin.explain("customer", customers["sales2"], people["sales1"].actor())}
    assert not denied["read"].allowed and "outside" in denied["read"].reason["en"]
    assert not denied["import"].allowed and "no role" in denied["import"].reason["en"]
    runtime.records(people["sales2"].actor()).share("customer", customers["sales2"], people["sales1"].id)
    shared = {d.action: d for d in admin.explain("customer", customers["sales2"], people["sales1"].actor())}
    assert shared["read"].allowed and "shared with you" in shared["read"].reason["en"]
    with pytest.raises(Forbidden):
        runtime.records(people["manager"].actor()).explain("customer", customers["sales1"], people["sales1"].actor())


def test_filters_for_team_and_shared_records(org: Any) -> None:
    runtime, people, customers = org
    manager = runtime.records(people["manager"].actor())
    team = {r["name"] for r in manager.query("customer", ListQuery(filters=["owner in $subtree"])).rows}
    assert team == {"manager 的客户", "sales1 的客户", "east1 的客户"}
    dept = {r["name"] for r in manager.query("customer", ListQuery(filters=["owner eq $department"])).rows}
    assert dept == {"manager 的客户", "sales1 的客户"}
    others = {r["name"] for r in manager.query("customer", ListQuery(filters=["owner ne $department"])).rows}
    assert others == {"east1 的客户"}
    sales2 = runtime.records(people["sales2"].actor())
    assert sales2.query("customer", ListQuery(filters=["shared eq $me"])).total == 0
    runtime.records(people["sales1"].actor()).share("customer", customers["sales1"], people["sales2"].id)
    shared = sales2.query("customer", ListQuery(filters=["shared eq $me"])).rows
    assert [r["name"] for r in shared] == ["sales1 的客户"]
    with pytest.raises(BadQuery):
        sales2.query("customer", ListQuery(filters=["shared eq 5"]))


def test_restore_and_purge_have_their_own_scopes(org: Any) -> None:
    runtime, people, customers = org
    role = runtime.registry.role("salesperson")
    assert role.scope("contact", "restore") == role.scope("contact", "delete")  # undeclared: as delete


def test_internal_fields_are_hidden_from_every_user(org: Any) -> None:
    runtime, people, customers = org
    customer = runtime.registry.entity("customer")
    internal = [f.name for f in customer.fields.values() if f.internal]
    if not internal:
        pytest.skip("the standard pack declares no internal customer field")
    admin = runtime.records(people["admin"].actor())
    record = admin.get("customer", customers["sales1"])
    assert not set(internal) & set(record)
    assert set(internal) <= set(runtime.records().get("customer", customers["sales1"]))  # the system sees them
