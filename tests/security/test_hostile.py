"""Hostile input: markup and script in every text field render escaped everywhere; spreadsheet
formulas are neutralised in CSV exports; SQL metacharacters in filters, sorts, search, ids,
cursors and paths give a 4xx or the literal answer, never a 500 or a database message; other
users' ids are 404; every state-changing route needs its CSRF token; oversized bodies and
uploads are refused."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import quote

import pytest
from markupsafe import escape
from starlette.routing import Route

from engine.metadata import load_registry
from engine.runtime.db import make_engine
from engine.runtime.service import Runtime
from engine.runtime.users import User
from engine.ui.app import routes
from engine.ui.web import MAX_BODY
from tests.security.conftest import STANDARD, Browser, Site, assert_clean, files_dir, make_user

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "</textarea><script>alert(2)</script>",
    "javascript:alert(1)",
    "{{7*7}}",
    "{% if 1 %}tpl{% endif %}",
    "${7*7}",
    "\u202eevil\u202c <b>bold</b>",  # right-to-left override
    "\uff1cscript\uff1ealert(3)\uff1c/script\uff1e",  # fullwidth brackets
    "zero\u200bwidth<i>x</i>",
]
FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1+1)", "=HYPERLINK(\"http://evil.example\",\"x\")"]
ENTITIES = ("customer", "contact", "opportunity")


def texty(runtime: Runtime, entity: str) -> list[str]:
    """The free-text fields of an entity (string and text; not validated types like email)."""
    e = runtime.registry.entity(entity)
    return [f.name for f in e.user_fields if f.type in ("string", "text") and not f.kind.derived and not f.read_only]


@dataclass
class World:
    runtime: Runtime
    users: dict[str, User]
    site: Site
    records: dict[str, dict[str, int]]  # entity -> payload -> id
    literal: int  # a customer whose name holds SQL metacharacters
    others: int  # sales2's customer

    def browser(self, name: str) -> Browser:
        return self.site.browser(self.users[name])


@pytest.fixture(scope="module")
def world(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    runtime = Runtime(load_registry([STANDARD]), make_engine(module_db_url))
    runtime.files_dir = files_dir(tmp_path_factory.mktemp("files"))
    runtime.migrate()
    users = {name: make_user(runtime, name, roles, is_admin=name == "admin")
             for name, roles in (("admin", ("admin",)), ("sales1", ("salesperson",)), ("sales2", ("salesperson",)))}
    records: dict[str, dict[str, int]] = {e: {} for e in ENTITIES}
    sales1 = runtime.records(users["sales1"].actor())
    parent = sales1.create("customer", {"name": "Parent of the hostile records"})["id"]
    for payload in PAYLOADS + FORMULAS:
        for entity in ENTITIES:
            values: dict[str, Any] = {name: payload for name in texty(runtime, entity)}
            if entity != "customer":
                values["customer"] = parent
            records[entity][payload] = sales1.create(entity, values)["id"]
    literal = sales1.create("customer", {"name": "100% _real_ \\ \"quoted\"; O'Brien [x]"})["id"]
    others = runtime.records(users["sales2"].actor()).create("customer", {"name": "Sales2 private customer"})["id"]
    # A change, so the history shows payloads as old and new values.
    for entity in ENTITIES:
        first, second = records[entity][PAYLOADS[0]], PAYLOADS[1]
        record = sales1.get(entity, first)
        sales1.update(entity, first, {texty(runtime, entity)[0]: second}, record["version"])
    site = Site(runtime)
    yield World(runtime, users, site, records, literal, others)
    site.close()
    runtime.engine.dispose()


# -- markup renders escaped -----------------------------------------------------------------------

# Markup a payload would bring with it (escaped, `<` is `&lt;`, so these only match live markup).
DANGEROUS = re.compile(r"<script|<img|<svg|<iframe|<textarea>|href=\"javascript:|src=\"javascript:|<i>x</i>|<b>bold",
                       re.IGNORECASE)


def assert_inert(html: str, where: str) -> None:
    """No payload's markup made it into the page as markup."""
    cleaned = re.sub(r'<script src="/static/[^"]+"( defer)?></script>', "", html)  # the application's own
    match = DANGEROUS.search(cleaned)
    assert match is None, (where, cleaned[max(0, match.start() - 200):match.end() + 200] if match else "")


