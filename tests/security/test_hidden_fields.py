"""Hidden fields never leave the server: a role (an overlay, as an administrator would add one)
hides fields that hold unique marker values, and every response its user can get (pages, tabs,
forms, board, search, lookups, CSV, JSON, OpenAPI, errors) is scanned for the markers. Filters,
sorts and searches on hidden fields are refused or find nothing, and say nothing about values."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote_plus

import httpx
import pytest

from engine.metadata import load_registry
from engine.runtime.db import make_engine
from engine.runtime.service import Runtime
from engine.runtime.users import User
from tests.security.conftest import STANDARD, Browser, Site, assert_clean, files_dir, make_user

# The standard pack keeps a normalised copy of the phone number (phone_key, for its duplicate
# check); hiding the phone means hiding the copy as well (see the test of that at the end).
_CUSTOMER = load_registry([STANDARD]).entity("customer")
# Copies of a field kept by hooks leak it unless the pack marks them `internal` (hidden from everyone).
MIRRORS = [f"customer.{name}" for name in ("phone_key",) if _CUSTOMER.has(name) and not _CUSTOMER.field(name).internal]
PERMISSIONS = {
    "customer": {"read": "all", "create": "all", "edit": "all", "export": "all"},
    "contact": {"read": "all", "edit": "all"},
    "opportunity": {"read": "all", "edit": "all", "export": "all"},
    "activity": {"read": "all"},
}
MASKED = {"kind": "role", "ref": "security:role/masked", "data": {
    "role": "masked", "label": {"en": "Masked", "zh": "遮蔽"}, "permissions": PERMISSIONS,
    "fields": {"customer.annual_revenue": "hidden", "customer.remarks": "hidden", "customer.phone": "hidden",
               "opportunity.amount": "hidden", "opportunity.next_step": "hidden", **dict.fromkeys(MIRRORS, "hidden")}}}
PHONE_ONLY = {"kind": "role", "ref": "security:role/phone_only", "data": {
    "role": "phone_only", "label": {"en": "No phone", "zh": "无电话"}, "permissions": PERMISSIONS,
    "fields": {"customer.phone": "hidden"}}}

REVENUE, OLD_REVENUE = "987654321.77", "987654320.00"
AMOUNT, OLD_AMOUNT = "876543219.55", "876543210.00"
PHONE = "13812345670"
REMARKS, NEXT_STEP = "HIDDEN-MARKER-xyz-remarks", "HIDDEN-MARKER-xyz-next-step"
# Every way the values might be written: plain, grouped (1,234 or 1 234), in JSON, in history.
MARKERS = [re.compile(p) for p in (r"987\D?654\D?32\d", r"876\D?543\D?21\d", r"138\D?1234\D?5670",
                                   r"HIDDEN-MARKER-xyz")]


def leaks(text: str) -> list[str]:
    return [m.group(0) for pattern in MARKERS if (m := pattern.search(text))]


@dataclass
class World:
    runtime: Runtime
    users: dict[str, User]
    site: Site
    customer: int
    opportunity: int
    contact: int

    def browser(self, name: str) -> Browser:
        return self.site.browser(self.users[name])


@pytest.fixture(scope="module")
def world(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    runtime = Runtime(load_registry([STANDARD], [MASKED, PHONE_ONLY]), make_engine(module_db_url))
    runtime.files_dir = files_dir(tmp_path_factory.mktemp("files"))
    runtime.migrate()
    users = {"admin": make_user(runtime, "admin", ("admin",), is_admin=True),
             "masked": make_user(runtime, "masked", ("masked",)),
             "phone_only": make_user(runtime, "phone_only", ("phone_only",))}
    admin = runtime.records(users["admin"].actor())
    customer = admin.create("customer", {"name": "Marked customer", "annual_revenue": OLD_REVENUE,
                                         "remarks": REMARKS + " (old)", "phone": PHONE, "owner": users["masked"].id})
    customer = admin.update("customer", customer["id"], {"annual_revenue": REVENUE, "remarks": REMARKS},
                            customer["version"])
    opportunity = admin.create("opportunity", {"name": "Marked deal", "customer": customer["id"],
                                               "amount": OLD_AMOUNT, "next_step": NEXT_STEP})
    opportunity = admin.update("opportunity", opportunity["id"], {"amount": AMOUNT}, opportunity["version"])
    contact = admin.create("contact", {"name": "Marked contact", "customer": customer["id"]})
    admin.create("activity", {"activity_type": runtime.registry.entity("activity").field("activity_type")
                              .picklist.options[0].key, "subject": "Marked visit",  # type: ignore[union-attr]
                              "customer": customer["id"], "opportunity": opportunity["id"]})
    admin.create("customer", {"name": "Child of marked", "parent": customer["id"], "annual_revenue": "5"})
    site = Site(runtime)
    yield World(runtime, users, site, customer["id"], opportunity["id"], contact["id"])
    site.close()
    runtime.engine.dispose()


def responses(world: World) -> Iterator[tuple[str, httpx.Response]]:
    """Everything the masked user can ask for about the marked records."""
    b = world.browser("masked")
    cid, oid, kid = world.customer, world.opportunity, world.contact
    for path in ("/", "/search?q=Marked", "/search?q=HIDDEN-MARKER", f"/search?q={PHONE}", "/search?q=987654321",
                 "/app/customer?limit=500", "/app/customer?columns=name,annual_revenue,remarks,phone,owner",
                 "/app/customer?sort=name&columns=annual_revenue", "/app/customer?view=hot",
                 f"/app/customer/{cid}", f"/app/customer/{cid}?tab=history", f"/app/customer/{cid}?tab=sharing",
                 f"/app/customer/{cid}/edit", "/app/customer/export.csv",
                 "/app/customer/export.csv?columns=name,annual_revenue,remarks,phone",
                 "/app/customer/lookup?q=Marked", f"/app/customer/lookup?q={PHONE}", "/app/customer/lookup?q=HIDDEN",
                 "/app/opportunity", "/app/opportunity?columns=name,amount,next_step", f"/app/opportunity/{oid}",
                 f"/app/opportunity/{oid}?tab=history", f"/app/opportunity/{oid}/edit", "/app/opportunity/board",
                 "/app/opportunity/export.csv?columns=name,amount,next_step", "/app/opportunity/lookup?q=Marked",
                 f"/app/contact/{kid}", f"/app/contact/{kid}?tab=history", "/app/contact", "/app/activity"):
        yield path, b.get(path)
    detail = b.get(f"/app/customer/{cid}").text
    for tab in re.findall(rf'href="/app/customer/{cid}\?tab=(r\d+)"', detail):
        yield f"customer tab {tab}", b.get(f"/app/customer/{cid}?tab={tab}")
    yield "bulk export", b.post("/app/customer/bulk", {"action": "export", "ids": str(cid)})
    for path in ("/api/v1", "/api/v1/customer", f"/api/v1/customer/{cid}", "/api/v1/customer?q=Marked",
                 f"/api/v1/customer?q={PHONE}", "/api/v1/opportunity", f"/api/v1/opportunity/{oid}",
                 f"/api/v1/contact/{kid}", "/api/v1/activity", "/api/openapi.json"):
        yield path, b.api("GET", path)


def test_admin_sees_the_markers(world: World) -> None:
    """The scan below would find them: an administrator sees every one of them."""
    admin = world.browser("admin")
    page = admin.get(f"/app/customer/{world.customer}").text + admin.get(f"/app/opportunity/{world.opportunity}").text
    assert len(leaks(page)) == len(MARKERS)


def test_no_response_carries_a_hidden_value(world: World) -> None:
    scanned = 0
    for where, response in responses(world):
        assert_clean(response)
        text = response.content.decode("utf-8-sig") if "csv" in response.headers.get("content-type", "") else response.text
        if where.startswith("/search?q=") or "lookup?q=" in where or "?q=" in where:
            text = text.replace(where.split("q=", 1)[1], "")  # the user's own words, echoed back
        assert leaks(text) == [], (where, response.status_code, leaks(text))
        scanned += 1
    assert scanned > 40


def test_the_hidden_fields_are_absent_not_empty(world: World) -> None:
    b = world.browser("masked")
    record = b.api("GET", f"/api/v1/customer/{world.customer}").json()
    assert not {"annual_revenue", "remarks", "phone"} & set(record) and record["name"] == "Marked customer"
    deal = b.api("GET", f"/api/v1/opportunity/{world.opportunity}").json()
    assert not {"amount", "next_step"} & set(deal)
    board = b.get("/app/opportunity/board").text
    assert "Marked deal" in board and "Amount" not in board  # no sum of hidden amounts
    form = b.get(f"/app/customer/{world.customer}/edit").text
    assert 'name="annual_revenue"' not in form and 'name="remarks"' not in form
    export = b.get("/app/customer/export.csv?columns=name,annual_revenue").content.decode("utf-8-sig")
    assert export.splitlines()[0] == "Customer name"


def refusal(response: httpx.Response, value: str) -> str:
    """A refusal's text without its request id and the value the user typed."""
    assert_clean(response)
    text = re.sub(r'"request_id":"[0-9a-f]+"|<code>[0-9a-f]{12}</code>|name="_csrf" value="[^"]+"', "", response.text)
    return text.replace(value, "VALUE").replace(quote_plus(value), "VALUE")


