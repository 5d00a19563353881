"""The standard CRM pack's behaviours over HTTP: the generated screens (action buttons, input
forms, views, home cards) and the JSON API (`POST /api/v1/{entity}/{id}/actions/{key}`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from starlette.testclient import TestClient

from tests.packs.conftest import CRM, form_token

Web = Callable[[str], TestClient]
Api = Callable[[str], Callable[..., httpx.Response]]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text[:2000]
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else response


# -- 1. mnemonic ------------------------------------------------------------------------------------

def test_mnemonic_over_the_api_and_the_list_search(crm: CRM, web: Web, api: Api) -> None:
    call = api("sales1")
    created = ok(call("POST", "/api/v1/customer", {"name": "杭州恒通机械有限公司"}), 201)
    assert created["mnemonic"] == "HZHTJXYXGS"
    found = ok(call("GET", "/api/v1/customer?q=HZHT"))
    assert [r["id"] for r in found["data"]] == [created["id"]]
    page = web("sales1").get("/app/customer?q=hzht")
    assert page.status_code == 200 and "杭州恒通机械有限公司" in page.text
    refused = call("PATCH", f"/api/v1/customer/{created['id']}", {"mnemonic": "X", "version": created["version"]})
    assert refused.status_code == 422


# -- 2. follow-ups --------------------------------------------------------------------------------------

def test_follow_up_form_updates_the_customer(crm: CRM, web: Web, api: Api) -> None:
    customer = crm.customer("宁波永盛塑料", "sales1")
    client = web("sales1")
    token = form_token(client)
    saved = client.post("/app/follow_up/new", data={
        "_csrf": token, "customer": str(customer["id"]), "subject": "上门拜访", "followed_up_at": "2024-03-01 10:00",
        "maturity": "needs_confirmed", "next_follow_up_at": "2024-03-08 10:00"})
    assert saved.status_code == 303, saved.text[:2000]
    body = ok(api("sales1")("GET", f"/api/v1/customer/{customer['id']}"))
    assert body["maturity"] == "needs_confirmed"
    assert body["last_follow_up_at"] == "2024-03-01T10:00:00" and body["next_follow_up_at"] == "2024-03-08T10:00:00"


# -- 3. lead conversion ---------------------------------------------------------------------------------

def test_convert_button_form_and_api(crm: CRM, web: Web, api: Api) -> None:
    lead = crm.system.create("lead", {"company": "合肥中科新材料", "contact_name": "何静", "status": "qualified",
                                      "owner": crm.id("sales1")})
    client = web("sales1")
    detail = client.get(f"/app/lead/{lead['id']}").text
    assert 'data-test="action-convert"' in detail
    form = client.get(f"/app/lead/{lead['id']}/action/convert")
    assert form.status_code == 200 and 'name="create_opportunity"' in form.text and 'name="amount"' in form.text
    done = client.post(f"/app/lead/{lead['id']}/action/convert",
                       data={"_csrf": form_token(client), "_go": "1", "create_opportunity": "on", "amount": "5000"})
    assert done.status_code == 303 and done.headers["location"].startswith("/app/customer/")
    assert "Lead converted" in client.get(done.headers["location"]).text
    assert 'data-test="action-convert"' not in client.get(f"/app/lead/{lead['id']}").text
    # over the API: a second conversion is refused with a clear answer
    again = api("sales1")("POST", f"/api/v1/lead/{lead['id']}/actions/convert", {})
    assert again.status_code == 422 and "does not apply" in again.json()["message"]
    other = crm.system.create("lead", {"company": "西安天成", "owner": crm.id("sales1")})
    body = ok(api("sales1")("POST", f"/api/v1/lead/{other['id']}/actions/convert", {"create_opportunity": False}))
    assert body["message"] == "Lead converted: customer 西安天成." and body["open"]["url"].startswith("/api/v1/customer/")
    assert api("sales2")("POST", f"/api/v1/lead/{other['id']}/actions/convert", {}).status_code == 404