def pages(world: World, entity: str) -> Iterator[tuple[str, str]]:
    browser = world.browser("sales1")
    columns = ",".join(texty(world.runtime, entity))
    yield "list", browser.get(f"/app/{entity}?limit=500&columns={columns}").text
    yield "search", browser.get("/search?q=alert").text
    if entity == "opportunity":
        yield "board", browser.get("/app/opportunity/board").text
    for payload, record_id in world.records[entity].items():
        for tab in ("", "?tab=history"):
            yield f"detail{tab} {payload}", browser.get(f"/app/{entity}/{record_id}{tab}").text
        yield f"form {payload}", browser.get(f"/app/{entity}/{record_id}/edit").text
    customer = world.records["customer"][PAYLOADS[0]]
    page = browser.get(f"/app/customer/{customer}").text
    for tab in re.findall(r'href="/app/customer/\d+\?tab=(r\d+)"', page):
        yield f"related {tab}", browser.get(f"/app/customer/{customer}?tab={tab}").text


@pytest.mark.parametrize("entity", ENTITIES)
def test_markup_in_every_text_field_renders_escaped(world: World, entity: str) -> None:
    seen: set[str] = set()
    for where, html in pages(world, entity):
        assert_inert(html, where)
        for payload in PAYLOADS:
            if str(escape(payload)) in html:
                seen.add(payload)
    assert seen == set(PAYLOADS)  # every payload was shown somewhere, as text ({{7*7}} unevaluated)
    # Lookups are JSON (never sniffed as HTML); crm.js puts the titles into the page as text.
    found = world.browser("sales1").get(f"/app/{entity}/lookup?q=alert")
    assert found.headers["content-type"].startswith("application/json")
    assert found.headers["x-content-type-options"] == "nosniff"
    assert any("<" in r["title"] for r in found.json())  # JSON carries the text as it is


def test_history_shows_old_and_new_payloads_as_text(world: World) -> None:
    browser = world.browser("sales1")
    html = browser.get(f"/app/customer/{world.records['customer'][PAYLOADS[0]]}?tab=history").text
    assert str(escape(PAYLOADS[0])) in html and str(escape(PAYLOADS[1])) in html
    assert_inert(html, "history")


def test_urls_must_be_web_addresses(world: World) -> None:
    browser = world.browser("sales1")
    for bad in ("javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>",
                "vbscript:msgbox(1)", " javascript:alert(1)", "java\nscript:alert(1)"):
        response = browser.api("POST", "/api/v1/customer", json={"name": "Link test", "website": bad})
        assert_clean(response)
        assert response.status_code == 422 and "website" in response.json()["fields"], bad
    good = browser.api("POST", "/api/v1/customer", json={"name": "Link test", "website": "example.com/a?b=<c>"})
    assert good.status_code == 201
    html = browser.get(f"/app/customer/{good.json()['id']}").text
    assert 'href="https://example.com/a?b=&lt;c&gt;"' in html


def test_rich_text_is_sanitized_on_the_way_in(world: World) -> None:
    admin = world.browser("admin")
    category = world.runtime.registry.entity("knowledge_article").field("category").picklist.options[0].key  # type: ignore[union-attr]
    content = ('<p onclick="alert(1)">Hi <a href="javascript:alert(1)">x</a><script>alert(1)</script>'
               '<img src=x onerror=alert(1)><iframe src="https://evil.example"></iframe><b>ok</b></p>')
    created = admin.api("POST", "/api/v1/knowledge_article", json={"title": "Rich", "category": category,
                                                                   "content": content})
    assert created.status_code == 201, created.text[:300]
    stored = created.json()["content"]
    for bad in ("<script", "onclick", "javascript:", "<img", "<iframe", "onerror"):
        assert bad not in stored.lower()
    assert "<b>ok</b>" in stored
    html = admin.get(f"/app/knowledge_article/{created.json()['id']}").text
    assert "<b>ok</b>" in html and "<script>alert" not in html


# -- CSV exports ----------------------------------------------------------------------------------

def exported(world: World, entity: str) -> list[dict[str, str]]:
    names = ["id", *texty(world.runtime, entity)]
    response = world.browser("admin").get(f"/app/{entity}/export.csv?limit=500&columns={','.join(names)}")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    return [dict(zip(names, row, strict=True)) for row in rows[1:]]


