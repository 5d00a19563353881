"""Derived values: autonumber codes (unique under concurrency), computed fields and rollups."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from engine.runtime.errors import ValidationFailed
from engine.runtime.service import RecordService, Runtime


def _prefix(runtime: Runtime) -> str:
    now = runtime.now()
    return f"KH{now.year:04d}{now.month:02d}-"


def test_autonumber_pattern(runtime: Runtime, rec: RecordService) -> None:
    first = rec.create("account", {"name": "A"})
    second = rec.create("account", {"name": "B"})
    assert first["code"] == _prefix(runtime) + "00001"
    assert second["code"] == _prefix(runtime) + "00002"
    # a failed create gives its number back (the counter is part of the transaction)
    with pytest.raises(ValidationFailed):
        rec.create("account", {"name": "C", "employees": -5})
    ids = rec.bulk_create("account", [{"name": "D"}, {"name": "E"}])
    codes = [rec.get("account", i)["code"] for i in ids]
    assert codes == [_prefix(runtime) + "00003", _prefix(runtime) + "00004"]
    # the code is kept on update
    assert rec.update("account", first["id"], {"name": "A2"}, version=1)["code"] == first["code"]


def test_autonumber_unique_under_concurrent_inserts(runtime: Runtime) -> None:
    threads, per_thread = 8, 10
    codes: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            service = runtime.records()
            start.wait()
            for i in range(per_thread):
                code = service.create("account", {"name": f"T{n}-{i}"})["code"]
                with lock:
                    codes.append(code)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    prefix = _prefix(runtime)
    assert len(set(codes)) == threads * per_thread
    assert sorted(codes) == [f"{prefix}{n:05d}" for n in range(1, threads * per_thread + 1)]


def _deal(rec: RecordService, account: dict, **values: object) -> dict:
    return rec.create("deal", {"name": "D", "account": account["id"], **values})


def test_computed_field(rec: RecordService) -> None:
    acct = rec.create("account", {"name": "A"})
    deal = _deal(rec, acct)
    line = rec.create("deal_line", {"deal": deal["id"], "product": "P", "quantity": 3, "price": "10.10", "discount": 10})
    assert line["line_amount"] == Decimal("27.27")  # 3 * 10.10 * 0.9
    line = rec.update("deal_line", line["id"], {"discount": 0}, version=1)
    assert line["line_amount"] == Decimal("30.30")
    line = rec.update("deal_line", line["id"], {"price": None}, version=line["version"])
    assert line["line_amount"] is None  # a missing operand: no value, not an error
    # defaults take part: quantity 1, discount 0
    other = rec.create("deal_line", {"deal": deal["id"], "product": "Q", "price": 7})
    assert other["line_amount"] == Decimal("7.00")
    assert rec.to_json("deal_line", other)["line_amount"] == "7.00"
    # a result the column cannot hold is left empty instead of failing the save (on PostgreSQL,
    # a numeric overflow)
    huge = rec.create("deal_line", {"deal": deal["id"], "product": "H", "quantity": "99999999999999",
                                    "price": "99999999999999"})
    assert huge["line_amount"] is None
    assert rec.get("deal_line", huge["id"])["line_amount"] is None


def test_rollups_follow_children(rec: RecordService) -> None:
    acct = rec.create("account", {"name": "A"})
    other = rec.create("account", {"name": "B"})
    deal = _deal(rec, acct)
    assert rec.get("account", acct["id"])["deal_count"] == 1
    a = rec.create("deal_line", {"deal": deal["id"], "product": "a", "price": 10, "quantity": 2})
    b = rec.create("deal_line", {"deal": deal["id"], "product": "b", "price": 5})
    assert rec.get("deal", deal["id"])["total"] == Decimal("25.00")
    rec.update("deal_line", b["id"], {"price": 6}, version=1)
    assert rec.get("deal", deal["id"])["total"] == Decimal("26.00")
    rec.delete("deal_line", a["id"])
    assert rec.get("deal", deal["id"])["total"] == Decimal("6.00")
    rec.restore("deal_line", a["id"])
    assert rec.get("deal", deal["id"])["total"] == Decimal("26.00")
    # moving a line to another deal updates both
    deal2 = _deal(rec, acct)
    rec.update("deal_line", b["id"], {"deal": deal2["id"]}, version=2)
    assert rec.get("deal", deal["id"])["total"] == Decimal("20.00")
    assert rec.get("deal", deal2["id"])["total"] == Decimal("6.00")
    assert rec.get("account", acct["id"])["deal_count"] == 2
    # count and filtered sum on the account
    won = _deal(rec, acct, stage="proposal", amount=100)
    rec.update("deal", won["id"], {"stage": "won"}, version=1)
    _deal(rec, acct, stage="proposal", amount=50)  # not won: not in won_total
    got = rec.get("account", acct["id"])
    assert (got["deal_count"], got["won_total"]) == (4, Decimal("100.00"))
    rec.update("deal", won["id"], {"amount": 120}, version=2)
    assert rec.get("account", acct["id"])["won_total"] == Decimal("120.00")
    rec.update("deal", won["id"], {"account": other["id"]}, version=3)
    assert rec.get("account", acct["id"])["won_total"] is None  # no won deal left
    assert rec.get("account", other["id"])["won_total"] == Decimal("120.00")
    rec.delete("deal", won["id"])
    assert (rec.get("account", other["id"])["deal_count"], rec.get("account", other["id"])["won_total"]) == (0, None)
    rec.restore("deal", won["id"])
    assert rec.get("account", other["id"])["deal_count"] == 1
    assert rec.to_json("account", rec.get("account", other["id"]))["won_total"] == "120.00"


def test_bulk_create_updates_nothing_it_should_not(rec: RecordService) -> None:
    acct = rec.create("account", {"name": "A"})
    ids = rec.bulk_create("deal", [{"name": f"D{i}", "account": acct["id"]} for i in range(3)])
    assert len(ids) == 3
    assert all(rec.get("deal", i)["stage"] == "qualify" for i in ids)
    with pytest.raises(ValidationFailed) as caught:
        rec.bulk_create("deal", [{"name": "ok", "account": acct["id"]}, {"account": 999}])
    assert "1.name" in caught.value.errors
    assert len(rec.query("deal").rows) == 3


def test_bulk_create_refreshes_rollups_and_checks_references(rec: RecordService) -> None:
    a = rec.create("account", {"name": "A"})
    b = rec.create("account", {"name": "B"})
    gone = rec.create("account", {"name": "Gone"})
    rec.delete("account", gone["id"])
    rec.bulk_create("deal", [{"name": "1", "account": a["id"]}, {"name": "2", "account": a["id"]},
                             {"name": "3", "account": b["id"], "stage": "won", "amount": 9}])
    assert rec.get("account", a["id"])["deal_count"] == 2
    got = rec.get("account", b["id"])
    assert (got["deal_count"], got["won_total"]) == (1, Decimal("9.00"))
    with pytest.raises(ValidationFailed) as caught:
        rec.bulk_create("deal", [{"name": "x", "account": gone["id"]}])
    assert [m.code for m in caught.value.errors["0.account"]] == ["no_such_record"]


def test_bulk_create_checks_unique_fields(build_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = build_runtime(overlay=[{"kind": "entity", "data": {"extend": "account", "fields": {
        "x_tax_id": {"type": "string", "unique": True, "label": {"en": "Tax id", "zh": "税号"}}}}}])
    rec = rt.records()
    rec.create("account", {"name": "A", "x_tax_id": "T1"})
    with pytest.raises(ValidationFailed) as caught:
        rec.bulk_create("account", [{"name": "B", "x_tax_id": "T2"}, {"name": "C", "x_tax_id": "T2"},
                                    {"name": "D", "x_tax_id": "T1"}, {"name": "E"}])
    assert set(caught.value.errors) == {"1.x_tax_id", "2.x_tax_id"}
    assert len(rec.bulk_create("account", [{"name": "B", "x_tax_id": "T2"}, {"name": "E"}])) == 2


def test_filters_and_sorts_on_derived_fields(rec: RecordService) -> None:
    from engine.runtime.query import ListQuery

    acct = rec.create("account", {"name": "A"})
    empty = rec.create("account", {"name": "B"})
    deal = _deal(rec, acct)
    cheap = rec.create("deal_line", {"deal": deal["id"], "product": "cheap", "price": 2})
    dear = rec.create("deal_line", {"deal": deal["id"], "product": "dear", "price": 200})
    assert [r["id"] for r in rec.query("deal_line", ListQuery(filters=["line_amount gt 10.5"])).rows] == [dear["id"]]
    assert [r["id"] for r in rec.query("deal_line", ListQuery(sort=["-line_amount"])).rows] == [dear["id"], cheap["id"]]
    assert [r["id"] for r in rec.query("account", ListQuery(filters=["deal_count gte 1"])).rows] == [acct["id"]]
    assert [r["id"] for r in rec.query("account", ListQuery(filters=["deal_count eq 0"])).rows] == [empty["id"]]
    assert [r["id"] for r in rec.query("deal", ListQuery(filters=["total between 100,300"])).rows] == [deal["id"]]
