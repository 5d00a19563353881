"""Queries: every operator, relative dates, $me, sorts, offset and keyset pages, search, counts,
bad input as BadQuery, and a statement count independent of the page size (no N+1)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from engine.runtime import query as query_module
from engine.runtime.errors import BadQuery
from engine.runtime.query import ListQuery
from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import User


def _ids(page) -> list[int]:  # type: ignore[no-untyped-def]
    return [r["id"] for r in page.rows]


@pytest.fixture
def accounts(rec: RecordService) -> dict[str, int]:
    rows = {
        "acme": {"name": "Acme Ltd", "employees": 10, "industry": "it", "tags": ["vip", "new"], "email": "a@acme.cn",
                 "revenue": "100.50", "hot": True},
        "beta": {"name": "Beta 50% Off_Shop", "employees": 20, "industry": "retail", "tags": ["risk"], "revenue": 200},
        "gamma": {"name": "Gamma", "employees": 30, "tags": ["vip"], "email": "g@gamma.cn"},
        "delta": {"name": "delta's \"quoted\" name", "employees": None, "industry": "it"},
        "zh": {"name": "华为技术", "employees": 20, "industry": "retail"},
    }
    return {key: rec.create("account", values)["id"] for key, values in rows.items()}


def _q(rec: RecordService, *filters: str, entity: str = "account", **kw) -> set[int]:  # type: ignore[no-untyped-def]
    return set(_ids(rec.query(entity, ListQuery(filters=filters, limit=500, **kw))))


def test_every_operator(rec: RecordService, accounts: dict[str, int]) -> None:
    a = accounts
    every = set(a.values())
    assert _q(rec, "employees eq 20") == {a["beta"], a["zh"]}
    assert _q(rec, "employees ne 20") == {a["acme"], a["gamma"], a["delta"]}  # NULL is "not 20"
    assert _q(rec, "employees lt 20") == {a["acme"]}
    assert _q(rec, "employees lte 20") == {a["acme"], a["beta"], a["zh"]}
    assert _q(rec, "employees gt 20") == {a["gamma"]}
    assert _q(rec, "employees gte 20") == {a["beta"], a["zh"], a["gamma"]}
    assert _q(rec, "employees in 10,30") == {a["acme"], a["gamma"]}
    assert _q(rec, "employees not_in 10,30") == {a["beta"], a["zh"], a["delta"]}
    assert _q(rec, "employees between 15,30") == {a["beta"], a["zh"], a["gamma"]}
    assert _q(rec, "employees is_empty") == {a["delta"]}
    assert _q(rec, "employees is_not_empty") == every - {a["delta"]}
    assert _q(rec, "name contains ac") == {a["acme"]}
    assert _q(rec, "name contains ACME") == {a["acme"]}  # case-insensitive
    assert _q(rec, "name contains 50%") == {a["beta"]}
    assert _q(rec, "name contains _") == {a["beta"]}  # LIKE wildcards are literal
    assert _q(rec, "name contains 技术") == {a["zh"]}
    assert _q(rec, "name starts_with gam") == {a["gamma"]}
    assert _q(rec, "name starts_with %") == set()
    assert _q(rec, "name eq Gamma") == {a["gamma"]}
    assert _q(rec, "industry eq it") == {a["acme"], a["delta"]}
    assert _q(rec, "industry eq Retail") == {a["beta"], a["zh"]}  # by label too
    assert _q(rec, "industry in it,retail") == every - {a["gamma"]}
    assert _q(rec, "industry not_in it") == {a["beta"], a["zh"], a["gamma"]}
    assert _q(rec, "industry is_empty") == {a["gamma"]}
    assert _q(rec, "tags contains vip") == {a["acme"], a["gamma"]}
    assert _q(rec, "tags in new,risk") == {a["acme"], a["beta"]}
    assert _q(rec, "tags is_empty") == {a["delta"], a["zh"]}
    assert _q(rec, "email is_not_empty") == {a["acme"], a["gamma"]}
    assert _q(rec, "revenue gte 100.5") == {a["acme"], a["beta"]}
    assert _q(rec, "hot eq true") == {a["acme"]}
    assert _q(rec, "hot ne true") == every - {a["acme"]}
    assert _q(rec, "employees gte 20", "industry eq retail") == {a["beta"], a["zh"]}  # filters AND
    assert _q(rec, "deal_count eq 0") == every
    assert _q(rec, f"id eq {a['gamma']}") == {a["gamma"]}


def test_sql_metacharacters_are_plain_values(rec: RecordService, accounts: dict[str, int]) -> None:
    for value in ("' OR 1=1 --", "'; DROP TABLE account; --", "\\", "\"", "%' OR '1'='1", "a\x00b"[:1], "🙂"):
        for op in ("eq", "contains", "starts_with", "ne"):
            rec.query("account", ListQuery(filters=[f"name {op} {value}"]))
        rec.query("account", ListQuery(search=value))
    assert _q(rec, "name eq delta's \"quoted\" name") == {accounts["delta"]}
    assert _q(rec, "name contains 's \"q") == {accounts["delta"]}
    assert len(rec.query("account").rows) == 5


@pytest.mark.parametrize("bad", [
    "nope eq 1",  # unknown field
    "employees eq many",  # bad value for the type
    "employees contains 1",  # operator not for the type
    "tags eq vip",
    "employees",  # no operator
    "employees like 1",  # unknown operator
    "employees between 1",  # between needs two values
    "employees is_empty 3",
    "industry eq nothing",
    "founded eq last_n_days:x",
    "name eq",
    "employees eq 1; drop table account",
    "logo eq x",
])
def test_bad_filters(rec: RecordService, bad: str) -> None:
    with pytest.raises(BadQuery) as caught:
        rec.query("account", ListQuery(filters=[bad]))
    assert caught.value.message.text("en")
    assert caught.value.status == 400


@pytest.mark.parametrize("sort", [["nope"], ["tags"], ["logo"], ["-"], ["name; drop table account"]])
def test_bad_sorts(rec: RecordService, sort: list[str]) -> None:
    with pytest.raises(BadQuery):
        rec.query("account", ListQuery(sort=sort))


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", "W10", "WzEsMl0", "W3sidCI6Inh4IiwidiI6MX0sMV0", "W1tdLDFd"])
def test_bad_cursors(rec: RecordService, accounts: dict[str, int], cursor: str) -> None:
    with pytest.raises(BadQuery):
        rec.query("account", ListQuery(sort=["name"], cursor=cursor))


def test_relative_dates(runtime: Runtime, rec: RecordService) -> None:
    today = runtime.now().date()
    acct = rec.create("account", {"name": "A"})
    days = {-10: None, -6: None, -1: None, 0: None, 1: None, 3: None, 9: None}
    for offset in days:
        days[offset] = rec.create("deal", {"name": f"d{offset}", "account": acct["id"],
                                           "close_on": today + timedelta(days=offset)})["id"]
    nodate = rec.create("deal", {"name": "none", "account": acct["id"]})["id"]

    def within(lo: int, hi: int) -> set[int]:
        return {i for o, i in days.items() if lo <= o <= hi}

    assert _q(rec, "close_on eq today", entity="deal") == within(0, 0)
    assert _q(rec, "close_on eq yesterday", entity="deal") == within(-1, -1)
    assert _q(rec, "close_on eq last_n_days:7", entity="deal") == within(-6, 0)
    assert _q(rec, "close_on eq next_n_days:3", entity="deal") == within(0, 3)
    assert _q(rec, "close_on lt today", entity="deal") == within(-99, -1)
    assert _q(rec, "close_on gte tomorrow", entity="deal") == within(1, 99)
    assert _q(rec, "close_on ne today", entity="deal") == within(-99, 99) - within(0, 0) | {nodate}
    week_start = today - timedelta(days=today.weekday())
    this_week = {i for o, i in days.items() if week_start <= today + timedelta(days=o) < week_start + timedelta(days=7)}
    assert _q(rec, "close_on eq this_week", entity="deal") == this_week
    assert _q(rec, f"close_on between {today - timedelta(days=1)},{today + timedelta(days=1)}", entity="deal") == within(-1, 1)
    assert _q(rec, "close_on between yesterday,tomorrow", entity="deal") == within(-1, 1)
    assert _q(rec, "close_on in today,tomorrow", entity="deal") == within(0, 1)
    # datetimes: a relative day covers the whole day
    now = runtime.now()
    a = rec.create("account", {"name": "call today", "next_call": now.replace(hour=23, minute=59)})["id"]
    rec.create("account", {"name": "call later", "next_call": now + timedelta(days=2)})
    assert _q(rec, "next_call eq today") == {a}


def test_me_filter(runtime: Runtime, alice: User, bob: User) -> None:
    as_alice, as_bob = runtime.records(alice.actor()), runtime.records(bob.actor())
    mine = as_alice.create("account", {"name": "mine"})["id"]
    as_bob.create("account", {"name": "bobs"})
    system = runtime.records()
    managed = system.create("account", {"name": "managed", "manager": alice.id})["id"]
    assert _q(as_alice, "owner eq $me") == {mine}
    assert _q(system, "manager eq $me") == set()  # the system is nobody
    assert _q(as_alice, "manager eq $me") == {mine}  # alice sees only her own
    assert _q(system, f"manager eq {alice.id}") == {mine, managed}
    assert _q(system, f"owner in {alice.id},{bob.id}") == _q(system, "owner is_not_empty")


def test_sorts(rec: RecordService) -> None:
    names = ["b", "a", "c"]
    accts = {n: rec.create("account", {"name": n, "employees": i})["id"] for i, n in enumerate(names)}
    assert _ids(rec.query("account", ListQuery(sort=["name"]))) == [accts["a"], accts["b"], accts["c"]]
    assert _ids(rec.query("account", ListQuery(sort=["-name"]))) == [accts["c"], accts["b"], accts["a"]]
    assert _ids(rec.query("account", ListQuery(sort=["-employees"]))) == [accts["c"], accts["a"], accts["b"]]
    assert _ids(rec.query("account")) == [accts["a"], accts["b"], accts["c"]]  # the list layout's sort
    assert rec.query("account").sort == ("name",)
    assert _ids(rec.query("account", ListQuery(sort=["-id"]))) == sorted(accts.values(), reverse=True)
    # by a reference: the referenced record's title
    deals = {n: rec.create("deal", {"name": f"deal of {n}", "account": accts[n]})["id"] for n in ("c", "a", "b")}
    page = rec.query("deal", ListQuery(sort=["account"]))
    assert _ids(page) == [deals["a"], deals["b"], deals["c"]]
    assert [r["_titles"]["account"] for r in page.rows] == ["a", "b", "c"]
    assert _ids(rec.query("deal", ListQuery(sort=["-account"]))) == [deals["c"], deals["b"], deals["a"]]


def test_offset_and_keyset_pages_agree(rec: RecordService) -> None:
    acct = rec.create("account", {"name": "A"})
    rows = []
    for i in range(23):
        rows.append({"name": f"d{i % 4}", "account": acct["id"],
                     "amount": None if i % 5 == 0 else (i % 3) * 10,
                     "close_on": None if i % 4 == 0 else f"2025-01-{1 + i % 3:02d}"})
    rec.bulk_create("deal", rows)
    for sort in (["amount"], ["-amount"], ["close_on", "-name"], ["-close_on", "amount"], ["account", "-amount"],
                 ["name"], []):
        offset_walk: list[int] = []
        offset = 0
        while True:
            page = rec.query("deal", ListQuery(sort=sort, limit=4, offset=offset))
            offset_walk += _ids(page)
            if not page.next_cursor:
                break
            offset += 4
        keyset_walk: list[int] = []
        cursor = None
        pages = 0
        while True:
            page = rec.query("deal", ListQuery(sort=sort, limit=4, cursor=cursor, count=False))
            keyset_walk += _ids(page)
            pages += 1
            cursor = page.next_cursor
            if not cursor:
                break
        assert keyset_walk == offset_walk, sort
        assert sorted(keyset_walk) == sorted(set(keyset_walk)) and len(keyset_walk) == 23
        assert pages == 6
        # ...and walking back from the last page with `before` visits the same pages in reverse.
        back_walk = list(_ids(page))
        assert page.prev_cursor
        before: str | None = page.prev_cursor
        while before:
            page = rec.query("deal", ListQuery(sort=sort, limit=4, before=before, count=False))
            assert len(page.rows) == 4 and page.next_cursor
            back_walk = _ids(page) + back_walk
            before = page.prev_cursor
        assert back_walk == offset_walk, sort
        # NULLs last in both directions
        key = (sort or ["-close_on"])[0].lstrip("-")
        if key in ("amount", "close_on"):
            values = [rec.get("deal", i)[key] for i in keyset_walk]
            first_null = values.index(None)
            assert all(v is None for v in values[first_null:])


def test_search_and_counts(rec: RecordService, accounts: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _ids(rec.query("account", ListQuery(search="acme"))) == [accounts["acme"]]
    assert set(_ids(rec.query("account", ListQuery(search="a")))) >= {accounts["acme"], accounts["beta"]}
    assert _ids(rec.query("account", ListQuery(search="ltd acme"))) == [accounts["acme"]]  # every term
    code = rec.get("account", accounts["gamma"])["code"]
    assert _ids(rec.query("account", ListQuery(search=code))) == [accounts["gamma"]]  # code is a search field
    assert _ids(rec.query("account", ListQuery(search="   "))) != []
    page = rec.query("account", ListQuery(limit=2))
    assert (page.total, page.total_exact, len(page.rows)) == (5, True, 2)
    assert rec.query("account", ListQuery(count=False)).total is None
    assert rec.query("account", ListQuery(filters=["industry eq it"])).total == 2
    monkeypatch.setattr(query_module, "COUNT_LIMIT", 3)
    page = rec.query("account", ListQuery(limit=2))
    assert (page.total, page.total_exact) == (3, False)
    assert rec.query("account", ListQuery(filters=["industry eq it"])).total_exact is True


def test_page_limits(rec: RecordService) -> None:
    acct = rec.create("account", {"name": "A"})
    rec.bulk_create("deal", [{"name": f"d{i}", "account": acct["id"]} for i in range(3)])
    assert len(rec.query("deal", ListQuery(limit=0)).rows) == 1
    assert len(rec.query("deal", ListQuery(limit=10_000)).rows) == 3
    assert rec.query("deal", ListQuery(offset=10)).rows == []


def _count_statements(runtime: Runtime, fn) -> int:  # type: ignore[no-untyped-def]
    count = 0

    def listener(*_args: object) -> None:
        nonlocal count
        count += 1

    sa.event.listen(runtime.engine, "before_cursor_execute", listener)
    try:
        fn()
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", listener)
    return count


def test_listing_is_free_of_n_plus_one(runtime: Runtime, rec: RecordService, alice: User) -> None:
    accts = rec.bulk_create("account", [{"name": f"A{i}", "owner": alice.id, "manager": alice.id} for i in range(50)])
    rec.bulk_create("deal", [{"name": f"D{i}", "account": accts[i], "owner": alice.id} for i in range(50)])

    def listing(n: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            page = rec.query("deal", ListQuery(limit=n))
            assert len(page.rows) == n
            assert all(r["_titles"]["account"] and r["_titles"]["owner"] == "Alice" for r in page.rows)
        return run

    small = _count_statements(runtime, listing(5))
    large = _count_statements(runtime, listing(50))
    assert small == large <= 3
    # writing a record costs a bounded number of statements too, whatever the table holds
    one = _count_statements(runtime, lambda: rec.create("deal", {"name": "x", "account": accts[0]}))
    assert one <= 20


def test_summarize_counts_and_sums_within_scope(runtime: Runtime, rec: RecordService, alice: User, bob: User) -> None:
    acct = rec.create("account", {"name": "A"})
    rows = [{"name": "a1", "account": acct["id"], "amount": "100.10", "stage": "qualify", "owner": alice.id},
            {"name": "a2", "account": acct["id"], "amount": "50", "stage": "qualify", "owner": alice.id},
            {"name": "a3", "account": acct["id"], "amount": "7", "stage": "proposal", "owner": alice.id},
            {"name": "a4", "account": acct["id"], "amount": None, "owner": alice.id},
            {"name": "b1", "account": acct["id"], "amount": "999", "stage": "qualify", "owner": bob.id}]
    rec.bulk_create("deal", rows)
    everything = rec.summarize("deal", None, "stage", ["amount"])
    assert everything["qualify"] == {"count": 4, "sums": {"amount": Decimal("1149.10")}}  # NULL adds nothing
    assert everything["proposal"] == {"count": 1, "sums": {"amount": Decimal("7.00")}}
    mine = runtime.records(alice.actor()).summarize("deal", None, "stage", ["amount"])
    assert mine["qualify"] == {"count": 3, "sums": {"amount": Decimal("150.10")}}  # bob's deal is not counted
    filtered = rec.summarize("deal", ListQuery(filters=["amount gt 60"]), "stage", ["amount"])
    assert {k: v["count"] for k, v in filtered.items()} == {"qualify": 2}
    with pytest.raises(BadQuery):
        rec.summarize("deal", None, "stage", ["name"])


def test_counts_of_many_queries_in_one_statement(runtime: Runtime, rec: RecordService, alice: User, bob: User,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    acct = rec.create("account", {"name": "A", "owner": alice.id})
    other = rec.create("account", {"name": "B", "owner": alice.id})
    rec.bulk_create("deal", [{"name": f"d{i}", "account": acct["id"], "owner": alice.id if i < 3 else bob.id}
                             for i in range(5)])
    asked = [("deal", ListQuery(filters=[f"account eq {acct['id']}"])),
             ("deal", ListQuery(filters=[f"account eq {other['id']}"])),
             ("account", ListQuery(filters=["name eq A"]))]
    statements: list[str] = []
    sa.event.listen(runtime.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert rec.counts(asked) == [(5, True), (0, True), (1, True)]
    assert len(statements) == 1
    assert runtime.records(alice.actor()).counts(asked) == [(3, True), (0, True), (1, True)]  # bob's are out of scope
    monkeypatch.setattr(query_module, "COUNT_LIMIT", 4)
    assert rec.counts(asked[:1]) == [(4, False)]
    assert rec.counts([]) == []


def test_which_conditions_hold_on_a_record(runtime: Runtime, rec: RecordService, alice: User, bob: User) -> None:
    acct = rec.create("account", {"name": "A"})
    deal = rec.create("deal", {"name": "d", "account": acct["id"], "amount": "70", "stage": "qualify",
                               "owner": bob.id})
    conditions = [["amount gt 60"], ["amount gt 60", "stage eq proposal"], [], ["name eq d"]]
    assert rec.which_hold("deal", deal["id"], conditions) == [True, False, True, True]
    # a record the actor may not read satisfies nothing
    assert runtime.records(alice.actor()).which_hold("deal", deal["id"], conditions) == [False] * 4
    # like a highlight, a condition the actor cannot evaluate (an unknown or hidden field) is false
    assert rec.which_hold("deal", deal["id"], [["nonsense eq 1"]]) == [False]


def test_a_scoped_page_walks_the_sort_index(runtime: Runtime, rec: RecordService, alice: User, bob: User) -> None:
    """own OR shared OR pool: no branch may pull the scope out of the sort index's walk on SQLite
    (a MULTI-INDEX OR collects every row in scope and sorts them); the rows are the same."""
    rec.bulk_create("account", [{"name": f"a{i:03d}", "owner": (alice.id, bob.id)[i % 2], "in_pool": i % 5 == 0}
                                for i in range(200)])
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, parameters))

    sa.event.listen(runtime.engine, "before_cursor_execute", seen)
    page = runtime.records(alice.actor()).query("account", ListQuery(limit=20, count=False))
    sa.event.remove(runtime.engine, "before_cursor_execute", seen)
    names = [r["name"] for r in page.rows]
    expected = sorted(f"a{i:03d}" for i in range(200) if i % 2 == 0 or i % 5 == 0)[:20]
    assert names == expected
    statement, parameters = next(s for s in statements if "ORDER BY" in s[0])
    with runtime.engine.connect() as conn:
        if runtime.engine.dialect.name == "sqlite":
            assert "+account.owner" in statement and "+account.in_pool" in statement
            plan = " ".join(str(row) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "MULTI-INDEX OR" not in plan
        else:
            assert "+" not in statement.split("WHERE", 1)[1]  # PostgreSQL plans the plain columns itself