@pytest.mark.parametrize("where", ["api", "screen"])
def test_filters_sorts_and_searches_on_hidden_fields_are_refused(world: World, where: str) -> None:
    b = world.browser("masked")

    def get(params: dict[str, str]) -> httpx.Response:
        return b.api("GET", "/api/v1/customer", params=params) if where == "api" else b.get("/app/customer", params=params)

    for name, value, other in (("annual_revenue", REVENUE, "55555.55"), ("phone", PHONE, "12345678"),
                               ("remarks", REMARKS, "nothing-here")):
        for op in ("eq", "ne", "gt", "contains", "is_empty"):
            hit, miss = get({"filter": f"{name} {op} {value}"}), get({"filter": f"{name} {op} {other}"})
            assert hit.status_code == miss.status_code == 400, (name, op)
            # The same answer whether or not the value matches: nothing to learn from it.
            assert refusal(hit, value) == refusal(miss, other), (name, op)
        for sort in (name, f"-{name}", f"name,{name}"):
            response = get({"sort": sort})
            assert response.status_code == 400 and not leaks(response.text), sort
    for text in (PHONE, "987654321", REVENUE, REMARKS):
        found = get({"q": text})
        assert found.status_code == 200 and "Marked customer" not in found.text, text
    summed = b.post("/app/customer/views", {"name": "peek", "query": f"filter=annual_revenue gte {REVENUE}"})
    assert summed.status_code == 400 and not leaks(summed.text.replace(REVENUE, ""))


