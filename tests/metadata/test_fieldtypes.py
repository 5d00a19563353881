"""Field types, one by one, with real Field objects from the sales_basic pack (no database)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.fieldtypes import FieldValueError, ValueContext, all_types, expression
from engine.fieldtypes.autonumber import render
from engine.fieldtypes.temporal import DayRange, relative_range
from engine.metadata import Registry, load_registry
from engine.metadata.registry import Field

FIXTURES = Path(__file__).parent.parent / "fixtures" / "packs"
CTX = ValueContext(user_id=7, now=datetime(2024, 3, 13, 10, 30))  # a Wednesday


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry([FIXTURES / "sales_basic"])


def field(registry: Registry, name: str, entity: str = "account") -> Field:
    return registry.entity(entity).field(name)


def coerce(f: Field, value: Any) -> Any:
    return f.kind.coerce(f, value, CTX)


def form(f: Field, raw: str | list[str]) -> Any:
    return f.kind.parse_form(f, raw, CTX)


def refused(f: Field, value: Any, code: str) -> None:
    with pytest.raises(FieldValueError) as info:
        coerce(f, value)
    assert info.value.message.code == code, str(info.value)


def test_every_built_in_type_is_registered() -> None:
    assert {"string", "text", "integer", "decimal", "money", "percent", "boolean", "date", "datetime",
            "email", "phone", "url", "choice", "multi_choice", "reference", "user", "stage",
            "autonumber", "attachment", "computed", "rollup"} <= set(all_types())


# -- text -----------------------------------------------------------------------------------------

def test_string_max_length(registry: Registry) -> None:
    name = field(registry, "name")  # max_length: 100
    assert coerce(name, "  Acme  ") == "Acme"
    assert coerce(name, "x" * 100) == "x" * 100
    refused(name, "x" * 101, "too_long")
    refused(name, {"a": 1}, "not_a_string")
    refused(name, True, "not_a_string")
    assert coerce(name, 42) == "42"
    assert form(name, "   ") is None  # blank form input is empty, not ""
    assert name.kind.format(name, None, "en") == ""


def test_text_default_length(registry: Registry) -> None:
    notes = field(registry, "notes")
    assert coerce(notes, "line 1\nline 2") == "line 1\nline 2"
    assert coerce(notes, "x" * 5000) == "x" * 5000


def test_email(registry: Registry) -> None:
    email = field(registry, "email")
    assert coerce(email, " Zhang.San@Example.COM ") == "zhang.san@example.com"
    refused(email, "zhang.san", "not_an_email")
    refused(email, "a@b", "not_an_email")
    refused(email, "a b@c.com", "not_an_email")


def test_phone(registry: Registry) -> None:
    phone = field(registry, "phone")
    for good in ("+86 138 0013 8000", "010-8888 6666", "(021) 5555-1234", "13800138000 转 123"):
        assert coerce(phone, good) == good
    refused(phone, "call me", "not_a_phone")
    refused(phone, "12", "not_a_phone")
    refused(phone, "(((( ))))", "not_a_phone")


def test_url(registry: Registry) -> None:
    url = field(registry, "website")
    assert coerce(url, "example.com") == "https://example.com"
    assert coerce(url, "http://example.com/a?b=1") == "http://example.com/a?b=1"
    refused(url, "not a url", "not_a_url")
    refused(url, "ftp://example.com", "not_a_url")


# -- numbers --------------------------------------------------------------------------------------

def test_integer(registry: Registry) -> None:
    employees = field(registry, "employees")  # min: 0
    assert coerce(employees, "1,234") == 1234
    assert coerce(employees, 12) == 12
    assert coerce(employees, "12.0") == 12
    refused(employees, "12.5", "not_an_integer")
    refused(employees, "-1", "too_small")
    refused(employees, "a dozen", "not_a_number")
    refused(employees, True, "not_a_number")
    refused(employees, "NaN", "not_a_number")
    refused(employees, str(2**63), "too_large")
    assert employees.kind.to_json(employees, 1234) == 1234
    assert employees.kind.format(employees, 1234567, "en") == "1,234,567"


def test_decimal_scale_and_precision(registry: Registry) -> None:
    rating = field(registry, "rating")  # precision 5, scale 2
    assert coerce(rating, "3.14159") == Decimal("3.14")
    assert coerce(rating, "2.345") == Decimal("2.35")  # half up (四舍五入)
    assert coerce(rating, "-2.345") == Decimal("-2.35")
    assert coerce(rating, "2.355") == Decimal("2.36")
    assert coerce(rating, "999.99") == Decimal("999.99")
    refused(rating, "1000", "too_many_digits")
    assert rating.kind.to_json(rating, Decimal("3.14")) == "3.14"  # exact, as a string


def test_money(registry: Registry) -> None:
    revenue = field(registry, "revenue")  # currency defaults to CNY
    assert coerce(revenue, "1,234.50") == Decimal("1234.50")
    assert coerce(revenue, "￥1，234.5") == Decimal("1234.50")
    assert coerce(revenue, "¥99") == Decimal("99.00")
    assert coerce(revenue, "1.015") == Decimal("1.02")
    assert coerce(revenue, 10) == Decimal("10.00")
    assert coerce(revenue, "-5") == Decimal("-5.00")
    refused(revenue, "1.2.3", "not_a_number")
    assert revenue.kind.to_json(revenue, Decimal("1234.50")) == "1234.50"
    assert revenue.kind.format(revenue, Decimal("1234.5"), "en") == "CN¥1,234.50"
    assert revenue.kind.format(revenue, Decimal("1234.5"), "zh") == "¥1,234.50"
    assert revenue.kind.format(revenue, None, "en") == ""


def test_percent(registry: Registry) -> None:
    share = field(registry, "share")
    assert coerce(share, "12%") == Decimal("12.00")
    assert coerce(share, " 12.5 % ") == Decimal("12.50")
    assert coerce(share, 7) == Decimal("7.00")
    assert share.kind.format(share, Decimal("12.5"), "en") == "12.5%"
    assert share.kind.format(share, None, "en") == ""
    refused(share, "lots%", "not_a_number")


# -- boolean --------------------------------------------------------------------------------------

def test_boolean(registry: Registry) -> None:
    hot = field(registry, "hot")
    for yes in (True, 1, "true", "Yes", "on", "1", "是", "Y"):
        assert coerce(hot, yes) is True
    for no in (False, 0, "false", "No", "off", "0", "否"):
        assert coerce(hot, no) is False
    refused(hot, "maybe", "not_a_boolean")
    refused(hot, 2, "not_a_boolean")
    # A checkbox: absent or the hidden "0" alone means no; "0" then "on" means yes.
    assert form(hot, []) is False
    assert form(hot, "0") is False
    assert form(hot, ["0", "on"]) is True
    assert hot.kind.format(hot, True, "en") == "Yes"
    assert hot.kind.format(hot, False, "zh") == "否"
    assert hot.kind.format(hot, None, "en") == ""


# -- dates ----------------------------------------------------------------------------------------

def test_date(registry: Registry) -> None:
    founded = field(registry, "founded")
    assert coerce(founded, "2024-02-29") == date(2024, 2, 29)
    assert coerce(founded, "2024/3/1") == date(2024, 3, 1)
    assert coerce(founded, "2024年3月1日") == date(2024, 3, 1)
    assert coerce(founded, date(2024, 3, 1)) == date(2024, 3, 1)
    assert coerce(founded, datetime(2024, 3, 1, 23, 59)) == date(2024, 3, 1)
    refused(founded, "2024-02-30", "not_a_date")
    refused(founded, "2023-02-29", "not_a_date")
    refused(founded, "01/03/2024", "not_a_date")
    refused(founded, "tomorrow", "not_a_date")  # relative words are for filters only
    assert founded.kind.to_json(founded, date(2024, 3, 1)) == "2024-03-01"
    assert founded.kind.format(founded, date(2024, 3, 1), "en") == "Mar 1, 2024"
    assert founded.kind.format(founded, date(2024, 3, 1), "zh") == "2024年3月1日"


def test_datetime(registry: Registry) -> None:
    next_call = field(registry, "next_call")
    assert coerce(next_call, "2024-03-01 09:30") == datetime(2024, 3, 1, 9, 30)
    assert coerce(next_call, "2024-03-01T09:30:15.123") == datetime(2024, 3, 1, 9, 30, 15)
    # An offset is converted to the deployment's zone (Asia/Shanghai, UTC+8).
    assert coerce(next_call, "2024-03-01T01:00:00Z") == datetime(2024, 3, 1, 9, 0)
    assert coerce(next_call, "2024-03-01") == datetime(2024, 3, 1)
    refused(next_call, "2024-03-01 25:00", "not_a_datetime")
    assert next_call.kind.to_json(next_call, datetime(2024, 3, 1, 9, 30)) == "2024-03-01T09:30:00"
    assert next_call.kind.format(next_call, datetime(2024, 3, 1, 18, 0), "zh") == "2024-03-01 18:00"


TODAY = date(2024, 3, 13)  # Wednesday


@pytest.mark.parametrize(("token", "start", "end"), [
    ("today", date(2024, 3, 13), date(2024, 3, 14)),
    ("yesterday", date(2024, 3, 12), date(2024, 3, 13)),
    ("tomorrow", date(2024, 3, 14), date(2024, 3, 15)),
    ("this_week", date(2024, 3, 11), date(2024, 3, 18)),  # Monday to Monday
    ("last_week", date(2024, 3, 4), date(2024, 3, 11)),
    ("next_week", date(2024, 3, 18), date(2024, 3, 25)),
    ("this_month", date(2024, 3, 1), date(2024, 4, 1)),
    ("last_month", date(2024, 2, 1), date(2024, 3, 1)),
    ("next_month", date(2024, 4, 1), date(2024, 5, 1)),
    ("this_year", date(2024, 1, 1), date(2025, 1, 1)),
    ("last_year", date(2023, 1, 1), date(2024, 1, 1)),
    ("last_n_days:7", date(2024, 3, 7), date(2024, 3, 14)),  # seven days, today included
    ("next_n_days:7", date(2024, 3, 13), date(2024, 3, 21)),  # today and the next seven
])
def test_relative_ranges(token: str, start: date, end: date) -> None:
    assert relative_range(token, TODAY) == DayRange(start, end)


def test_relative_ranges_across_year_ends() -> None:
    assert relative_range("last_month", date(2024, 1, 15)) == DayRange(date(2023, 12, 1), date(2024, 1, 1))
    assert relative_range("next_month", date(2024, 12, 31)) == DayRange(date(2025, 1, 1), date(2025, 2, 1))
    assert relative_range("this_week", date(2024, 12, 31)) == DayRange(date(2024, 12, 30), date(2025, 1, 6))


def test_unknown_relative_tokens() -> None:
    for token in ("someday", "last_n_days", "last_n_days:x", "this_decade", "Today"):
        assert relative_range(token, TODAY) is None


def test_date_filter_values(registry: Registry) -> None:
    founded = field(registry, "founded")
    assert founded.kind.filter_value(founded, "this_month", CTX) == DayRange(date(2024, 3, 1), date(2024, 4, 1))
    assert founded.kind.filter_value(founded, "2024-03-01", CTX) == date(2024, 3, 1)
    with pytest.raises(FieldValueError):
        founded.kind.filter_value(founded, "someday", CTX)


# -- choices and stages ---------------------------------------------------------------------------

def test_choice(registry: Registry) -> None:
    industry = field(registry, "industry")  # it, retail, old (inactive)
    assert coerce(industry, "it") == "it"
    assert coerce(industry, "零售") == "retail"  # a label works too (imports)
    refused(industry, "farming", "not_an_option")
    refused(industry, "old", "inactive_option")  # no longer offered for new values...
    assert industry.kind.filter_value(industry, "old", CTX) == "old"  # ...but old records can be found
    assert industry.kind.format(industry, "retail", "zh") == "零售"
    assert industry.kind.format(industry, "old", "en") == "Old"
    assert industry.kind.format(industry, None, "en") == ""


def test_multi_choice(registry: Registry) -> None:
    tags = field(registry, "tags")
    assert coerce(tags, ["vip", "new", "vip"]) == ["vip", "new"]
    assert coerce(tags, "vip, 新") == ["vip", "new"]
    assert coerce(tags, "vip，risk") == ["vip", "risk"]
    assert coerce(tags, []) is None
    assert form(tags, ["vip", "", "risk"]) == ["vip", "risk"]
    refused(tags, ["vip", "gold"], "not_an_option")
    refused(tags, 5, "not_a_list")
    assert tags.kind.to_db(["vip", "new"]) == "|vip|new|"
    assert tags.kind.from_db("|vip|new|") == ["vip", "new"]
    assert tags.kind.to_db(None) is None and tags.kind.from_db(None) == []
    assert tags.kind.format(tags, ["vip", "new"], "zh") == "重要, 新"
    assert tags.kind.is_empty([]) and not tags.kind.is_empty(["vip"])


def test_stage(registry: Registry) -> None:
    stage = field(registry, "stage", "deal")
    assert [s.key for s in stage.stages] == ["qualify", "proposal", "won", "lost"]
    assert coerce(stage, "proposal") == "proposal"
    assert coerce(stage, "赢单") == "won"
    refused(stage, "negotiate", "not_a_stage")
    assert stage.kind.format(stage, "won", "zh") == "赢单"
    won = stage.stage("won")
    assert won is not None and won.outcome == "won" and won.probability == 100


def test_stage_rules(registry: Registry) -> None:
    stage = field(registry, "stage", "deal")

    def problems(old: str | None, new: str, record: dict[str, Any]) -> list[tuple[str, str]]:
        empty = lambda name, value: value in (None, "")  # noqa: E731
        return [(name, m.code) for name, m in stage.kind.check_record(stage, old, new, record, empty)]

    assert problems("qualify", "won", {}) == [("stage", "stage_transition")]  # `to: [proposal, lost]`
    assert problems("qualify", "proposal", {}) == [("amount", "stage_requires")]
    assert problems("qualify", "proposal", {"amount": Decimal("5")}) == []
    assert problems("proposal", "won", {}) == []  # no `to`: any next stage
    assert problems("won", "won", {}) == []  # unchanged


# -- references, users, attachments ---------------------------------------------------------------

def test_reference_and_user(registry: Registry) -> None:
    parent = field(registry, "parent")
    assert coerce(parent, "12") == 12
    assert coerce(parent, {"id": 5, "title": "Acme"}) == 5
    for bad in ("abc", 0, -3, True):
        refused(parent, bad, "not_an_id")
    manager = field(registry, "manager")
    assert coerce(manager, "$me") == 7
    assert manager.kind.filter_value(manager, " $me ", CTX) == 7
    assert coerce(manager, 3) == 3


def test_attachment(registry: Registry) -> None:
    logo = field(registry, "logo")  # max_size: 1000 bytes
    sha = "a" * 64
    value = {"name": "dir/logo.png", "size": 1000, "content_type": "image/png", "sha256": sha}
    stored = coerce(logo, value)
    assert stored == {"name": "dir_logo.png", "size": 1000, "content_type": "image/png", "sha256": sha}
    assert coerce(logo, logo.kind.to_db(stored)) == stored  # the JSON text form round-trips
    refused(logo, {**value, "size": 1001}, "file_too_large")
    refused(logo, {**value, "sha256": "nothex"}, "bad_attachment")
    refused(logo, {**value, "size": -1}, "bad_attachment")
    refused(logo, "not json", "bad_attachment")
    assert logo.kind.format(logo, stored, "en") == "dir_logo.png"
    assert logo.kind.from_db(None) is None


# -- generated values -----------------------------------------------------------------------------

def test_autonumber_render(registry: Registry) -> None:
    code = field(registry, "code")
    pattern = code.options["pattern"]
    assert pattern == "KH{YYYY}{MM}-{seq:5}"
    when = datetime(2024, 3, 9)
    assert render(pattern, when, 42) == "KH202403-00042"
    assert render(pattern, when) == "KH202403-"  # the counter key: the text before {seq}
    assert render("{YY}{MM}{DD}/{seq}", when, 7) == "240309/7"
    assert render("Q-{seq:3}-{YYYY}", when, 123456) == "Q-123456-2024"  # too wide is not cut
    assert code.kind.derived


def test_expression_safety() -> None:
    for text, fragment in [
        ("__import__('os').system('ls')", "unknown function"),
        ("price.real", "not allowed"),
        ("price.__class__", "not allowed"),
        ("'a' * 3", "only numbers"),
        ("(lambda: 1)()", "unknown function"),
        ("lambda: 1", "not allowed"),
        ("open('x')", "unknown function"),
        ("round(price, ndigits=2)", "unknown function"),
        ("price ** 2", "only + - * /"),
        ("price // 2", "only + - * /"),
        ("price if price else 0", "not allowed"),
        ("[price]", "not allowed"),
        ("price > 1", "not allowed"),
        ("not price", "only unary"),
        ("True + 1", "only numbers"),
        ("price = 1", "syntax error"),
    ]:
        with pytest.raises(expression.ExpressionError) as info:
            expression.parse(text)
        assert fragment in str(info.value), (text, str(info.value))


def test_expression_evaluation_with_decimal() -> None:
    tree = expression.parse("quantity * price * (1 - discount / 100)")
    assert expression.names(tree) == {"quantity", "price", "discount"}
    result = expression.evaluate(tree, {"quantity": 3, "price": Decimal("0.1"), "discount": Decimal("0")})
    assert result == Decimal("0.3") and isinstance(result, Decimal)  # no binary floating point error
    assert expression.evaluate(tree, {"quantity": 3, "price": None, "discount": 0}) is None  # empty in, empty out
    assert expression.evaluate(expression.parse("a / b"), {"a": 1, "b": 0}) is None  # no ZeroDivisionError
    assert expression.evaluate(expression.parse("a / b"), {"a": 0, "b": 0}) is None
    assert expression.evaluate(expression.parse("-a + +b"), {"a": 2, "b": 5}) == Decimal("3")
    assert expression.evaluate(expression.parse("round(a, 2)"), {"a": Decimal("2.675")}) == Decimal("2.68")
    assert expression.evaluate(expression.parse("round(a)"), {"a": Decimal("2.5")}) == Decimal("3")  # half up
    assert expression.evaluate(expression.parse("min(a, b) + max(a, b)"), {"a": 1, "b": 4}) == Decimal("5")
    assert expression.evaluate(expression.parse("coalesce(a, b, 0)"), {"a": None, "b": None}) == Decimal("0")
    assert expression.evaluate(expression.parse("abs(a)"), {"a": -2}) == Decimal("2")
    assert expression.evaluate(expression.parse("a + 1"), {"a": True}) == Decimal("2")


def test_computed_field(registry: Registry) -> None:
    amount = field(registry, "line_amount", "deal_line")  # round(quantity * price * (1 - discount / 100), 2), money
    values = {"quantity": Decimal("2"), "price": Decimal("10.005"), "discount": Decimal("10")}
    assert amount.kind.compute(amount, values) == Decimal("18.01")
    assert amount.kind.compute(amount, {**values, "price": None}) is None
    assert amount.kind.to_json(amount, Decimal("18.01")) == "18.01"
    assert amount.kind.format(amount, Decimal("18.01"), "en") == "CN¥18.01"
    assert amount.kind.derived


def test_rollup_display(registry: Registry) -> None:
    count = field(registry, "deal_count")
    assert count.kind.to_json(count, 3) == 3
    assert count.kind.format(count, 1234, "en") == "1,234"
    total = field(registry, "won_total")
    assert total.kind.to_json(total, Decimal("12.50")) == "12.50"


def test_operators_per_type() -> None:
    types = all_types()
    assert "contains" in types["string"].operators and "gt" not in types["string"].operators
    assert "between" in types["money"].operators and "contains" not in types["money"].operators
    assert "between" in types["date"].operators
    assert types["boolean"].operators == ("eq", "ne", "is_empty", "is_not_empty")
    assert "contains" in types["multi_choice"].operators and "eq" not in types["multi_choice"].operators
    assert types["attachment"].operators == ("is_empty", "is_not_empty")


def test_rich_text_is_sanitized_plain_text_is_kept() -> None:
    standard = load_registry([FIXTURES.parent.parent.parent / "packs" / "standard_crm"])
    rich = standard.entity("knowledge_article").field("content")
    dirty = ('<p onclick="steal()">Reset the <b>router</b><script>alert(1)</script>'
             '<a href="javascript:alert(1)">here</a> <img src=x onerror=alert(1)>'
             '<a href="https://help.example/x">manual</a><iframe src="https://evil"></iframe></p>')
    clean = coerce(rich, dirty)
    for bad in ("script", "onclick", "javascript:", "onerror", "<img", "iframe"):
        assert bad not in clean
    assert "<b>router</b>" in clean and 'href="https://help.example/x"' in clean
    plain = standard.entity("knowledge_article").field("title")
    assert coerce(plain, "<b>kept as text</b>") == "<b>kept as text</b>"  # escaped when shown, not altered
