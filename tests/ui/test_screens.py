"""The generated screens over HTTP: list, filters, views, export, bulk actions, detail, tabs,
history, forms with validation and conflicts, stage moves, board and recycle bin."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.runtime.service import Runtime
from engine.runtime.users import User
from tests.ui.conftest import csrf_of

Client = Callable[..., TestClient]


@pytest.fixture
def data(crm: Runtime, people: dict[str, User]) -> dict[str, Any]:
    """Customers of sales1 and sales2, a contact and opportunities of sales1."""
    rec = crm.records()
    s1, s2 = people["sales1"].id, people["sales2"].id
    ids = rec.bulk_create("customer", [
        {"name": f"华信科技{i:02d}", "customer_type": "transacting" if i % 2 else "potential", "industry": "manufacturing",
         "hot": i % 3 == 0, "annual_revenue": str(1000 * i), "owner": s1} for i in range(30)])
    other = rec.create("customer", {"name": "北方重工", "owner": s2})
    contact = rec.create("contact", {"customer": ids[0], "name": "张伟", "owner": s1})
    opp = rec.create("opportunity", {"name": "ERP 项目", "customer": ids[0], "owner": s1})
    activity = rec.create("activity", {"activity_type": rec.registry.entity("activity").field("activity_type")
                                       .picklist.options[0].key,  # type: ignore[union-attr]
                                       "subject": "拜访华信", "planned_start": crm.now(), "owner": s1})
    return {"mine": ids, "other": other["id"], "contact": contact["id"], "opportunity": opp["id"],
            "activity": activity["id"]}


def rows_of(html: str, column: str = "Customer name") -> list[str]:
    """The text of one column in each row of the list table."""
    return [unescape(m) for m in re.findall(rf'<td data-label="{column}">(?:<a [^>]*>)?([^<]*)', html)]


def test_home_shows_todays_activities(client_for: Client, data: dict[str, Any]) -> None:
    page = client_for("sales1").get("/")
    assert page.status_code == 200
    assert "My activities today" in page.text and "拜访华信" in page.text
    assert 'href="/app/customer"' in page.text  # the menu, from the pack's groups


def test_list_shows_only_what_the_user_may_read(client_for: Client, data: dict[str, Any]) -> None:
    page = client_for("sales1").get("/app/customer?limit=100")
    assert page.status_code == 200
    names = rows_of(page.text)
    assert len(names) == 30 and "北方重工" not in names
    assert "北方重工" in rows_of(client_for("admin").get("/app/customer?limit=100").text)


def test_filter_bar_sort_and_search(client_for: Client, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    hot = rows_of(client.get("/app/customer?f.hot=true&limit=100").text)
    assert len(hot) == 10
    typed = rows_of(client.get("/app/customer?f.customer_type=transacting&sort=name&limit=100").text)
    assert typed == sorted(typed) and len(typed) == 15
    desc = rows_of(client.get("/app/customer?f.customer_type=transacting&sort=-name&limit=100").text)
    assert desc == list(reversed(typed))
    ranged = rows_of(client.get("/app/customer", params={"filter": "annual_revenue between 5000,7000"}).text)
    assert sorted(ranged) == ["华信科技05", "华信科技06", "华信科技07"]
    created = rows_of(client.get("/app/customer?f.created_at=today&limit=100").text)
    assert len(created) == 30
    assert rows_of(client.get("/app/customer?q=科技29").text) == ["华信科技29"]
    raw = rows_of(client.get("/app/customer", params={"filter": "annual_revenue gte 28000"}).text)
    assert sorted(raw) == ["华信科技28", "华信科技29"]
    # the column header links flip the sort
    page = client.get("/app/customer?sort=name").text
    assert 'href="/app/customer?sort=-name"' in page.replace("&amp;", "&")


def test_bad_list_requests_get_clear_errors(client_for: Client, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    bad = client.get("/app/customer", params={"filter": "nonsense eq 1"})
    assert bad.status_code == 400 and "nonsense" in unescape(bad.text)
    assert client.get("/app/customer?sort=no_such_field").status_code == 400
    assert client.get("/app/customer?cursor=garbage").status_code == 400
    assert client.get("/app/customer?view=no_such_view").status_code == 400
    assert client.get("/app/customer?f.created_at.from=lots").status_code == 400


def test_keyset_pages_forwards_and_back(client_for: Client, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    first = client.get("/app/customer?sort=name&limit=20")
    assert rows_of(first.text) == [f"华信科技{i:02d}" for i in range(20)]
    next_url = unescape(re.search(r'href="([^"]+)" data-test="next"', first.text).group(1))  # type: ignore[union-attr]
    second = client.get(next_url)
    assert rows_of(second.text) == [f"华信科技{i:02d}" for i in range(20, 30)]
    assert 'data-test="next"' not in second.text
    prev_url = unescape(re.search(r'href="([^"]+)" data-test="prev"', second.text).group(1))  # type: ignore[union-attr]
    assert rows_of(client.get(prev_url).text) == rows_of(first.text)


def test_named_and_saved_views(client_for: Client, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    assert len(rows_of(client.get("/app/customer?view=hot&limit=100").text)) == 10
    token = csrf_of(client, "/app/customer")
    saved = client.post("/app/customer/views", data={"_csrf": token, "name": "Big transacting",
                                                     "query": "f.customer_type=transacting&sort=-annual_revenue"
                                                              "&filter=annual_revenue gte 20000&columns=name,annual_revenue"})
    assert saved.status_code == 303
    location = saved.headers["location"]
    view = client.get(location)
    assert rows_of(view.text) == ["华信科技29", "华信科技27", "华信科技25", "华信科技23", "华信科技21"]
    assert "Big transacting" in view.text
    view_id = re.search(r"view=s(\d+)", location).group(1)  # type: ignore[union-attr]
    # a saved view is its owner's alone
    assert client_for("sales2").get(location).status_code == 400
    client.post(f"/app/customer/views/{view_id}/delete", data={"_csrf": token})
    assert client.get(location).status_code == 400


def test_export_csv_of_the_filtered_rows(client_for: Client, data: dict[str, Any]) -> None:
    assert client_for("sales1").get("/app/customer/export.csv").status_code == 403  # salespeople may not export
    response = client_for("admin").get("/app/customer/export.csv?f.hot=true&sort=name")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text = response.content.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:2] == ["Customer code", "Customer name"]
    assert [r[1] for r in table[1:]] == [f"华信科技{i:02d}" for i in range(0, 30, 3)]


def test_bulk_change_owner_and_delete(client_for: Client, crm: Runtime, people: dict[str, User],
                                      data: dict[str, Any]) -> None:
    admin = client_for("admin")
    token = csrf_of(admin, "/app/customer")
    chosen = [str(i) for i in data["mine"][10:13]]
    nobody = admin.post("/app/customer/bulk", data={"_csrf": token, "action": "owner", "user": "", "ids": chosen})
    assert nobody.status_code == 303 and "Choose the user first" in admin.get(nobody.headers["location"]).text
    assert all(crm.records().get("customer", i)["owner"] is not None for i in chosen)  # nobody lost an owner
    moved = admin.post("/app/customer/bulk", data={"_csrf": token, "action": "owner", "user": people["sales2"].id,
                                                   "ids": chosen})
    assert moved.status_code == 303
    assert {crm.records().get("customer", i)["owner"] for i in chosen} == {people["sales2"].id}
    gone = admin.post("/app/customer/bulk", data={"_csrf": token, "action": "delete", "ids": chosen[:2]})
    assert gone.status_code == 303
    assert crm.records().query("customer", None).total == 29
    listed = admin.get("/app/customer").text
    assert "2 record(s) done." in listed
    # a salesperson may not delete another's customers: the runtime refuses, the page says so
    sales = client_for("sales1")
    sales.post("/app/customer/bulk", data={"_csrf": csrf_of(sales, "/app/customer"), "action": "delete",
                                           "ids": [str(data["other"])]})
    assert crm.records().get("customer", data["other"])["deleted_at"] is None
    assert "failed" in sales.get("/app/customer").text


def test_detail_tabs_and_history(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    cid = data["mine"][0]
    page = client.get(f"/app/customer/{cid}")
    assert page.status_code == 200 and "华信科技00" in page.text
    assert re.search(r'data-test="tab-contact">Contacts? <span class="count">1</span>', page.text)
    tab = client.get(f"/app/customer/{cid}?tab=r0")
    assert "张伟" in tab.text and f"/app/contact/new?customer={cid}" in tab.text
    record = crm.records().get("customer", cid)
    crm.records().update("customer", cid, {"customer_type": "transacting"}, record["version"])
    history = client.get(f"/app/customer/{cid}?tab=history").text
    assert "Customer type" in history and "Potential" in history and "Transacting" in history
    assert client.get(f"/app/customer/{data['other']}").status_code == 404  # sales2's customer is not visible
    assert client.get("/app/customer/abc").status_code == 404


def test_create_with_validation_errors_then_fixed(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    assert client.get("/app/customer/new").status_code == 200
    token = csrf_of(client, "/app/customer/new")
    bad = client.post("/app/customer/new", data={"_csrf": token, "name": "", "email": "not-an-email",
                                                 "city": "苏州", "annual_revenue": "12x"})
    assert bad.status_code == 422
    text = unescape(bad.text)
    assert "This field is required." in text and "is not an email address" in text and "is not a number" in text
    assert 'value="苏州"' in text  # the user's input is kept
    good = client.post("/app/customer/new", data={"_csrf": token, "name": "苏州新材料", "email": "info@sz.example",
                                                  "city": "苏州", "annual_revenue": "1,234.5"})
    assert good.status_code == 303
    record = crm.records().get("customer", good.headers["location"].rsplit("/", 1)[1])
    assert record["name"] == "苏州新材料" and str(record["annual_revenue"]) == "1234.50"


def test_related_new_prefills_the_parent_and_returns(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    cid = data["mine"][1]
    back = f"/app/customer/{cid}?tab=r0"
    form = client.get(f"/app/contact/new?customer={cid}&back={back}")
    assert 'value="华信科技01"' in form.text
    saved = client.post("/app/contact/new", data={"_csrf": csrf_of(client, "/"), "customer": str(cid),
                                                  "customer__shown": "华信科技01", "customer__text": "华信科技01",
                                                  "name": "李娜", "back": back})
    assert saved.status_code == 303 and saved.headers["location"] == back
    assert "李娜" in client.get(back).text


def test_reference_typed_as_a_name_without_javascript(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    token = csrf_of(client, "/")
    one = client.post("/app/contact/new", data={"_csrf": token, "customer__text": "华信科技07", "name": "王芳"})
    assert one.status_code == 303
    contact = crm.records().get("contact", one.headers["location"].rsplit("/", 1)[1])
    assert contact["customer"] == data["mine"][7]
    many = client.post("/app/contact/new", data={"_csrf": token, "customer__text": "华信科技1", "name": "赵磊"})
    assert many.status_code == 422 and "Several records match" in unescape(many.text)
    assert 'data-test="pick-customer"' in many.text and "华信科技12" in many.text
    none = client.post("/app/contact/new", data={"_csrf": token, "customer__text": "北方重工", "name": "赵磊"})
    assert none.status_code == 422 and "No record matches" in unescape(none.text)  # sales2's customer stays hidden


def test_edit_and_stale_version_conflict(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    cid = data["mine"][2]
    form = client.get(f"/app/customer/{cid}/edit")
    version = re.search(r'name="_version" value="(\d+)"', form.text).group(1)  # type: ignore[union-attr]
    token = csrf_of(client, "/")
    crm.records().update("customer", cid, {"city": "杭州"}, int(version))  # someone else saves first
    stale = client.post(f"/app/customer/{cid}/edit", data={"_csrf": token, "_version": version, "name": "华信科技02",
                                                           "remarks": "my note"})
    assert stale.status_code == 409
    assert "Someone else changed this record" in stale.text and "my note" in stale.text
    fresh = re.search(r'name="_version" value="(\d+)"', stale.text).group(1)  # type: ignore[union-attr]
    saved = client.post(f"/app/customer/{cid}/edit", data={"_csrf": token, "_version": fresh, "name": "华信科技02",
                                                           "remarks": "my note"})
    assert saved.status_code == 303
    assert crm.records().get("customer", cid)["remarks"] == "my note"


def test_stage_moves_follow_the_pipeline(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    oid = data["opportunity"]
    page = client.get(f"/app/opportunity/{oid}")
    assert 'data-test="stage-path-stage"' in page.text and "Initial contact" in page.text
    token = csrf_of(client, "/")
    version = crm.records().get("opportunity", oid)["version"]
    refused = client.post(f"/app/opportunity/{oid}/stage", data={"_csrf": token, "field": "stage", "stage": "proposal",
                                                                  "version": version})
    assert refused.status_code == 303
    assert crm.records().get("opportunity", oid)["stage"] == "initial_contact"  # proposal requires an amount
    assert "Required at stage" in client.get(f"/app/opportunity/{oid}").text
    moved = client.post(f"/app/opportunity/{oid}/stage", data={"_csrf": token, "field": "stage",
                                                                "stage": "needs_analysis", "version": version})
    assert moved.status_code == 303 and crm.records().get("opportunity", oid)["stage"] == "needs_analysis"


def test_board_columns_with_counts_and_sums(client_for: Client, crm: Runtime, people: dict[str, User],
                                           data: dict[str, Any]) -> None:
    crm.records().bulk_create("opportunity", [
        {"name": f"Deal {i}", "customer": data["mine"][i], "stage": "proposal", "amount": "1000.50",
         "owner": people["sales1"].id} for i in range(3)])
    page = client_for("sales1").get("/app/opportunity/board")
    assert page.status_code == 200
    assert re.search(r'data-test="count-proposal">3<', page.text)
    assert re.search(r'data-test="count-initial_contact">1<', page.text)
    assert "3,001.50" in page.text  # the proposal column's sum of amounts
    assert client_for("sales1").get("/app/customer/board").status_code == 404  # customers have no pipeline


def test_recycle_bin_restore_and_purge(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    token = csrf_of(client, "/")
    aid = data["activity"]
    assert client.post(f"/app/activity/{aid}/delete", data={"_csrf": token}).status_code == 303
    assert client.get(f"/app/activity/{aid}").status_code == 404
    trash = client.get("/app/activity/trash")
    assert "拜访华信" in trash.text
    assert client.post(f"/app/activity/{aid}/restore", data={"_csrf": token}).status_code == 303
    assert client.get(f"/app/activity/{aid}").status_code == 200
    client.post(f"/app/activity/{aid}/delete", data={"_csrf": token})
    assert client.post(f"/app/activity/{aid}/purge", data={"_csrf": token}).status_code == 303
    assert 'data-test="restore-' not in client.get("/app/activity/trash").text


def test_search_and_lookup(client_for: Client, data: dict[str, Any]) -> None:
    client = client_for("sales1")
    page = client.get("/search?q=华信科技0").text
    assert "华信科技05" in page and "北方重工" not in page
    assert "张伟" in client.get("/search?q=张伟").text
    found = client.get("/app/customer/lookup?q=科技03").json()
    assert found == [{"id": data["mine"][3], "title": "华信科技03"}]
    assert client.get("/app/customer/lookup?q=北方").json() == []


def test_datetime_values_show_in_the_users_language(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    cid = data["mine"][4]
    record = crm.records().get("customer", cid)
    when = crm.now().replace(hour=9, minute=30) + timedelta(days=1)
    crm.records().update("customer", cid, {"next_follow_up_at": when, "annual_revenue": "1234567.8"}, record["version"])
    page = client_for("sales1").get(f"/app/customer/{cid}").text
    assert "CN¥1,234,567.80" in page or "¥1,234,567.80" in page


def test_uploads_download_as_attachments_never_as_pages(client_for: Client, crm: Runtime) -> None:
    client = client_for("admin")
    category = crm.registry.entity("knowledge_article").field("category").picklist.options[0].key  # type: ignore[union-attr]
    evil = b"<script>alert(document.cookie)</script>"
    saved = client.post("/app/knowledge_article/new", data={"_csrf": csrf_of(client, "/"), "title": "FAQ",
                                                            "category": category},
                        files={"attachment": ("faq.html", evil, "text/html")})
    assert saved.status_code == 303, saved.text[:300]
    detail = client.get(saved.headers["location"]).text
    link = re.search(r'href="(/app/knowledge_article/\d+/files/attachment)"', detail).group(1)  # type: ignore[union-attr]
    response = client.get(link)
    assert response.content == evil
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert client_for("sales1").get(link).status_code in (200, 404)  # readable per role, never a page
    assert client.get(link.replace("attachment", "title")).status_code == 404


def test_oversized_requests_are_refused(client_for: Client) -> None:
    client = client_for("admin")
    response = client.post("/app/customer/new", content=b"x" * (20 * 1024 * 1024 + 1),
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_history_shows_names_and_formatted_values(client_for: Client, crm: Runtime, people: dict[str, User],
                                                  data: dict[str, Any]) -> None:
    cid = data["mine"][8]
    record = crm.records().get("customer", cid)
    crm.records().update("customer", cid, {"annual_revenue": "120000", "owner": people["sales2"].id,
                                           "parent": data["mine"][9]}, record["version"])
    history = client_for("admin").get(f"/app/customer/{cid}?tab=history").text
    assert "120,000.00" in history and "Sales2" in history and "Sales1" in history
    assert "华信科技09" in history  # the parent's title, not its id


def test_sharing_tab_and_access_explanation(client_for: Client, crm: Runtime, people: dict[str, User],
                                            data: dict[str, Any]) -> None:
    owner, other = client_for("sales1"), client_for("sales2")
    cid = data["mine"][6]
    assert other.get(f"/app/customer/{cid}").status_code == 404
    page = owner.get(f"/app/customer/{cid}?tab=sharing")
    assert 'data-test="shares"' in page.text and "Not shared with anyone." in page.text
    token = csrf_of(owner, "/")
    owner.post(f"/app/customer/{cid}/share", data={"_csrf": token, "user": people["sales2"].id, "access": "read"})
    assert "Sales2" in owner.get(f"/app/customer/{cid}?tab=sharing").text
    assert other.get(f"/app/customer/{cid}").status_code == 200
    assert "Sales2 (Read)" in owner.get(f"/app/customer/{cid}?tab=history").text
    explained = client_for("admin").get(f"/app/customer/{cid}?tab=access&user={people['sales2'].id}").text
    assert 'data-test="decisions"' in explained and "it is shared with you (read)" in explained
    assert 'data-test="tab-access"' not in owner.get(f"/app/customer/{cid}").text  # admins only
    owner.post(f"/app/customer/{cid}/share", data={"_csrf": token, "user": people["sales2"].id, "revoke": "1"})
    assert other.get(f"/app/customer/{cid}").status_code == 404


def test_a_datetime_range_includes_its_last_day(client_for: Client, crm: Runtime, data: dict[str, Any]) -> None:
    today = crm.now().date().isoformat()
    created = rows_of(client_for("sales1").get(f"/app/customer?f.created_at.from={today}&f.created_at.to={today}"
                                               "&limit=100").text)
    assert len(created) == 30
