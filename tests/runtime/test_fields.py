"""Every field type: values round-trip (create -> get -> to_json) and bad values are refused per field."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from engine.runtime.errors import ValidationFailed
from engine.runtime.service import RecordService, Runtime
from tests.runtime.conftest import codes

SHA = "ab" * 32


def test_every_field_type_round_trips(runtime: Runtime, rec: RecordService) -> None:
    parent = rec.create("account", {"name": "Parent Co"})
    data = {
        "name": "  Acme  ",
        "industry": "IT",  # a label is accepted and stored as the key
        "tags": ["vip", "risk", "vip"],
        "revenue": "1,234.5",
        "employees": "42",
        "rating": "123.456",
        "share": "12.5%",
        "hot": "yes",
        "founded": "2020/1/2",
        "next_call": "2024-05-01T10:00:00+00:00",
        "email": "Sales@Acme.COM",
        "phone": "+86 10-1234 5678",
        "website": "acme.example.com",
        "notes": "line one\nline two",
        "parent": parent["id"],
        "logo": {"name": "dir/logo.png", "size": 999, "content_type": "image/png", "sha256": SHA},
    }
    created = rec.create("account", data)
    got = rec.get("account", created["id"])
    assert got == created
    assert got["name"] == "Acme"
    assert got["industry"] == "it"
    assert got["tags"] == ["vip", "risk"]
    assert got["revenue"] == Decimal("1234.50")
    assert got["employees"] == 42
    assert got["rating"] == Decimal("123.46")  # scale 2
    assert got["share"] == Decimal("12.50")
    assert got["hot"] is True
    assert got["in_pool"] is False  # default
    assert got["founded"] == date(2020, 1, 2)
    assert got["next_call"] == datetime(2024, 5, 1, 18, 0)  # UTC converted to Asia/Shanghai
    assert got["email"] == "sales@acme.com"
    assert got["website"] == "https://acme.example.com"
    assert got["logo"] == {"name": "dir_logo.png", "size": 999, "content_type": "image/png", "sha256": SHA}
    assert got["_titles"]["parent"] == "Parent Co"
    out = rec.to_json("account", got)
    assert out["tags"] == ["vip", "risk"]
    assert out["revenue"] == "1234.50" and out["rating"] == "123.46" and out["share"] == "12.50"
    assert out["employees"] == 42 and out["hot"] is True
    assert out["founded"] == "2020-01-02"
    assert out["next_call"] == "2024-05-01T18:00:00"
    assert out["parent"] == {"id": parent["id"], "title": "Parent Co"}
    assert out["logo"]["sha256"] == SHA
    assert out["deal_count"] == 0
    assert isinstance(out["created_at"], str)
    # the JSON form is accepted back unchanged (a client may send what it read)
    again = rec.update("account", got["id"], {k: v for k, v in out.items() if k in data}, version=got["version"])
    assert again["version"] == got["version"]  # nothing changed, nothing written


def test_decimal_precision_is_exact(rec: RecordService) -> None:
    # 15 significant digits: exact on both databases (SQLite keeps NUMERIC as an 8-byte float)
    a = rec.create("account", {"name": "A", "rating": "999.99", "revenue": "9999999999999.99",
                               "share": "0.1"})
    got = rec.get("account", a["id"])
    assert got["rating"] == Decimal("999.99")
    assert got["revenue"] == Decimal("9999999999999.99")
    assert got["share"] == Decimal("0.10")
    assert rec.to_json("account", got)["revenue"] == "9999999999999.99"
    b = rec.create("account", {"name": "B", "revenue": "0.005", "rating": "-0.015"})
    assert (b["revenue"], b["rating"]) == (Decimal("0.01"), Decimal("-0.02"))  # half up (四舍五入)


def test_empty_values_clear_fields(rec: RecordService) -> None:
    a = rec.create("account", {"name": "A", "tags": ["vip"], "email": "a@b.cn", "employees": 3})
    b = rec.update("account", a["id"], {"tags": [], "email": "", "employees": None}, version=1)
    assert b["tags"] == [] and b["email"] is None and b["employees"] is None
    assert rec.to_json("account", b)["tags"] == []


def test_stage_and_user_fields_round_trip(rec: RecordService, alice) -> None:  # type: ignore[no-untyped-def]
    acct = rec.create("account", {"name": "A", "manager": alice.id})
    assert rec.get("account", acct["id"])["_titles"]["manager"] == "Alice"
    deal = rec.create("deal", {"name": "D", "account": acct["id"], "stage": "Qualify", "close_on": "2025-03-04"})
    assert deal["stage"] == "qualify"
    out = rec.to_json("deal", rec.get("deal", deal["id"]))
    assert out["account"] == {"id": acct["id"], "title": "A"}
    assert out["close_on"] == "2025-03-04"


def test_every_bad_value_is_reported_per_field(rec: RecordService) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rec.create("account", {
            "name": "x" * 101,
            "industry": "nope",
            "tags": 5,
            "revenue": "lots",
            "employees": "1.5",
            "rating": "1234.5",
            "share": "NaN",
            "hot": "maybe",
            "founded": "2020-13-01",
            "next_call": "soon",
            "email": "not-an-address",
            "phone": "call me",
            "website": "ftp://example.com",
            "notes": {"a": 1},
            "parent": "abc",
            "logo": {"name": "x", "size": 1, "sha256": "short"},
        })
    exc = caught.value
    expected = {
        "name": "too_long", "industry": "not_an_option", "tags": "not_a_list", "revenue": "not_a_number",
        "employees": "not_an_integer", "rating": "too_many_digits", "share": "not_a_number",
        "hot": "not_a_boolean", "founded": "not_a_date", "next_call": "not_a_datetime",
        "email": "not_an_email", "phone": "not_a_phone", "website": "not_a_url", "notes": "not_a_string",
        "parent": "not_an_id", "logo": "bad_attachment",
    }
    assert {k: codes(exc, k) for k in expected} == {k: [v] for k, v in expected.items()}
    # every message renders in both languages
    for messages in exc.errors.values():
        for m in messages:
            assert m.text("en") and m.text("zh")
    assert set(exc.as_dict()["fields"]) == set(expected)


@pytest.mark.parametrize(("field", "value", "code"), [
    ("employees", -1, "too_small"),
    ("employees", 2**63, "too_large"),
    ("employees", True, "not_a_number"),
    ("industry", "old", "inactive_option"),
    ("tags", ["vip", "nope"], "not_an_option"),
    ("logo", {"name": "big", "size": 5000, "sha256": SHA}, "file_too_large"),
    ("logo", "not json", "bad_attachment"),
    ("parent", 0, "not_an_id"),
    ("manager", "x", "not_an_id"),
])
def test_bad_value(rec: RecordService, field: str, value: object, code: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rec.create("account", {"name": "A", field: value})
    assert codes(caught.value, field) == [code]


def test_inactive_option_stays_readable_and_filterable(runtime: Runtime, rec: RecordService) -> None:
    # an option retired after records used it: stored values survive, filters still accept it
    a = rec.create("account", {"name": "A", "industry": "it"})
    table = runtime.table("account")
    with runtime.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == a["id"]).values(industry="old"))
    from engine.runtime.query import ListQuery
    assert [r["id"] for r in rec.query("account", ListQuery(filters=["industry eq old"])).rows] == [a["id"]]
    # saving another field keeps the retired value
    b = rec.update("account", a["id"], {"notes": "x"}, version=1)
    assert b["industry"] == "old"


def test_required_unknown_and_read_only_fields(rec: RecordService) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rec.create("account", {"bogus": 1, "code": "KH1", "deal_count": 3, "won_total": 1,
                               "created_at": "2020-01-01", "version": 7, "id": 5})
    exc = caught.value
    assert codes(exc, "name") == ["required"]
    assert codes(exc, "bogus") == ["unknown_field"]
    for name in ("code", "deal_count", "won_total", "created_at", "version", "id"):
        assert codes(exc, name) == ["read_only"], name
    line = rec.create("deal_line", {"deal": _deal(rec)["id"], "product": "P", "price": 1})
    with pytest.raises(ValidationFailed) as caught:
        rec.update("deal_line", line["id"], {"line_amount": 100}, version=1)
    assert codes(caught.value, "line_amount") == ["read_only"]


def test_required_cannot_be_cleared(rec: RecordService) -> None:
    a = rec.create("account", {"name": "A"})
    with pytest.raises(ValidationFailed) as caught:
        rec.update("account", a["id"], {"name": "  "}, version=1)
    assert codes(caught.value, "name") == ["required"]


def _deal(rec: RecordService, **values: object) -> dict:
    account = rec.create("account", {"name": "For deal"})
    return rec.create("deal", {"name": "D", "account": account["id"], **values})


def test_references_to_missing_or_deleted_records_and_users(rec: RecordService) -> None:
    gone = rec.create("account", {"name": "Gone"})
    rec.delete("account", gone["id"])
    for bad in (gone["id"], 999_999):
        with pytest.raises(ValidationFailed) as caught:
            rec.create("deal", {"name": "D", "account": bad})
        assert codes(caught.value, "account") == ["no_such_record"]
    with pytest.raises(ValidationFailed) as caught:
        rec.create("account", {"name": "A", "manager": 424242, "owner": 434343})
    assert codes(caught.value, "manager") == ["no_such_user"]
    assert codes(caught.value, "owner") == ["no_such_user"]
    # and on update
    ok = rec.create("account", {"name": "Live"})
    deal = rec.create("deal", {"name": "D", "account": ok["id"]})
    with pytest.raises(ValidationFailed) as caught:
        rec.update("deal", deal["id"], {"account": gone["id"]}, version=1)
    assert codes(caught.value, "account") == ["no_such_record"]


def test_unique_field(build_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = build_runtime(overlay=[{"kind": "entity", "data": {"extend": "account", "fields": {
        "x_tax_id": {"type": "string", "unique": True, "label": {"en": "Tax id", "zh": "税号"}}}}}])
    rec = rt.records()
    a = rec.create("account", {"name": "A", "x_tax_id": "T-1"})
    with pytest.raises(ValidationFailed) as caught:
        rec.create("account", {"name": "B", "x_tax_id": "T-1"})
    assert codes(caught.value, "x_tax_id") == ["not_unique"]
    b = rec.create("account", {"name": "B", "x_tax_id": "T-2"})
    with pytest.raises(ValidationFailed) as caught:
        rec.update("account", b["id"], {"x_tax_id": "T-1"}, version=1)
    assert codes(caught.value, "x_tax_id") == ["not_unique"]
    # saving a record with its own unchanged value is fine; so are many empty values
    rec.update("account", a["id"], {"name": "A2", "x_tax_id": "T-1"}, version=1)
    rec.create("account", {"name": "C"})
    rec.create("account", {"name": "D"})
