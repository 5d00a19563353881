"""Signing in and out, sessions, CSRF, throttling, headers, language and the user's settings,
over HTTP against the real application and database."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from engine.runtime.service import Runtime
from engine.runtime.users import User
from engine.ui import sessions
from engine.ui.tokens import list_tokens
from tests.ui.conftest import PASSWORDS, csrf_of, login

Client = Callable[..., TestClient]


def test_every_page_needs_a_signed_in_user(client_for: Client) -> None:
    anon = client_for()
    for path in ("/", "/app/customer", "/app/customer/1", "/app/customer/new", "/app/opportunity/board",
                 "/app/customer/trash", "/search?q=x", "/settings", "/app/customer/export.csv"):
        response = anon.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
    response = anon.post("/app/customer/new", data={"name": "x"})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert anon.get("/static/crm.css").status_code == 200  # static files are public
    assert anon.get("/login").status_code == 200


def test_sign_in_wrong_password_then_right(client_for: Client) -> None:
    client = client_for()
    token = csrf_of(client)
    bad = client.post("/login", data={"username": "sales1", "password": "nope-nope", "_csrf": token})
    assert bad.status_code == 401 and "The user name or password is wrong." in bad.text
    assert 'value="sales1"' in bad.text  # the user name is kept
    good = client.post("/login", data={"username": "sales1", "password": PASSWORDS["sales1"], "_csrf": token,
                                       "next": "/app/customer"})
    assert good.status_code == 303 and good.headers["location"] == "/app/customer"
    assert client.get("/app/customer").status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_no_open_redirect_after_sign_in(client_for: Client, target: str) -> None:
    client = client_for()
    response = client.post("/login", data={"username": "sales1", "password": PASSWORDS["sales1"],
                                           "_csrf": csrf_of(client), "next": target})
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_sign_in_form_needs_its_csrf_token(client_for: Client) -> None:
    client = client_for()
    client.get("/login")
    response = client.post("/login", data={"username": "sales1", "password": PASSWORDS["sales1"]})
    assert response.status_code == 403
    assert "expired" in response.text and client.get("/").status_code == 303


def test_failed_sign_ins_lock_the_account(client_for: Client, crm: Runtime) -> None:
    client = client_for()
    token = csrf_of(client)
    for _ in range(sessions.ACCOUNT_FAILURES):
        assert client.post("/login", data={"username": "sales2", "password": "wrong-wrong", "_csrf": token}).status_code == 401
    locked = client.post("/login", data={"username": "sales2", "password": PASSWORDS["sales2"], "_csrf": token})
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    # another account from another client is not affected by sales2's lock
    other = client_for()
    login(other, "sales1", PASSWORDS["sales1"])


def test_sign_out_ends_the_session_on_the_server(client_for: Client) -> None:
    client = client_for("sales1")
    stolen = dict(client.cookies)
    assert client.get("/").status_code == 200
    page = client.get("/").text
    token = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post("/logout", data={"_csrf": token}).status_code == 303
    assert client.get("/").status_code == 303
    replay = client_for()
    replay.cookies.update(stolen)
    assert replay.get("/").status_code == 303  # the old cookie no longer signs anyone in


def test_state_changing_requests_need_the_csrf_token(client_for: Client, crm: Runtime) -> None:
    client = client_for("sales1")
    response = client.post("/app/customer/new", data={"name": "No token Ltd"})
    assert response.status_code == 403
    assert crm.records().query("customer").total == 0
    response = client.post("/app/customer/new", data={"name": "Wrong token Ltd", "_csrf": "forged"})
    assert response.status_code == 403 and crm.records().query("customer").total == 0


def test_security_headers_and_request_id(client_for: Client) -> None:
    response = client_for().get("/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert re.fullmatch(r"[0-9a-f]{12}", response.headers["x-request-id"])
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_language_switch_is_remembered(client_for: Client, crm: Runtime, people: dict[str, User]) -> None:
    client = client_for("sales1")
    assert "Customer" in client.get("/").text
    response = client.post("/language", data={"_csrf": csrf_of(client, "/"), "language": "zh", "next": "/app/customer"})
    assert response.status_code == 303 and response.headers["location"] == "/app/customer"
    page = client.get("/app/customer").text
    assert "客户" in page and "新建" in page and 'lang="zh-CN"' in page
    other = client_for("sales1")  # the choice is the user's, not the browser's
    assert 'lang="zh-CN"' in other.get("/").text


def test_friendly_error_pages(client_for: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    client = client_for("sales1")
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Not found" in missing.text
    unknown = client.get("/app/no_such_entity")
    assert unknown.status_code == 404 and "no_such_entity" in unknown.text

    from engine.ui.views import records

    def boom(*args: object) -> str:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(records, "title_of", boom)
    customer = client.post("/app/customer/new", data={"name": "Boom Ltd", "_csrf": csrf_of(client, "/")})
    failed = client.get(customer.headers["location"]) if customer.status_code == 303 else customer
    assert failed.status_code == 500
    assert "Something went wrong" in failed.text and "secret internals" not in failed.text
    assert "Traceback" not in failed.text
    assert failed.headers["x-request-id"] in failed.text  # the page quotes the request id of the log line


def test_change_password_ends_other_sessions(client_for: Client) -> None:
    client, elsewhere = client_for("sales1"), client_for("sales1")
    token = csrf_of(client, "/settings")
    wrong = client.post("/settings/password", data={"_csrf": token, "current": "nope", "new": "a-new-secret-1",
                                                    "again": "a-new-secret-1"})
    assert wrong.status_code == 422 and "current password is wrong" in wrong.text
    short = client.post("/settings/password", data={"_csrf": token, "current": PASSWORDS["sales1"], "new": "short",
                                                    "again": "short"})
    assert short.status_code == 422 and "at least 8" in short.text
    done = client.post("/settings/password", data={"_csrf": token, "current": PASSWORDS["sales1"],
                                                   "new": "a-new-secret-1", "again": "a-new-secret-1"})
    assert done.status_code == 303
    assert client.get("/settings").status_code == 200  # this session stays
    assert elsewhere.get("/settings").status_code == 303  # the other one is signed out
    fresh = client_for()
    login(fresh, "sales1", "a-new-secret-1")


def test_api_tokens_are_shown_once_and_revocable(client_for: Client, crm: Runtime, people: dict[str, User]) -> None:
    client = client_for("sales1")
    token = csrf_of(client, "/settings")
    page = client.post("/settings/tokens", data={"_csrf": token, "name": "Excel sync"})
    assert page.status_code == 200
    secret = re.search(r"<code>(crm_[A-Za-z0-9_\-]+)</code>", page.text).group(1)  # type: ignore[union-attr]
    listed = client.get("/settings").text
    assert "Excel sync" in listed and secret not in listed
    stored = list_tokens(crm, people["sales1"].id)
    assert len(stored) == 1 and stored[0]["prefix"] == secret[:12]
    assert client.post(f"/settings/tokens/{stored[0]['id']}/revoke", data={"_csrf": token}).status_code == 303
    assert list_tokens(crm, people["sales1"].id) == []


def test_the_audit_log_records_security_events_for_admins(client_for: Client, crm: Runtime,
                                                          people: dict[str, User]) -> None:
    crm.records().create("customer", {"name": "审计客户"})
    stranger = client_for()
    stranger.post("/login", data={"username": "sales1", "password": "wrong-wrong", "_csrf": csrf_of(stranger)})
    admin = client_for("admin")
    assert admin.get("/app/customer/export.csv").status_code == 200
    record = crm.records().create("customer", {"name": "要删除的"})
    token = csrf_of(admin, "/")
    admin.post(f"/app/customer/{record['id']}/delete", data={"_csrf": token})
    admin.post(f"/app/customer/{record['id']}/purge", data={"_csrf": token})
    page = admin.get("/admin/audit").text
    for text in ("Sign-in failed", "Signed in", "Exported", "rows:</span> 1", "Deleted for good", "要删除的"):
        assert text in page, text
    only = admin.get("/admin/audit?event=login_failed").text
    assert "Sign-in failed" in only and "Exported</td>" not in only
    assert client_for("sales1").get("/admin/audit").status_code == 403
