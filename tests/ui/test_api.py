"""The JSON API over HTTP, against the real application and database: authentication, every
route and status code, the list query syntax, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import User
from engine.ui.tokens import create_token, list_tokens, revoke_token
from tests.ui.conftest import csrf_of

LEAKS = ("Traceback", "SELECT ", "INSERT ", "UPDATE ", "sqlalchemy", "psycopg", "sqlite3", 'File "')


def check(response: httpx.Response, status: int) -> Any:
    """The response's JSON after checking its status and that no internals leaked into it."""
    assert response.status_code == status, response.text[:1000]
    for leak in LEAKS:
        assert leak not in response.text, response.text[:1000]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if status >= 400:
        assert set(body) >= {"error", "message", "request_id"} and body["message"] and body["request_id"]
    return body


@pytest.fixture
def api(client_for: Callable[..., TestClient], crm: Runtime, people: dict[str, User]) -> Callable[[str], TestClient]:
    """api("sales1") -> an anonymous client that sends that user's bearer token."""
    def make(username: str) -> TestClient:
        client = client_for(None)
        client.headers["Authorization"] = "Bearer " + create_token(crm, people[username].id, "tests")
        return client

    return make


def customer(crm: Runtime, user: User, **values: Any) -> dict[str, Any]:
    return crm.records(user.actor()).create("customer", {"name": "Acme", **values})


# -- authentication -------------------------------------------------------------------------------

def test_requests_without_valid_credentials_get_401(client_for: Callable[..., TestClient], crm: Runtime,
                                                    people: dict[str, User]) -> None:
    anonymous = client_for(None)
    for method, path in [("GET", "/api/v1"), ("GET", "/api/openapi.json"), ("GET", "/api/v1/customer"),
                         ("POST", "/api/v1/customer"), ("GET", "/api/v1/customer/1"),
                         ("PATCH", "/api/v1/customer/1"), ("DELETE", "/api/v1/customer/1")]:
        body = check(anonymous.request(method, path, json={} if method in ("POST", "PATCH") else None), 401)
        assert body["error"] == "Unauthorized"
    # Credentials are checked before the body is even read as JSON.
    check(anonymous.post("/api/v1/customer", content=b"{not json", headers={"Content-Type": "application/json"}), 401)
    for header in ("Bearer crm_unknown", "Bearer nonsense", "Bearer "):
        check(anonymous.get("/api/v1/customer", headers={"Authorization": header}), 401)

    token = create_token(crm, people["sales1"].id, "laptop")
    check(anonymous.get("/api/v1/customer", headers={"Authorization": f"Bearer {token}"}), 200)
    (row,) = list_tokens(crm, people["sales1"].id)
    assert revoke_token(crm, people["sales1"].id, row["id"])
    check(anonymous.get("/api/v1/customer", headers={"Authorization": f"Bearer {token}"}), 401)


def test_session_writes_need_the_csrf_header(client_for: Callable[..., TestClient]) -> None:
    browser = client_for("sales1")
    check(browser.get("/api/v1/customer"), 200)  # reads need no CSRF token
    body = check(browser.post("/api/v1/customer", json={"name": "Via session"}), 403)
    assert body["error"] == "CsrfFailed"
    check(browser.post("/api/v1/customer", json={"name": "Via session"}, headers={"X-CSRF-Token": "wrong"}), 403)
    token = csrf_of(browser, "/settings")
    created = check(browser.post("/api/v1/customer", json={"name": "Via session"},
                                 headers={"X-CSRF-Token": token}), 201)
    assert created["owner"]["title"] == "Sales1"
    check(browser.delete(f"/api/v1/opportunity/{created['id']}"), 403)  # CSRF before anything else


# -- index and document ---------------------------------------------------------------------------

def test_index_lists_the_entities_the_caller_may_read(api: Callable[[str], TestClient], crm: Runtime) -> None:
    body = check(api("service1").get("/api/v1"), 200)
    entries = {e["key"]: e for e in body["data"]}
    assert "customer" in entries and "service_request" in entries
    assert "opportunity" not in entries  # service agents have no permission on opportunities
    assert entries["customer"]["can"] == {"create": False, "edit": False, "delete": False}
    assert entries["customer"]["url"] == "/api/v1/customer" and entries["customer"]["label"]["zh"] == "客户"
    assert body["openapi"] == "/api/openapi.json"
    assert len(check(api("admin").get("/api/v1"), 200)["data"]) == len(crm.registry.entities)


