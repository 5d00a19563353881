"""The standard CRM pack's behaviours over HTTP: the generated screens (action buttons, input
forms, views, home cards) and the JSON API (`POST /api/v1/{entity}/{id}/actions/{key}`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
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


# -- 4. the customer pool -------------------------------------------------------------------------------

def test_pool_buttons_bulk_claim_and_api(crm: CRM, web: Web, api: Api) -> None:
    mine = crm.customer("南京汇通物流", "sales1")
    client = web("sales1")
    detail = client.get(f"/app/customer/{mine['id']}").text
    assert 'data-test="action-to_pool"' in detail and 'data-test="action-claim"' not in detail
    assert 'data-test="action-assign_from_pool"' not in detail  # salespeople do not assign
    form = client.get(f"/app/customer/{mine['id']}/action/to_pool")
    assert 'name="reason"' in form.text and "Release this customer to the pool?" in form.text
    token = form_token(client)
    done = client.post(f"/app/customer/{mine['id']}/action/to_pool",
                       data={"_csrf": token, "_go": "1", "reason": "no_intent"})
    assert done.status_code == 303 and crm.get("customer", mine["id"])["in_pool"] is True
    pool = web("sales2").get("/app/customer?view=pool").text
    assert "南京汇通物流" in pool
    # bulk claim from the list
    others = [crm.customer(f"公海{i}", None)["id"] for i in range(2)]
    for other in others:
        crm.system.run_action("customer", other, "to_pool", {})
    sales2 = web("sales2")
    bulk = sales2.post("/app/customer/bulk", data={"_csrf": form_token(sales2, "/app/customer"), "action": "act:claim",
                                                   "ids": [str(i) for i in others]})
    assert bulk.status_code == 303
    assert [crm.get("customer", i)["owner"] for i in others] == [crm.id("sales2")] * 2
    # the API: the limit is named in the refusal; marketing may not claim
    crm.runtime.set_setting("max_customers_per_salesperson", 2)
    refused = api("sales2")("POST", f"/api/v1/customer/{mine['id']}/actions/claim", {})
    assert refused.status_code == 422 and "the limit is 2" in refused.json()["message"]
    assert api("marketing1")("POST", f"/api/v1/customer/{mine['id']}/actions/claim", {}).status_code == 403
    body = ok(api("manager")("POST", f"/api/v1/customer/{mine['id']}/actions/assign_from_pool",
                             {"user": crm.id("east1")}))
    assert body["message"] == "Customer 南京汇通物流 has been assigned to East1."
    released = ok(api("east1")("POST", f"/api/v1/customer/{mine['id']}/actions/to_pool", {"reason": "released"}))
    assert released["message"] == "Customer 南京汇通物流 has been released to the pool."


# -- 5. duplicate check -----------------------------------------------------------------------------------

def test_duplicate_warning_and_refusal_on_screens_and_api(crm: CRM, web: Web, api: Api) -> None:
    crm.customer("深圳鼎盛电子有限公司", "sales2")
    client = web("sales1")
    token = form_token(client)
    saved = client.post("/app/customer/new", data={"_csrf": token, "name": "深圳鼎盛电子股份有限公司"})
    assert saved.status_code == 303
    assert 'A customer named "深圳鼎盛电子有限公司" already exists' in unescape(client.get(saved.headers["location"]).text)
    answer = api("sales1")("POST", "/api/v1/customer", {"name": "深圳 鼎盛电子"})
    assert answer.status_code == 201 and "already exists" in answer.headers["X-CRM-Warnings"]
    crm.runtime.set_setting("duplicate_name_policy", "refuse")
    refused = client.post("/app/customer/new", data={"_csrf": token, "name": "深圳鼎盛电子（集团）"})
    assert refused.status_code == 422 and "duplicate customer names are not allowed" in refused.text
    refused = api("sales1")("POST", "/api/v1/customer", {"name": "深圳鼎盛电子集团"})
    assert refused.status_code == 422 and "name" in refused.json()["fields"]


# -- 6. merge ---------------------------------------------------------------------------------------------

def test_merge_form_and_api(crm: CRM, web: Web, api: Api) -> None:
    survivor = crm.customer("青岛金桥机械有限公司", "sales1")
    duplicate = crm.customer("青岛金桥机械", "sales1", phone="0532-8888 1234")
    contact = crm.system.create("contact", {"customer": duplicate["id"], "name": "孙丽", "owner": crm.id("sales1")})
    client = web("sales1")
    form = client.get(f"/app/customer/{survivor['id']}/action/merge")
    assert form.status_code == 200 and 'name="duplicate"' in form.text
    done = client.post(f"/app/customer/{survivor['id']}/action/merge",
                       data={"_csrf": form_token(client), "_go": "1", "duplicate": str(duplicate["id"])})
    assert done.status_code == 303
    assert crm.get("contact", contact["id"])["customer"] == survivor["id"]
    assert f'data-test="restore-{duplicate["id"]}"' in web("manager").get("/app/customer/trash").text
    again = crm.customer("青岛金桥", "sales1")
    assert api("marketing1")("POST", f"/api/v1/customer/{survivor['id']}/actions/merge",
                             {"duplicate": again["id"]}).status_code == 403
    body = ok(api("sales1")("POST", f"/api/v1/customer/{survivor['id']}/actions/merge", {"duplicate": again["id"]}))
    assert body["message"].startswith("青岛金桥 was merged into 青岛金桥机械有限公司")
    missing = api("sales1")("POST", f"/api/v1/customer/{survivor['id']}/actions/merge", {})
    assert missing.status_code == 422 and "duplicate" in missing.json()["fields"]


# -- 7. lists, birthdays and reminders -------------------------------------------------------------------

def test_home_cards_views_and_highlighted_hot_customers(crm: CRM, web: Web, api: Api) -> None:
    today = crm.runtime.now().date()
    mine = crm.customer("常州凯达电子", "sales1", hot=True)
    crm.system.create("contact", {"customer": mine["id"], "name": "生日的王总", "birthday": today.replace(year=1980),
                                  "owner": crm.id("sales1")})
    shared = crm.customer("天津正源化工", "sales2")
    crm.as_("sales2").share("customer", shared["id"], crm.id("sales1"), "read")
    client = web("sales1")
    home = client.get("/").text
    assert "My contacts&#39; birthdays this week" in home or "My contacts' birthdays this week" in home
    assert "生日的王总" in home
    assert "Customers newly assigned to me" in home and "常州凯达电子" in home
    listed = client.get("/app/customer?view=shared").text
    assert "天津正源化工" in listed and "常州凯达电子" not in listed
    assert 'class="highlight"' in client.get("/app/customer").text  # hot customers stand out
    crm.customer("east1 的客户", "east1")
    team = ok(api("manager")("GET", "/api/v1/customer?view=team&sort=name"))
    assert [r["name"] for r in team["data"]] == ["east1 的客户", "常州凯达电子"]  # not sales2's


# -- 8. quote approval and orders ------------------------------------------------------------------------

def test_quote_approval_buttons_and_order_over_http(crm: CRM, web: Web, api: Api) -> None:
    customer = crm.customer("厦门蓝海贸易", "sales1")
    quote = crm.as_("sales1").create("quote", {"customer": customer["id"], "subject": "传感器"})
    product = crm.system.create("product", {"code": "S-1", "name": "传感器", "standard_price": "300"})
    crm.as_("sales1").create("quote_line", {"quote": quote["id"], "product": product["id"], "quantity": 3,
                                            "unit_price": "300"})
    sales1 = web("sales1")
    assert 'data-test="action-submit"' in sales1.get(f"/app/quote/{quote['id']}").text
    token = form_token(sales1)
    assert sales1.post(f"/app/quote/{quote['id']}/action/submit", data={"_csrf": token, "_go": "1"}).status_code == 303
    page = sales1.get(f"/app/quote/{quote['id']}").text
    assert 'data-test="action-approve"' not in page and 'data-test="action-submit"' not in page
    manager = web("manager")
    page = manager.get(f"/app/quote/{quote['id']}").text
    assert 'data-test="action-approve"' in page and 'data-test="action-reject"' in page
    form = manager.get(f"/app/quote/{quote['id']}/action/reject")
    assert 'name="comment"' in form.text
    approved = ok(api("manager")("POST", f"/api/v1/quote/{quote['id']}/actions/approve", {"comment": "可以"}))
    assert approved["message"].endswith("has been approved.")
    body = ok(api("sales1")("GET", f"/api/v1/quote/{quote['id']}"))
    assert body["status"] == "approved" and body["approval_comment"] == "可以"
    assert body["approved_by"]["id"] == crm.id("manager")
    assert api("sales1")("POST", f"/api/v1/quote/{quote['id']}/actions/approve", {}).status_code == 422
    ok(api("sales1")("POST", f"/api/v1/quote/{quote['id']}/actions/send", {"valid_until": "2031-01-31"}))
    ok(api("sales1")("POST", f"/api/v1/quote/{quote['id']}/actions/accept", {}))
    made = sales1.post(f"/app/quote/{quote['id']}/action/create_order", data={"_csrf": token, "_go": "1"})
    assert made.status_code == 303 and made.headers["location"].startswith("/app/order/")
    assert "900.00" in sales1.get(made.headers["location"]).text
    again = api("sales1")("POST", f"/api/v1/quote/{quote['id']}/actions/create_order", {})
    assert again.status_code == 422


# -- 9. share, transfer and the recycle bin ---------------------------------------------------------------

def test_sharing_tab_bulk_transfer_and_recycle_bin_over_http(crm: CRM, web: Web, api: Api) -> None:
    customers = [crm.as_("sales1").create("customer", {"name": f"批量转移{i}"})["id"] for i in range(2)]
    contact = crm.as_("sales1").create("contact", {"customer": customers[0], "name": "跟着走的联系人"})
    sales1 = web("sales1")
    token = form_token(sales1)
    shared = sales1.post(f"/app/customer/{customers[0]}/share",
                         data={"_csrf": token, "user": str(crm.id("sales2")), "access": "edit"})
    assert shared.status_code == 303
    assert ok(api("sales2")("GET", f"/api/v1/customer/{customers[0]}"))["name"] == "批量转移0"
    assert "批量转移0" in web("sales2").get("/app/customer?view=shared").text
    manager = web("manager")
    moved = manager.post("/app/customer/bulk", data={"_csrf": form_token(manager, "/app/customer"), "action": "owner",
                                                     "user": str(crm.id("east1")), "ids": [str(i) for i in customers]})
    assert moved.status_code == 303
    assert [crm.get("customer", i)["owner"] for i in customers] == [crm.id("east1")] * 2
    # bulk share and unshare: the manager lends both customers to marketing, read only, then takes them back
    listed = manager.get("/app/customer").text
    assert '<option value="share">' in listed and 'data-test="bulk-access"' in listed
    lent = manager.post("/app/customer/bulk", data={"_csrf": form_token(manager, "/app/customer"), "action": "share",
                                                    "user": str(crm.id("sales2")), "access": "read",
                                                    "ids": [str(i) for i in customers]})
    assert lent.status_code == 303
    assert [s["access"] for i in customers for s in crm.system.shares("customer", i)
            if s["user_id"] == crm.id("sales2")] == ["read", "read"]
    assert ok(api("sales2")("GET", f"/api/v1/customer/{customers[1]}"))["name"] == "批量转移1"
    taken = manager.post("/app/customer/bulk", data={"_csrf": form_token(manager, "/app/customer"), "action": "unshare",
                                                     "user": str(crm.id("sales2")), "ids": [str(i) for i in customers]})
    assert taken.status_code == 303
    assert api("sales2")("GET", f"/api/v1/customer/{customers[1]}").status_code == 404
    assert 'value="share"' not in web("marketing1").get("/app/customer").text  # marketing may not share customers
    assert crm.get("contact", contact["id"])["owner"] == crm.id("east1")
    assert api("sales1")("GET", f"/api/v1/customer/{customers[1]}").status_code == 404
    # the recycle bin: a salesperson deletes, the manager restores
    east1 = api("east1")
    ok(east1("DELETE", f"/api/v1/customer/{customers[1]}"))
    trash = web("east1").get("/app/customer/trash").text
    assert f'data-test="restore-{customers[1]}"' not in trash
    page = manager.get("/app/customer/trash").text
    assert f'data-test="restore-{customers[1]}"' in page
    restored = manager.post(f"/app/customer/{customers[1]}/restore", data={"_csrf": form_token(manager)})
    assert restored.status_code == 303 and crm.get("customer", customers[1])["deleted_at"] is None


def test_a_new_form_starts_with_the_fields_defaults(crm: CRM, web: Web) -> None:
    client = web("sales1")
    form = client.get("/app/activity/new").text
    assert re.search(r'<option value="planned"[^>]*selected', form), "status starts as planned"
    planned = re.search(r'name="planned_start"[^>]*value="([^"]*)"', form) or \
        re.search(r'value="([^"]*)"[^>]*name="planned_start"', form)
    assert planned and planned.group(1).startswith(crm.runtime.now().date().isoformat())
    assert re.search(r'name="duration_minutes"[^>]*value="60"', form) or 'value="60"' in form
    # submitting the untouched form with only the subject works: required fields had their defaults
    token = re.search(r'name="_csrf" value="([^"]+)"', form)
    assert token
    fields = dict(re.findall(r'<input[^>]*name="(planned_start|duration_minutes)"[^>]*value="([^"]*)"', form))
    created = client.post("/app/activity/new", data={"_csrf": token.group(1), "subject": "回访", "status": "planned",
                                                      "activity_type": "call", **fields})
    assert created.status_code == 303, created.text[:3000]


def test_a_record_titled_by_a_user_shows_the_users_name(crm: CRM, web: Web) -> None:
    customer = crm.customer("标题测试公司", "sales1")
    deal = crm.as_("sales1").create("opportunity", {"name": "标题商机", "customer": customer["id"]})
    member = crm.as_("sales1").create("opportunity_member", {"opportunity": deal["id"], "user": crm.id("sales2")})
    page = web("sales1").get(f"/app/opportunity_member/{member['id']}").text
    assert "<h1>Sales2" in page.replace("\n", "") or re.search(r"<h1[^>]*>\s*Sales2", page), page[:2000]