@pytest.mark.parametrize("entity", ENTITIES)
def test_exports_neutralise_formulas_and_keep_text(world: World, entity: str) -> None:
    """Decision: a cell that a spreadsheet would run as a formula (= + - @ tab CR first) gets a
    leading apostrophe, which spreadsheets show as text; everything else is exported as saved."""
    rows = {int(r["id"]): r for r in exported(world, entity)}
    fields = texty(world.runtime, entity)
    for payload in PAYLOADS[2:]:  # (the first one was edited for the history test)
        row = rows[world.records[entity][payload]]
        assert [row[f] for f in fields] == [payload] * len(fields), payload
    for formula in FORMULAS:
        row = rows[world.records[entity][formula]]
        assert [row[f] for f in fields] == ["'" + formula] * len(fields), formula
    for row in rows.values():
        for name in fields:
            assert not row[name].startswith(("=", "+", "-", "@", "\t", "\r")), row[name]


def test_negative_numbers_stay_readable_in_exports(world: World) -> None:
    admin = world.browser("admin")
    created = admin.api("POST", "/api/v1/customer", json={"name": "Minus", "annual_revenue": "-1234.5"}).json()
    response = admin.get(f"/app/customer/export.csv?columns=id,annual_revenue&filter=id eq {created['id']}")
    cell = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))[1][1]
    assert "1,234.50" in cell
    # A bare negative number stays a number; anything else starting with "-" is text.
    assert re.fullmatch(r"-[\d.,]+", cell) or cell.startswith("'-") or not cell.startswith("-"), cell


# -- SQL metacharacters ---------------------------------------------------------------------------

META = ["' OR 1=1 --", "' OR '1'='1", "%", "_", "\\", '"', ";", "'; DROP TABLE customer; --", "1) OR (1=1",
        "*", "[x]", "%' --", "\\%", "O'Brien", "`id`", "$1", "?", ":name", "--", "/*", "\u00a0", "名"]