def test_openapi_document_is_valid_and_describes_every_entity(api: Callable[[str], TestClient], crm: Runtime,
                                                              people: dict[str, User]) -> None:
    doc = check(api("sales1").get("/api/openapi.json"), 200)
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    schemas = doc["components"]["schemas"]
    for entity in crm.registry.entities.values():
        name = "".join(p.capitalize() for p in entity.key.split("_"))
        assert {name, f"{name}Input", f"{name}Update", f"{name}Page"} <= set(schemas), entity.key
        assert set(schemas[name]["properties"]) == {n for n, f in entity.fields.items() if not f.internal}, entity.key
        assert {"get", "post"} <= set(doc["paths"][f"/api/v1/{entity.key}"])
        assert {"get", "patch", "delete"} <= set(doc["paths"][f"/api/v1/{entity.key}/{{id}}"])
    assert schemas["CustomerInput"]["required"] == ["name"]
    assert "code" not in schemas["CustomerInput"]["properties"]  # autonumber: derived
    assert "owner" in schemas["CustomerInput"]["properties"]
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "session"}


def validator(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator of one component schema, resolving $refs within the document."""
    root = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_records_from_the_api_validate_against_their_schemas(api: Callable[[str], TestClient]) -> None:
    client = api("sales1")
    doc = check(client.get("/api/openapi.json"), 200)
    new_customer = {"name": "华信科技", "industry": "it_software", "annual_revenue": "1234567.5", "hot": True,
                    "email": "Info@Huaxin.example", "website": "huaxin.example", "next_follow_up_at": "2026-05-01T09:30"}
    assert not list(validator(doc, "CustomerInput").iter_errors(new_customer))
    acme = check(client.post("/api/v1/customer", json=new_customer), 201)
    contact = check(client.post("/api/v1/contact", json={"name": "王芳", "customer": acme["id"],
                                                         "birthday": "1990-02-03"}), 201)
    deal = check(client.post("/api/v1/opportunity", json={"name": "ERP", "customer": acme["id"], "amount": 80000,
                                                          "contact": contact["id"],
                                                          "expected_close_date": "2026-06-30"}), 201)
    for name, record in [("Customer", acme), ("Contact", contact), ("Opportunity", deal)]:
        errors = [e.message for e in validator(doc, name).iter_errors(record)]
        assert not errors, (name, errors)
    assert acme["annual_revenue"] == "1234567.50" and acme["email"] == "info@huaxin.example"
    assert deal["customer"] == {"id": acme["id"], "title": "华信科技"} and deal["stage"] == "initial_contact"
    page = check(client.get("/api/v1/opportunity"), 200)
    assert not list(validator(doc, "OpportunityPage").iter_errors(page))

    # Computed and rollup fields, a reference whose target's title is itself a reference.
    admin = api("admin")
    product = check(admin.post("/api/v1/product", json={"code": "P-1", "name": "Pump"}), 201)
    quote = check(admin.post("/api/v1/quote", json={"customer": acme["id"]}), 201)
    line = check(admin.post("/api/v1/quote_line", json={"quote": quote["id"], "product": product["id"],
                                                        "quantity": "2.5", "unit_price": 100}), 201)
    quote = check(admin.get(f"/api/v1/quote/{quote['id']}"), 200)
    assert line["line_amount"] == "250.00" and quote["subtotal"] == "250.00" and quote["total"] == "250.00"
    for name, record in [("Product", product), ("Quote", quote), ("QuoteLine", line)]:
        errors = [e.message for e in validator(doc, name).iter_errors(record)]
        assert not errors, (name, errors)
    assert list(validator(doc, "CustomerInput").iter_errors({"name": "x", "nope": 1}))  # unknown keys refused


# -- lists ----------------------------------------------------------------------------------------

@pytest.fixture
def listed(crm: Runtime, people: dict[str, User]) -> list[dict[str, Any]]:
    """Seven customers of sales1 (revenue 1..7 million, alternating industries) and one of sales2."""
    rows = [customer(crm, people["sales1"], name=f"Customer {i}", annual_revenue=i * 1_000_000,
                     industry="retail" if i % 2 else "it_software", hot=i > 5) for i in range(1, 8)]
    customer(crm, people["sales2"], name="Customer of sales2", annual_revenue=9_000_000)
    return rows


def test_list_filters_sorts_and_searches(api: Callable[[str], TestClient], listed: list[dict[str, Any]]) -> None:
    client = api("sales1")
    body = check(client.get("/api/v1/customer"), 200)
    assert body["total"] == 7 and body["total_exact"] is True  # not sales2's customer
    assert body["next_cursor"] is None and body["prev_cursor"] is None
    assert all(r["owner"]["title"] == "Sales1" for r in body["data"])

    body = check(client.get("/api/v1/customer", params=[("filter", "annual_revenue gte 3000000"),
                                                        ("filter", "industry eq retail"),
                                                        ("sort", "-annual_revenue")]), 200)
    assert [r["name"] for r in body["data"]] == ["Customer 7", "Customer 5", "Customer 3"]
    assert body["data"][0]["annual_revenue"] == "7000000.00"

    body = check(client.get("/api/v1/customer", params={"q": "customer 4"}), 200)
    assert [r["name"] for r in body["data"]] == ["Customer 4"]
    body = check(client.get("/api/v1/customer", params=[("f.industry", "it_software"), ("sort", "name")]), 200)
    assert [r["name"] for r in body["data"]] == ["Customer 2", "Customer 4", "Customer 6"]
    body = check(client.get("/api/v1/customer", params={"view": "hot", "sort": "name"}), 200)
    assert [r["name"] for r in body["data"]] == ["Customer 6", "Customer 7"]
    body = check(client.get("/api/v1/customer", params={"filter": "annual_revenue between 2000000,3000000"}), 200)
    assert sorted(r["name"] for r in body["data"]) == ["Customer 2", "Customer 3"]


def test_list_pages_by_cursor_both_ways_and_by_offset(api: Callable[[str], TestClient],
                                                      listed: list[dict[str, Any]]) -> None:
    client = api("sales1")
    names = [f"Customer {i}" for i in range(1, 8)]
    first = check(client.get("/api/v1/customer", params={"sort": "name", "limit": 3}), 200)
    assert [r["name"] for r in first["data"]] == names[:3] and first["total"] == 7
    assert first["prev_cursor"] is None and first["next_cursor"]
    second = check(client.get("/api/v1/customer", params={"sort": "name", "limit": 3,
                                                          "cursor": first["next_cursor"]}), 200)
    assert [r["name"] for r in second["data"]] == names[3:6]
    third = check(client.get("/api/v1/customer", params={"sort": "name", "limit": 3,
                                                         "cursor": second["next_cursor"]}), 200)
    assert [r["name"] for r in third["data"]] == names[6:] and third["next_cursor"] is None
    back = check(client.get("/api/v1/customer", params={"sort": "name", "limit": 3,
                                                        "before": third["prev_cursor"]}), 200)
    assert [r["name"] for r in back["data"]] == names[3:6]
    back = check(client.get("/api/v1/customer", params={"sort": "name", "limit": 3, "before": back["prev_cursor"]}), 200)
    assert [r["name"] for r in back["data"]] == names[:3] and back["prev_cursor"] is None

    by_offset = check(client.get("/api/v1/customer", params={"sort": "name", "limit": 2, "offset": 5}), 200)
    assert [r["name"] for r in by_offset["data"]] == names[5:] and by_offset["prev_cursor"]
    big = check(client.get("/api/v1/customer", params={"limit": 100000}), 200)  # capped, not refused
    assert len(big["data"]) == 7


@pytest.mark.parametrize("params", [
    {"filter": "nope eq 1"},  # unknown field
    {"filter": "name gte b"},  # operator the type does not have
    {"filter": "annual_revenue gte lots"},  # value of the wrong type
    {"filter": "annual_revenue"},  # not FIELD OP VALUE
    {"sort": "nope"},
    {"cursor": "garbage!"},
    {"before": "W10"},  # valid base64 JSON, wrong number of sort values
    {"view": "nope"},
    {"limit": "many"},
    {"offset": "-1"},
    {"offset": str(2**70)},
])
def test_bad_list_queries_get_400(api: Callable[[str], TestClient], params: dict[str, str]) -> None:
    body = check(api("sales1").get("/api/v1/customer", params=params), 400)
    assert body["error"] in ("BadQuery", "BadRequest")


def test_messages_follow_lang_then_accept_language(api: Callable[[str], TestClient]) -> None:
    client = api("sales1")
    assert "不能按" in check(client.get("/api/v1/customer?sort=nope&lang=zh"), 400)["message"]
    assert "不能按" in check(client.get("/api/v1/customer?sort=nope",
                                        headers={"Accept-Language": "zh-CN,zh;q=0.9"}), 400)["message"]
    assert "Cannot sort" in check(client.get("/api/v1/customer?sort=nope&lang=en",
                                             headers={"Accept-Language": "zh-CN"}), 400)["message"]
    body = check(client.post("/api/v1/customer?lang=zh", json={}), 422)
    assert body["fields"]["name"] == ["此项为必填项。"]


# -- not found and forbidden ----------------------------------------------------------------------

def test_unknown_or_invisible_things_are_404(api: Callable[[str], TestClient], crm: Runtime,
                                             people: dict[str, User]) -> None:
    client = api("sales1")
    theirs = customer(crm, people["sales2"], name="Secret")
    for method, path in [("GET", "/api/v1/nope"), ("POST", "/api/v1/nope"), ("GET", "/api/v1/nope/1"),
                         ("GET", "/api/v1/customer/999999"), ("GET", "/api/v1/customer/abc"),
                         ("GET", f"/api/v1/customer/{theirs['id']}"), ("PATCH", f"/api/v1/customer/{theirs['id']}"),
                         ("DELETE", f"/api/v1/customer/{theirs['id']}"), ("DELETE", "/api/v1/customer/999999")]:
        body = check(client.request(method, path, json={"version": 1} if method in ("POST", "PATCH") else None), 404)
        assert body["error"] == "NotFound", (method, path)
        assert "Secret" not in str(body)
    # An entity the caller may not read at all is as unknown as one that does not exist.
    check(api("service1").get("/api/v1/opportunity"), 404)
    # A link to a record the caller cannot see is refused like a missing one.
    body = check(client.post("/api/v1/contact", json={"name": "Spy", "customer": theirs["id"]}), 422)
    assert "customer" in body["fields"]


def test_writes_outside_the_callers_permissions_are_403(api: Callable[[str], TestClient], crm: Runtime,
                                                        people: dict[str, User]) -> None:
    check(api("service1").post("/api/v1/customer", json={"name": "Not mine to create"}), 403)
    mine = customer(crm, people["sales1"])
    body = check(api("service1").delete(f"/api/v1/customer/{mine['id']}"), 403)  # service agents delete no customers
    assert body["error"] == "Forbidden"
    check(api("service1").patch(f"/api/v1/customer/{mine['id']}", json={"name": "x", "version": 1}), 403)
    # Giving the record to someone else needs the assign permission, which salespeople lack.
    check(api("sales1").patch(f"/api/v1/customer/{mine['id']}", json={"owner": people["sales2"].id, "version": 1}), 403)
    assert check(api("sales1").get(f"/api/v1/customer/{mine['id']}"), 200)["version"] == 1


def test_unexpected_failures_are_500_without_details(api: Callable[[str], TestClient],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError('SELECT secret FROM customer -- File "/srv/engine/runtime/service.py"')

    monkeypatch.setattr(RecordService, "query", broken)
    body = check(api("sales1").get("/api/v1/customer"), 500)
    assert body["error"] == "InternalError" and "secret" not in str(body)


def test_unknown_methods_are_405_in_json(api: Callable[[str], TestClient]) -> None:
    body = check(api("sales1").put("/api/v1/customer/1", json={}), 405)
    assert body["error"] == "MethodNotAllowed"


# -- create, update, delete -----------------------------------------------------------------------

def test_create_returns_201_with_location(api: Callable[[str], TestClient], people: dict[str, User]) -> None:
    client = api("sales1")
    response = client.post("/api/v1/customer", json={"name": "Acme", "industry": "retail", "_titles": {}})
    created = check(response, 201)
    assert response.headers["location"] == f"/api/v1/customer/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["code"].startswith("KH") and created["version"] == 1
    assert created["customer_type"] == "potential"  # the field's default
    assert created["owner"] == {"id": people["sales1"].id, "title": "Sales1"}
    assert check(client.get(response.headers["location"]), 200) == created


def test_validation_errors_are_422_per_field(api: Callable[[str], TestClient]) -> None:
    client = api("sales1")
    body = check(client.post("/api/v1/customer", json={"industry": "retail"}), 422)
    assert body["error"] == "ValidationFailed" and list(body["fields"]) == ["name"]
    body = check(client.post("/api/v1/customer", json={"name": "A", "email": "not-an-email", "annual_revenue": "lots",
                                                       "industry": "mining", "hot": "maybe", "nope": 1,
                                                       "code": "KH1", "id": 5}), 422)
    assert set(body["fields"]) == {"email", "annual_revenue", "industry", "hot", "nope", "code", "id"}
    assert body["fields"]["nope"] == ["customer has no field 'nope'."]
    body = check(client.post("/api/v1/opportunity", json={"name": "Deal", "customer": 999999, "stage": "dreaming"}), 422)
    assert set(body["fields"]) == {"customer", "stage"}
    check(client.post("/api/v1/customer", json={"name": "x" * 201}), 422)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'"a string"', b"[1, 2]", b"42", b"null"])
def test_bodies_that_are_not_json_objects_are_400(api: Callable[[str], TestClient], crm: Runtime,
                                                  people: dict[str, User], content: bytes) -> None:
    client = api("sales1")
    mine = customer(crm, people["sales1"])
    headers = {"Content-Type": "application/json"}
    body = check(client.post("/api/v1/customer", content=content, headers=headers), 400)
    assert body["error"] == "BadRequest"
    check(client.patch(f"/api/v1/customer/{mine['id']}", content=content, headers=headers), 400)


def test_update_needs_the_current_version(api: Callable[[str], TestClient], crm: Runtime,
                                          people: dict[str, User]) -> None:
    client = api("sales1")
    mine = customer(crm, people["sales1"], city="Hangzhou")
    url = f"/api/v1/customer/{mine['id']}"
    response = client.patch(url, json={"name": "Acme Ltd", "version": 1})
    changed = check(response, 200)
    assert changed["name"] == "Acme Ltd" and changed["version"] == 2 and changed["city"] == "Hangzhou"
    assert response.headers["etag"] == '"2"'

    body = check(client.patch(url, json={"name": "Stale", "version": 1}), 409)
    assert body["error"] == "Conflict"
    body = check(client.patch(url, json={"name": "No version"}), 422)
    assert "version" in body["fields"]
    check(client.patch(url, json={"name": "Bad version", "version": "two"}), 422)
    check(client.patch(url, json={"name": "Bad version", "version": True}), 422)

    # If-Match carries the version as well (the ETag of the last read).
    etag = client.get(url).headers["etag"]
    changed = check(client.patch(url, json={"city": None}, headers={"If-Match": etag}), 200)
    assert changed["city"] is None and changed["version"] == 3
    check(client.patch(url, json={"city": "Ningbo"}, headers={"If-Match": '"2"'}), 409)
    check(client.patch(url, json={"city": "Ningbo", "version": 3}, headers={"If-Match": '"2"'}), 400)
    body = check(client.patch(url, json={"annual_revenue": "lots", "version": 3}), 422)
    assert list(body["fields"]) == ["annual_revenue"]
    check(client.patch(url, json={"code": "KH1", "version": 3}), 422)  # derived fields are never set


def test_delete_moves_to_the_recycle_bin(api: Callable[[str], TestClient], crm: Runtime,
                                         people: dict[str, User]) -> None:
    client = api("admin")
    acme = customer(crm, people["admin"])
    deal = crm.records(people["admin"].actor()).create("opportunity", {"name": "Deal", "customer": acme["id"]})

    body = check(client.delete(f"/api/v1/customer/{acme['id']}"), 422)  # an opportunity restricts it
    assert body["fields"][""] and "Opportunity" in body["fields"][""][0]

    deleted = check(client.delete(f"/api/v1/opportunity/{deal['id']}"), 200)
    assert deleted["deleted_at"] and deleted["customer"] == {"id": acme["id"], "title": "Acme"}
    check(client.get(f"/api/v1/opportunity/{deal['id']}"), 404)
    check(client.delete(f"/api/v1/opportunity/{deal['id']}"), 404)
    check(client.patch(f"/api/v1/opportunity/{deal['id']}", json={"name": "x", "version": deleted["version"]}), 404)
    assert check(client.get("/api/v1/opportunity"), 200)["total"] == 0
    check(client.delete(f"/api/v1/customer/{acme['id']}"), 200)