def test_writes_to_hidden_fields_are_refused_or_ignored(world: World) -> None:
    b = world.browser("masked")
    version = b.api("GET", f"/api/v1/customer/{world.customer}").json()["version"]
    for name, value in (("annual_revenue", "1"), ("remarks", "x"), ("phone", "12345678")):
        response = b.api("PATCH", f"/api/v1/customer/{world.customer}", json={name: value, "version": version})
        assert_clean(response)
        assert response.status_code == 422 and name in response.json()["fields"] and not leaks(response.text)
    created = b.api("POST", "/api/v1/customer", json={"name": "New one", "annual_revenue": "1"})
    assert created.status_code == 422 and not leaks(created.text)
    # The form has no such inputs; values posted for them anyway are not read.
    saved = b.post(f"/app/customer/{world.customer}/edit", {"_version": str(version), "name": "Marked customer",
                                                             "annual_revenue": "1", "remarks": "overwritten"})
    assert saved.status_code == 303, saved.text[:300]
    stored = world.runtime.records().get("customer", world.customer)
    assert str(stored["annual_revenue"]) == REVENUE and stored["remarks"] == REMARKS and stored["phone"] == PHONE


@pytest.mark.xfail(bool(MIRRORS), strict=True, reason=(
    "packs/standard_crm keeps customer.phone_key, a normalised copy of customer.phone written by a "
    "before_save hook, as an ordinary (read-only) field: a role that hides customer.phone still sees the "
    "number in phone_key (detail, history, API, export). Field rules cannot follow a copy the engine does "
    "not know about; the pack should declare it as derived from phone (or hide it from everyone)."))
def test_hiding_a_field_hides_what_is_derived_from_it(world: World) -> None:
    b = world.browser("phone_only")
    for response in (b.api("GET", f"/api/v1/customer/{world.customer}"), b.get(f"/app/customer/{world.customer}"),
                     b.get(f"/app/customer/{world.customer}?tab=history")):
        assert response.status_code == 200 and not MARKERS[2].search(response.text)  # (only the phone is hidden)