def cursor_of(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def all_rows(browser: Browser, entity: str = "customer") -> list[dict[str, Any]]:
    return browser.api("GET", f"/api/v1/{entity}?limit=500").json()["data"]


def matches(record: dict[str, Any], text: str, fields: tuple[str, ...]) -> bool:
    """The documented search: every word appears (ignoring case) in one of the search fields."""
    words = text.split()[:5]
    values = [str(record.get(f) or "").lower() for f in fields]
    return all(any(w.lower() in v for v in values) for w in words)


def test_search_takes_metacharacters_literally(world: World) -> None:
    browser = world.browser("sales1")
    mine = all_rows(browser)
    fields = world.runtime.registry.entity("customer").search
    for text in META:
        expected = {r["id"] for r in mine if matches(r, text, fields)} if text.split() else {r["id"] for r in mine}
        api = browser.api("GET", "/api/v1/customer", params={"q": text, "limit": 500})
        assert_clean(api)
        assert api.status_code == 200 and {r["id"] for r in api.json()["data"]} == expected, text
        screen = browser.get("/app/customer", params={"q": text, "limit": 500})
        assert_clean(screen)
        assert {int(i) for i in re.findall(r'href="/app/customer/(\d+)" class="row-link"', screen.text)} == expected
        assert_clean(browser.get("/search", params={"q": text}))
        assert_clean(browser.get("/app/customer/lookup", params={"q": text}))
    percent = {r["id"] for r in browser.api("GET", "/api/v1/customer", params={"q": "%"}).json()["data"]}
    assert world.literal in percent and len(percent) < len(mine)  # % is a character, not a wildcard
    underscore = browser.api("GET", "/api/v1/customer", params={"q": "_real_"}).json()["data"]
    assert [r["id"] for r in underscore] == [world.literal]


def test_filters_take_metacharacters_literally(world: World) -> None:
    browser = world.browser("sales1")
    mine = all_rows(browser)
    for text in META:
        value = text.strip()
        if not value:
            continue
        for op, check in (("eq", lambda n, v: n == v), ("contains", lambda n, v: v.lower() in n.lower()),
                          ("starts_with", lambda n, v: n.lower().startswith(v.lower()))):
            expected = {r["id"] for r in mine if check(r["name"], value)}
            response = browser.api("GET", "/api/v1/customer", params={"filter": f"name {op} {value}", "limit": 500})
            assert_clean(response)
            assert response.status_code == 200, (op, text, response.text[:300])
            assert {r["id"] for r in response.json()["data"]} == expected, (op, text)
            screen = browser.get("/app/customer", params={"filter": f"name {op} {value}", "limit": 500})
            assert_clean(screen)
            assert screen.status_code == 200
    name = "100% _real_ \\ \"quoted\"; O'Brien [x]"
    exact = browser.api("GET", "/api/v1/customer", params={"filter": f"name eq {name}"}).json()["data"]
    assert [r["id"] for r in exact] == [world.literal]


@pytest.mark.parametrize("where", ["api", "screen"])
def test_metacharacters_in_names_sorts_views_and_cursors_are_refused(world: World, where: str) -> None:
    browser = world.browser("sales1")

    def get(params: dict[str, Any]) -> Any:
        response = (browser.api("GET", "/api/v1/customer", params=params) if where == "api"
                    else browser.get("/app/customer", params=params))
        assert_clean(response)
        return response

    for text in META:
        if not text.strip():
            continue  # (white space only: nothing to refuse)
        for params in ({"filter": f"{text} eq 1"}, {"filter": f"name{text} eq 1"}, {"filter": f"name {text} 1"},
                       {"sort": text}, {"sort": f"name{text}"}, {"sort": f"-name,{text}"}, {"view": text},
                       {"cursor": text}, {"before": text}, {"f.created_at.from": text}):
            response = get(params)
            assert response.status_code == 400, (params, response.status_code, response.text[:300])
    for text in META:  # hostile values inside well-formed cursors are bound parameters: correct pages
        response = get({"sort": "name", "cursor": cursor_of([text, 1])})
        assert response.status_code == 200
        response = get({"sort": "-name", "before": cursor_of([text, 2**31])})
        assert response.status_code == 200
    for cursor in ([2**70], [-2**70], [2**63], ["x"], [None], [True], [{"t": "Decimal", "v": "1e999999"}],
                   [{"t": "Decimal", "v": "NaN"}], [{"t": "datetime", "v": "99999-01-01"}], [1.5e308], [[1]], [{}],
                   [1, 2, 3]):
        response = get({"sort": "id", "cursor": cursor_of(cursor)})
        assert response.status_code in (200, 400), (cursor, response.status_code)
    for cursor in ([{"t": "Decimal", "v": "1e999999"}, 1], [{"t": "Decimal", "v": "-1e400"}, 1], [2**70]):
        response = get({"sort": "annual_revenue" if len(cursor) == 2 else "id", "cursor": cursor_of(cursor)})
        assert response.status_code in (200, 400), (cursor, response.status_code)
    for value in ("1e400", "-1e400", "99999999999999999999999999999999", "1e-400", "NaN", "Infinity", "0x10"):
        response = get({"filter": f"annual_revenue gt {value}"})
        assert response.status_code in (200, 400), (value, response.status_code)
        response = get({"f.annual_revenue.from": value})
        assert response.status_code in (200, 400), (value, response.status_code)
    for value in ("99999999999999999999", "-99999999999999999999", "1e3", "0x10", "1;1"):
        for name in ("id", "owner", "parent", "version"):
            response = get({"filter": f"{name} eq {value}"})
            assert response.status_code in (200, 400), (name, value, response.status_code)


def test_nul_characters_are_refused_not_a_database_error(world: World) -> None:
    browser = world.browser("sales1")
    for response in (
        browser.api("POST", "/api/v1/customer", json={"name": "a\x00b"}),
        browser.api("GET", "/api/v1/customer", params={"q": "a\x00b"}),
        browser.api("GET", "/api/v1/customer", params={"filter": "name eq a\x00b"}),
        browser.api("GET", "/api/v1/customer", params={"sort": "name", "cursor": cursor_of(["a\x00b", 1])}),
        browser.get("/app/customer", params={"q": "a\x00b"}),
        browser.get("/search", params={"q": "a\x00b"}),
        browser.post("/app/customer/new", {"name": "a\x00b"}),
        browser.post("/app/customer/views", {"name": "v\x00", "query": "q=x"}),
        browser.post("/settings/tokens", {"name": "t\x00"}),
    ):
        assert_clean(response)
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code)
    anonymous = world.site.client()
    token = re.search(r'name="_csrf" value="([^"]+)"', anonymous.get("/login").text).group(1)  # type: ignore[union-attr]
    response = anonymous.post("/login", data={"username": "sales1\x00", "password": "whatever1", "_csrf": token})
    assert_clean(response)
    assert 400 <= response.status_code < 500


