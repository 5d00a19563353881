"""The scenarios of issue 7, as requests for each application, and the facts they need from the
data set (which customers the salesperson owns, the cursor of page 1,000, search words).

Scenario names: `<what>:<who>`; `who` is `sales` (salesperson: own + pool scope) or `admin`.
Page scenarios run on all three applications; the rest only on ours.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import sqlalchemy as sa

from bench.common import PASSWORD, SALES_USER
from bench.load import Scenario
from engine.runtime.query import QueryBuilder

PAGE = 50
DEEP_PAGE = 1000
FILTER = {"industry": "machinery", "value_grade": "a"}  # two pick-list fields; sorted by name
SEARCH_NAME = "华信"  # a brand in the generated names (about 1 in 60 customers)
SEARCH_PINYIN = "HXJX"  # pinyin initials of 华信机械 in the mnemonic
API_FILTER = "industry eq machinery"
RELATED_TABS = 8  # the customer detail's related tabs in the standard pack

# Scenarios that every application serves, and what each one is called there.
PAGES = ("list:sales", "list:admin", "filtered:sales", "deep:admin", "detail:sales", "search_name:sales",
         "search_pinyin:sales")


@dataclass
class Session:
    cookie: str  # the Cookie header
    csrf: str


@dataclass
class Facts:
    sales_user: int
    sales_ids: list[int]  # customers the salesperson owns (detail pages, updates)
    deep_updated_at: datetime  # the first row of the admin's page 1,000 (default sort)
    deep_id: int
    deep_cursor: str  # our keyset cursor for the page after the row before it

    @property
    def deep_offset(self) -> int:
        return (DEEP_PAGE - 1) * PAGE


def facts(url: str) -> Facts:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        sales = int(conn.execute(sa.text("select id from crm_user where username = :u"), {"u": SALES_USER}).scalar_one())
        ids = [int(i) for i in conn.execute(sa.text(
            "select id from customer where owner = :o and deleted_at is null order by id limit 4000"), {"o": sales}).scalars()]
        # The default sort is -updated_at (then id ascending): page 1,000 starts after row 49,950.
        before = conn.execute(sa.text(
            "select updated_at, id from customer where deleted_at is null "
            "order by updated_at desc, id asc limit 2 offset :o"), {"o": (DEEP_PAGE - 1) * PAGE - 1}).all()
    engine.dispose()
    last, first = before[0], before[1]
    updated_at = last[0] if isinstance(last[0], datetime) else datetime.fromisoformat(str(last[0]))
    cursor = QueryBuilder.encode_cursor([updated_at, int(last[1])])
    first_at = first[0] if isinstance(first[0], datetime) else datetime.fromisoformat(str(first[0]))
    return Facts(sales, ids, first_at, int(first[1]), cursor)


def csrf_in(html: str) -> str:
    found = re.search(r'name="(?:_csrf|csrfmiddlewaretoken)" value="([^"]+)"', html)
    return found.group(1) if found else ""


def cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)


# -- signing in (over HTTP, before the load runs) ------------------------------------------------

def sign_in_ours(base: str, username: str) -> Session:
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        csrf = csrf_in(client.get("/login").text)
        r = client.post("/login", data={"username": username, "password": PASSWORD, "_csrf": csrf, "next": "/"})
        if r.status_code != 303:
            raise RuntimeError(f"ours: sign-in as {username} failed ({r.status_code})")
        csrf = csrf_in(client.get("/app/customer/new").text)  # a new CSRF token comes with the session
        return Session(cookie_header(client), csrf)


def sign_in_floor(base: str, username: str) -> Session:
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        r = client.post("/login", data={"username": username, "password": PASSWORD})
        if r.status_code != 303:
            raise RuntimeError(f"floor: sign-in as {username} failed ({r.status_code})")
        return Session(cookie_header(client), "")


def sign_in_django(base: str, username: str) -> Session:
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        csrf = csrf_in(client.get("/admin/login/").text)
        r = client.post("/admin/login/", data={"username": username, "password": PASSWORD,
                                               "csrfmiddlewaretoken": csrf, "next": "/admin/"},
                        headers={"Referer": base + "/admin/login/"})
        if r.status_code != 302:
            raise RuntimeError(f"django: sign-in as {username} failed ({r.status_code})")
        return Session(cookie_header(client), "")


# -- the scenarios ---------------------------------------------------------------------------------

def _get(name: str, session: Session, paths: list[str]) -> Scenario:
    return Scenario(name, [("GET", p, None) for p in paths], {"Cookie": session.cookie})


def ours(sales: Session, admin: Session, f: Facts) -> list[Scenario]:
    filtered = urlencode([(f"f.{k}", v) for k, v in FILTER.items()] + [("sort", "name")])
    details = [f"/app/customer/{i}" for i in f.sales_ids[:500]]
    return [
        _get("list:sales", sales, ["/app/customer"]),
        _get("list:admin", admin, ["/app/customer"]),
        _get("filtered:sales", sales, [f"/app/customer?{filtered}"]),
        _get("filtered:admin", admin, [f"/app/customer?{filtered}"]),
        _get("deep:admin", admin, [f"/app/customer?cursor={f.deep_cursor}"]),
        _get("detail:sales", sales, details),
        _get("detail_tabs:sales", sales, [f"/app/customer/{i}?tab=r{n % RELATED_TABS}"
                                          for n, i in enumerate(f.sales_ids[:500])]),
        _get("search_name:sales", sales, [f"/search?q={quote(SEARCH_NAME)}"]),
        _get("search_pinyin:sales", sales, [f"/search?q={SEARCH_PINYIN}"]),
        _get("board:sales", sales, ["/app/opportunity/board"]),
        _get("api_list:sales", sales, [f"/api/v1/customer?{urlencode({'filter': API_FILTER})}"]),
    ]


def ours_create(session: Session, count: int, tag: str) -> Scenario:
    bodies = [urlencode({"_csrf": session.csrf, "name": f"压测客户{tag}{n:06d}有限公司", "customer_type": "potential",
                         "industry": "machinery", "source": "website", "phone": f"021-6{n:07d}", "city": "上海",
                         "province": "shanghai", "status": "active", "value_grade": "b"})
              for n in range(count)]
    return Scenario("create_form:sales", [("POST", "/app/customer/new", b) for b in bodies],
                    {"Cookie": session.cookie, "Content-Type": "application/x-www-form-urlencoded"},
                    expect=303, once=True)


def ours_update(session: Session, versions: list[tuple[int, int]], tag: str) -> Scenario:
    requests = [("PATCH", f"/api/v1/customer/{i}", json.dumps({"remarks": f"bench {tag} {n}", "version": v}))
                for n, (i, v) in enumerate(versions)]
    return Scenario("update_api:sales", requests, {"Cookie": session.cookie, "Content-Type": "application/json",
                                                   "X-CSRF-Token": session.csrf}, once=True)


def floor(sales: Session, admin: Session, f: Facts) -> list[Scenario]:
    filtered = urlencode(list(FILTER.items()) + [("sort", "name")])
    deep = urlencode({"after_at": _iso(_cursor_values(f.deep_cursor)[0]), "after_id": _cursor_values(f.deep_cursor)[1]})
    return [
        _get("list:sales", sales, ["/customers"]),
        _get("list:admin", admin, ["/customers"]),
        _get("filtered:sales", sales, [f"/customers?{filtered}"]),
        _get("deep:admin", admin, [f"/customers?{deep}"]),
        _get("detail:sales", sales, [f"/customers/{i}" for i in f.sales_ids[:500]]),
        _get("search_name:sales", sales, [f"/search?q={quote(SEARCH_NAME)}"]),
        _get("search_pinyin:sales", sales, [f"/search?q={SEARCH_PINYIN}"]),
    ]


def django(sales: Session, admin: Session, f: Facts) -> list[Scenario]:
    base = "/admin/crm/customer/"
    filtered = urlencode({**{f"{k}__exact": v for k, v in FILTER.items()}, "o": "2"})  # o=2: the name column
    return [
        _get("list:sales", sales, [base]),
        _get("list:admin", admin, [base]),
        _get("filtered:sales", sales, [f"{base}?{filtered}"]),
        _get("deep:admin", admin, [f"{base}?p={DEEP_PAGE}"]),
        _get("detail:sales", sales, [f"{base}{i}/change/" for i in f.sales_ids[:500]]),
        _get("search_name:sales", sales, [f"{base}?q={quote(SEARCH_NAME)}"]),
        _get("search_pinyin:sales", sales, [f"{base}?q={SEARCH_PINYIN}"]),
    ]


def _cursor_values(cursor: str) -> list[Any]:
    keys: list[Any] = [("updated_at", sa.column("updated_at", sa.DateTime), True), ("id", sa.column("id", sa.Integer), False)]
    return QueryBuilder.decode_cursor(cursor, keys)


def _iso(value: Any) -> str:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)
