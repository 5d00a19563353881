"""Record life cycle: stages, system columns, optimistic locking, history, recycle bin, on_delete."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from engine.runtime.errors import Conflict, NotFound, ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import User
from tests.runtime.conftest import codes


def _account(rec: RecordService, name: str = "Acme", **values: object) -> dict:
    return rec.create("account", {"name": name, **values})


# -- stages ---------------------------------------------------------------------------------------
def test_stage_default_and_rules(rec: RecordService) -> None:
    acct = _account(rec)
    deal = rec.create("deal", {"name": "D", "account": acct["id"]})
    assert deal["stage"] == "qualify"  # the stage default
    # qualify lists `to: [proposal, lost]`: won is not reachable from it
    with pytest.raises(ValidationFailed) as caught:
        rec.update("deal", deal["id"], {"stage": "won"}, version=1)
    assert codes(caught.value, "stage") == ["stage_transition"]
    # proposal requires amount
    with pytest.raises(ValidationFailed) as caught:
        rec.update("deal", deal["id"], {"stage": "proposal"}, version=1)
    assert codes(caught.value, "amount") == ["stage_requires"]
    assert "Proposal" in caught.value.errors["amount"][0].text("en")
    assert "方案报价" in caught.value.errors["amount"][0].text("zh")
    deal = rec.update("deal", deal["id"], {"stage": "proposal", "amount": 100}, version=1)
    assert deal["stage"] == "proposal"
    # proposal has no `to`: any stage may follow
    deal = rec.update("deal", deal["id"], {"stage": "won"}, version=deal["version"])
    assert deal["stage"] == "won"
    # lost requires a reason
    with pytest.raises(ValidationFailed) as caught:
        rec.update("deal", deal["id"], {"stage": "lost"}, version=deal["version"])
    assert codes(caught.value, "lost_reason") == ["stage_requires"]
    with pytest.raises(ValidationFailed) as caught:
        rec.update("deal", deal["id"], {"stage": "nowhere"}, version=deal["version"])
    assert codes(caught.value, "stage") == ["not_a_stage"]


def test_stage_requirements_apply_on_create(rec: RecordService) -> None:
    acct = _account(rec)
    with pytest.raises(ValidationFailed) as caught:
        rec.create("deal", {"name": "D", "account": acct["id"], "stage": "proposal"})
    assert codes(caught.value, "amount") == ["stage_requires"]
    deal = rec.create("deal", {"name": "D", "account": acct["id"], "stage": "proposal", "amount": 5})
    assert deal["stage"] == "proposal"


def test_required_stage_field_cannot_be_cleared_once_reached(rec: RecordService) -> None:
    acct = _account(rec)
    deal = rec.create("deal", {"name": "D", "account": acct["id"], "stage": "proposal", "amount": 5})
    # clearing the amount while staying at proposal is not a stage change: allowed by the rules
    # as written (requires applies on entering the stage)
    deal = rec.update("deal", deal["id"], {"amount": None}, version=1)
    assert deal["amount"] is None


# -- system columns -------------------------------------------------------------------------------
def test_system_columns(runtime: Runtime, alice: User, bob: User) -> None:
    as_alice = runtime.records(alice.actor())
    acct = as_alice.create("account", {"name": "A", "in_pool": True})
    assert acct["created_by"] == acct["updated_by"] == acct["owner"] == alice.id
    assert acct["manager"] == alice.id  # default: $me
    assert acct["version"] == 1 and acct["deleted_at"] is None
    assert acct["created_at"] == acct["updated_at"]
    assert acct["_titles"]["owner"] == "Alice"
    time.sleep(1.05)  # the clock has one-second resolution
    system = runtime.records()
    changed = system.update("account", acct["id"], {"notes": "x", "owner": bob.id}, version=1)
    assert changed["version"] == 2
    assert changed["created_by"] == alice.id and changed["created_at"] == acct["created_at"]
    assert changed["updated_by"] is None  # the system acted
    assert changed["updated_at"] > acct["updated_at"]
    assert changed["owner"] == bob.id and changed["_titles"]["owner"] == "Bob"
    same = system.update("account", acct["id"], {"notes": "x"}, version=2)
    assert same["version"] == 2  # nothing changed: no write, no new version


def test_owner_set_explicitly_and_checked(runtime: Runtime, rec: RecordService, alice: User) -> None:
    acct = rec.create("account", {"name": "A", "owner": alice.id})
    assert acct["owner"] == alice.id
    assert rec.create("account", {"name": "B"})["owner"] is None  # the system owns nothing


def test_stale_and_missing_version(rec: RecordService) -> None:
    acct = _account(rec)
    rec.update("account", acct["id"], {"notes": "first"}, version=1)
    with pytest.raises(Conflict) as caught:
        rec.update("account", acct["id"], {"notes": "second"}, version=1)
    assert "version 2" in caught.value.message.text("en")
    assert caught.value.status == 409
    with pytest.raises(ValidationFailed) as failed:
        rec.update("account", acct["id"], {"notes": "third"}, version=None)
    assert codes(failed.value, "version") == ["version_required"]
    assert rec.get("account", acct["id"])["notes"] == "first"


def test_missing_records_and_bad_ids(rec: RecordService) -> None:
    for bad in (999, "abc", -1, 2**64, "1; drop table account"):
        with pytest.raises(NotFound):
            rec.get("account", bad)
        with pytest.raises(NotFound):
            rec.update("account", bad, {"notes": "x"}, version=1)
        with pytest.raises(NotFound):
            rec.delete("account", bad)
    with pytest.raises(NotFound):
        rec.get("nothing", 1)
    with pytest.raises(NotFound):
        rec.query("nothing")


# -- history --------------------------------------------------------------------------------------
def _history(runtime: Runtime, entity: str, record_id: int) -> list[dict]:
    table = runtime.table("crm_history")
    with runtime.engine.connect() as conn:
        stmt = sa.select(table).where(table.c.entity == entity, table.c.record_id == record_id).order_by(table.c.id)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def test_history_of_every_action(runtime: Runtime, alice: User) -> None:
    rec = runtime.records(alice.actor())
    acct = rec.create("account", {"name": "A", "employees": 5, "tags": ["vip"]})
    created = rec.history("account", acct["id"])
    assert {h["action"] for h in created} == {"create"}
    by_field = {h["field"]: h for h in created}
    assert json.loads(by_field["name"]["new_value"]) == "A" and by_field["name"]["old_value"] is None
    assert json.loads(by_field["employees"]["new_value"]) == 5
    assert json.loads(by_field["tags"]["new_value"]) == ["vip"]
    assert all(h["user_id"] == alice.id and h["user_name"] == "Alice" and h["at"] is not None for h in created)

    rec.update("account", acct["id"], {"name": "B", "employees": 6, "notes": None}, version=1)
    updates = [h for h in rec.history("account", acct["id"]) if h["action"] == "update"]
    assert {h["field"]: (json.loads(h["old_value"]), json.loads(h["new_value"])) for h in updates} == {
        "name": ("A", "B"), "employees": (5, 6)}  # notes did not change: no entry

    rec.delete("account", acct["id"])
    system = runtime.records()
    system.restore("account", acct["id"])
    system.delete("account", acct["id"])
    system.purge("account", acct["id"])
    actions = [h["action"] for h in _history(runtime, "account", acct["id"])]
    assert actions[-5:] == ["update", "delete", "restore", "delete", "purge"]
    rows = _history(runtime, "account", acct["id"])
    assert rows[-4]["user_id"] == alice.id  # alice deleted, the system restored
    assert rows[-3]["user_id"] is None
    # newest first through the service
    with pytest.raises(NotFound):
        system.history("account", acct["id"])  # purged: the record itself is gone


# -- recycle bin ----------------------------------------------------------------------------------
def test_delete_restore_purge(rec: RecordService) -> None:
    acct = _account(rec)
    other = _account(rec, "Other")
    deleted = rec.delete("account", acct["id"])
    assert deleted["deleted_at"] is not None and deleted["version"] == 2
    with pytest.raises(NotFound):
        rec.get("account", acct["id"])
    with pytest.raises(NotFound):
        rec.delete("account", acct["id"])
    with pytest.raises(NotFound):
        rec.update("account", acct["id"], {"notes": "x"}, version=2)
    assert rec.get("account", acct["id"], include_deleted=True)["deleted_at"] is not None
    assert [r["id"] for r in rec.query("account", ListQuery(trash=True)).rows] == [acct["id"]]
    assert [r["id"] for r in rec.query("account").rows] == [other["id"]]
    with pytest.raises(ValidationFailed) as caught:
        rec.purge("account", other["id"])  # only from the recycle bin
    assert codes(caught.value, "") == ["not_deleted"]
    restored = rec.restore("account", acct["id"])
    assert restored["deleted_at"] is None and restored["version"] == 3
    with pytest.raises(ValidationFailed):
        rec.restore("account", acct["id"])
    rec.delete("account", acct["id"])
    rec.purge("account", acct["id"])
    with pytest.raises(NotFound):
        rec.get("account", acct["id"], include_deleted=True)
    assert rec.query("account", ListQuery(trash=True)).rows == []


def test_on_delete_restrict(rec: RecordService) -> None:
    acct = _account(rec)
    deal = rec.create("deal", {"name": "D", "account": acct["id"]})
    with pytest.raises(ValidationFailed) as caught:
        rec.delete("account", acct["id"])
    assert codes(caught.value, "") == ["referenced"]
    assert "1 Deal" in caught.value.errors[""][0].text("en")
    rec.get("account", acct["id"])  # still there
    rec.delete("deal", deal["id"])
    rec.delete("account", acct["id"])  # a deal in the recycle bin does not hold it
    with pytest.raises(ValidationFailed) as caught:
        rec.purge("account", acct["id"])  # ... but it cannot be purged while that deal exists
    assert codes(caught.value, "") == ["referenced"]
    rec.purge("deal", deal["id"])
    rec.purge("account", acct["id"])


def test_on_delete_cascade(rec: RecordService) -> None:
    acct = _account(rec)
    deal = rec.create("deal", {"name": "D", "account": acct["id"]})
    lines = [rec.create("deal_line", {"deal": deal["id"], "product": p, "price": 10}) for p in "ab"]
    rec.delete("deal", deal["id"])
    assert rec.query("deal_line").rows == []
    assert {r["id"] for r in rec.query("deal_line", ListQuery(trash=True)).rows} == {x["id"] for x in lines}
    # restoring the deal brings back the lines deleted with it
    rec.restore("deal", deal["id"])
    assert {r["id"] for r in rec.query("deal_line").rows} == {x["id"] for x in lines}
    assert rec.get("deal", deal["id"])["total"] == 20
    # a line deleted on its own before the deal stays in the recycle bin
    rec.delete("deal_line", lines[0]["id"])
    time.sleep(1.05)
    rec.delete("deal", deal["id"])
    rec.restore("deal", deal["id"])
    assert [r["id"] for r in rec.query("deal_line").rows] == [lines[1]["id"]]
    rec.delete("deal", deal["id"])
    rec.purge("deal", deal["id"])
    for line in lines:
        with pytest.raises(NotFound):
            rec.get("deal_line", line["id"], include_deleted=True)


def test_on_delete_set_null_on_purge(rec: RecordService) -> None:
    parent = _account(rec, "Parent")
    child = _account(rec, "Child", parent=parent["id"])
    rec.delete("account", parent["id"])
    assert rec.get("account", child["id"])["parent"] == parent["id"]  # kept while restorable
    rec.purge("account", parent["id"])
    after = rec.get("account", child["id"])
    assert after["parent"] is None
    assert after["version"] == child["version"] + 1
    assert any(h["field"] == "parent" and h["action"] == "update" for h in rec.history("account", child["id"]))