IDS = ["0", "-1", "99999999999999999999", "9223372036854775808", "1e3", "0x1", "1 OR 1=1", "1' OR '1'='1",
       "1;", "1--", "%27", "%2e%2e", "%00", "null", "[]", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"]


def test_hostile_ids_and_path_segments_are_404(world: World) -> None:
    browser = world.browser("sales1")
    for raw in IDS:
        segment = raw if raw.startswith("%") else quote(raw, safe="")
        for path in (f"/app/customer/{segment}", f"/app/customer/{segment}/edit", f"/app/customer/{segment}/files/remarks",
                     f"/app/{segment}", f"/app/{segment}/1", f"/app/{segment}/export.csv"):
            response = browser.get(path)
            assert_clean(response)
            assert response.status_code == 404, (path, response.status_code)
        for method, path in (("GET", f"/api/v1/customer/{segment}"), ("PATCH", f"/api/v1/customer/{segment}"),
                             ("DELETE", f"/api/v1/customer/{segment}"), ("GET", f"/api/v1/{segment}")):
            response = browser.api(method, path, json={"version": 1} if method == "PATCH" else None)
            assert_clean(response)
            assert response.status_code == 404, (method, path, response.status_code)
        for action in ("delete", "share", "restore", "purge", "stage", "edit"):
            response = browser.post(f"/app/customer/{segment}/{action}", {"_version": "1", "field": "name"})
            assert_clean(response)
            assert response.status_code == 404, (action, raw, response.status_code)
    for segment in ("customer;", "customer'", "customer%20OR%201=1", "Customer", "crm_user", "crm_session"):
        assert browser.get(f"/app/{segment}").status_code == 404
        assert browser.api("GET", f"/api/v1/{segment}").status_code == 404


def test_other_users_records_are_404_everywhere(world: World) -> None:
    browser = world.browser("sales1")
    other, missing = world.others, 987654
    gets = ["/app/customer/{}", "/app/customer/{}/edit", "/app/customer/{}?tab=history", "/app/customer/{}?tab=sharing",
            "/app/customer/{}/files/remarks"]
    posts = ["/app/customer/{}/edit", "/app/customer/{}/delete", "/app/customer/{}/share", "/app/customer/{}/stage",
             "/app/customer/{}/restore", "/app/customer/{}/purge"]
    for template in gets:
        a, b = browser.get(template.format(other)), browser.get(template.format(missing))
        assert a.status_code == b.status_code == 404, template
        assert strip_ids(a.text, other) == strip_ids(b.text, missing), template  # no difference to learn from
    for template in posts:
        form = {"_version": "1", "version": "1", "field": "name", "stage": "x", "user": "1"}
        a, b = browser.post(template.format(other), form), browser.post(template.format(missing), form)
        assert a.status_code == b.status_code == 404, template
        assert strip_ids(a.text, other) == strip_ids(b.text, missing), template
    for method in ("GET", "PATCH", "DELETE"):
        a = browser.api(method, f"/api/v1/customer/{other}", json={"version": 1, "name": "x"} if method == "PATCH" else None)
        b = browser.api(method, f"/api/v1/customer/{missing}", json={"version": 1, "name": "x"} if method == "PATCH" else None)
        assert a.status_code == b.status_code == 404, method
        assert a.json()["message"].replace(str(other), "#") == b.json()["message"].replace(str(missing), "#")
    # Linking to it does not work either, and says no more than for a missing record.
    linked = browser.api("POST", "/api/v1/contact", json={"name": "x", "customer": other})
    absent = browser.api("POST", "/api/v1/contact", json={"name": "x", "customer": missing})
    assert linked.status_code == absent.status_code == 422
    assert linked.json()["fields"]["customer"] == [m.replace(str(missing), str(other)) for m in absent.json()["fields"]["customer"]]
    assert world.runtime.records().get("customer", other)["name"] == "Sales2 private customer"  # untouched


def strip_ids(html: str, record_id: int) -> str:
    html = re.sub(r"<code>[0-9a-f]{12}</code>", "", html)  # the request id
    html = re.sub(r'name="_csrf" value="[^"]+"', "", html)
    return html.replace(str(record_id), "#")


# -- CSRF -----------------------------------------------------------------------------------------

def state_changing_routes() -> list[tuple[str, str]]:
    found = []
    for route in routes():
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            found.append((method, route.path))
    return found


def concrete(path: str, record_id: int) -> str:
    values = {"entity": "customer", "id": str(record_id), "field": "remarks"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)


def test_every_state_changing_route_needs_the_csrf_token(world: World) -> None:
    listed = state_changing_routes()
    assert ("POST", "/app/{entity}/{id}/delete") in listed and ("PATCH", "/api/v1/{entity}/{id}") in listed
    browser = world.browser("sales1")
    record_id = world.records["customer"][PAYLOADS[2]]
    before = world.runtime.records().get("customer", record_id)
    for method, template in listed:
        path = concrete(template, record_id)
        if path.startswith("/api/"):
            for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
                response = browser.client.request(method, path, json={"name": "csrf"}, headers=headers)
                assert_clean(response)
                assert response.status_code == 403 and response.json()["error"] == "CsrfFailed", (method, path, headers)
        else:
            for data in ({}, {"_csrf": "forged"}, {"_csrf": ""}, {"_csrf": browser.csrf + "x"}):
                response = browser.client.request(method, path, data={**data, "name": "csrf", "_version": "1"})
                assert_clean(response)
                assert response.status_code == 403, (method, path, data, response.status_code)
    after = world.runtime.records().get("customer", record_id)
    assert after["version"] == before["version"] and after["deleted_at"] is None
    assert world.runtime.records().shares("customer", record_id) == []
    # Another session's token is no good either.
    other = world.browser("sales2")
    response = browser.client.post(f"/app/customer/{record_id}/delete", data={"_csrf": other.csrf})
    assert response.status_code == 403
    # With the right token the same request works (the 403s above were the token's doing).
    response = browser.post(f"/app/customer/{record_id}/share", {"user": world.users["admin"].id, "access": "read"})
    assert response.status_code == 303
    world.runtime.records().unshare("customer", record_id, world.users["admin"].id)


# -- sizes ----------------------------------------------------------------------------------------

def test_oversized_bodies_are_refused(world: World) -> None:
    browser = world.browser("admin")
    big = b"x" * (MAX_BODY + 1)
    for path, headers in (("/app/customer/new", {"content-type": "application/x-www-form-urlencoded"}),
                          ("/api/v1/customer", {"content-type": "application/json",
                                                "Authorization": f"Bearer {browser.token}"})):
        response = browser.client.post(path, content=big, headers=headers)
        assert response.status_code == 413, path

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is only known while reading
        for _ in range(MAX_BODY // (1024 * 1024) + 2):
            yield b"x" * (1024 * 1024)

    for path, headers in (("/app/customer/new", {"content-type": "application/x-www-form-urlencoded"}),
                          ("/api/v1/customer", {"content-type": "application/json",
                                                "Authorization": f"Bearer {browser.token}"})):
        response = browser.client.post(path, content=chunks(), headers=headers)
        assert response.status_code == 413, (path, response.status_code)
        assert_clean(response)


def test_uploads_above_the_fields_limit_are_refused_with_a_clear_message(world: World) -> None:
    browser = world.browser("admin")
    picture = world.runtime.registry.entity("product").field("picture")
    limit = picture.kind.max_size(picture)  # type: ignore[attr-defined]
    response = browser.post("/app/product/new", {"code": "BIG-1", "name": "Too big"},
                            files={"picture": ("big.png", b"\x89PNG" + b"0" * limit, "image/png")})
    assert response.status_code == 422
    assert f"The file is larger than {limit // 1024} KiB." in unescape(response.text)
    assert world.runtime.records().query("product").total == 0
    response = browser.post("/app/product/new", {"code": "OK-1", "name": "Fits"},
                            files={"picture": ("ok.png", b"\x89PNG" + b"0" * 100, "image/png")})
    assert response.status_code == 303
