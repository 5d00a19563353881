"""The field_service pack in a real browser, on a standard CRM with the industry packs installed
and their demo data: the dispatcher assigns a work order from the queue, the engineer records
spare parts and hours and completes it; the equipment's component tree and the warnings.

Screenshots go to test-output/screenshots/; docs/packs/img/field_service-*.png are copies."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from tests.browser.conftest import Shot
from tests.browser.pages import field_value, flashes, record_id, sign_in, submit
from tests.browser.server import CrmServer

DISPATCHER, ENGINEER = "dispatcher1", "engineer1"  # the pack's demo users (赵敏, 周强)


def demo_sign_in(page: Any, base: str, username: str) -> None:
    sign_in(page, base, username, f"demo-{username}")


def list_ids(page: Any, entity: str) -> list[int]:
    hrefs = page.locator(f"table[data-test=list] tbody a[href^='/app/{entity}/']").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))")
    return [int(m.group(1)) for h in hrefs if (m := re.fullmatch(rf"/app/{entity}/(\d+)", h))]


def test_dispatch_from_the_queue_then_the_engineer_records_parts_and_hours(
        industry_server: CrmServer, new_page: Any, shot: Shot) -> None:
    base = industry_server.url
    dispatcher = new_page()
    demo_sign_in(dispatcher, base, DISPATCHER)
    dispatcher.goto(base + "/")
    assert "Work orders to dispatch" in dispatcher.inner_text("main")
    shot(dispatcher, "dispatcher-home")

    # the unassigned queue: work orders on equipment, overdue ones highlighted
    dispatcher.goto(base + "/app/service_request?view=dispatch_queue")
    assert "active" in (dispatcher.get_attribute("[data-test=view-dispatch_queue]", "class") or "")
    queue = list_ids(dispatcher, "service_request")
    assert queue, "the demo's dispatch queue is empty"
    assert dispatcher.locator("table[data-test=list] tbody tr.highlight").count() >= 1  # overdue
    shot(dispatcher, "queue")
    dispatcher.goto(base + "/app/service_request?view=dispatch_queue&filter=asset+is_not_empty")
    order = list_ids(dispatcher, "service_request")[0]

    dispatcher.goto(f"{base}/app/service_request/{order}")
    code = field_value(dispatcher, "code")
    assert field_value(dispatcher, "status") == "New" and field_value(dispatcher, "asset") != "—"
    dispatcher.click("[data-test=action-dispatch]")
    dispatcher.select_option("#in-engineer", label="周强")
    visit = date.today() + timedelta(days=1)
    dispatcher.fill("#in-scheduled_at", f"{visit.isoformat()}T10:30")
    shot(dispatcher, "dispatch-form")
    submit(dispatcher, "[data-test=run-action]")
    assert record_id(dispatcher, "service_request") == order
    assert any(f"Work order {code} has been dispatched to 周强." in f for f in flashes(dispatcher))
    assert field_value(dispatcher, "status") == "Assigned"
    assert field_value(dispatcher, "assigned_to") == "周强"
    shot(dispatcher, "dispatched")
    dispatcher.goto(base + "/app/service_request?view=dispatch_queue")
    assert order not in list_ids(dispatcher, "service_request")

    # the engineer: their open work orders, on site, spare parts, hours, completion
    engineer = new_page()
    demo_sign_in(engineer, base, ENGINEER)
    engineer.goto(base + "/app/service_request?view=my_open")
    mine = list_ids(engineer, "service_request")
    assert order in mine
    engineer.goto(base + "/app/service_request")
    assert set(list_ids(engineer, "service_request")) <= set(mine) | set(closed_or_resolved(engineer, base))
    assert engineer.locator("nav a[href='/app/opportunity']").count() == 0  # no sales data
    assert engineer.goto(base + "/app/opportunity").status in (403, 404)

    engineer.goto(f"{base}/app/service_request/{order}")
    submit(engineer, "[data-test=action-start_work]")
    assert field_value(engineer, "status") == "In progress"
    assert field_value(engineer, "arrived_at") != "—"

    engineer.click("[data-test=tab-work_order_part]")
    engineer.click("[data-test=new-related]")
    engineer.fill("#in-product", "电源模块")
    engineer.fill("#in-quantity", "2")
    engineer.fill("#in-old_serial", "PW24-OLD-0815")
    shot(engineer, "part-form")
    submit(engineer, "[data-test=save]")
    assert f"/app/service_request/{order}" in engineer.url
    assert "电源模块 PW-24V 10A created." in flashes(engineer)
    part_rows = engineer.locator("table[data-test=related] tbody tr")
    assert part_rows.count() >= 1
    assert "CN¥640.00" in part_rows.first.inner_text()  # 2 x the part's standard price 320
    shot(engineer, "parts")

    engineer.goto(f"{base}/app/service_request/{order}")
    engineer.click("[data-test=action-complete_work]")
    engineer.fill("#in-resolution", "更换电源模块，通电测试运行正常。")
    engineer.fill("#in-labour_hours", "2.5")
    engineer.fill("#in-travel_km", "36")
    engineer.fill("#in-confirmed_by", "设备科 王工")
    shot(engineer, "complete-form")
    submit(engineer, "[data-test=run-action]")
    assert any(f"Work order {code} is completed" in f for f in flashes(engineer))
    assert field_value(engineer, "status") == "Resolved"
    assert field_value(engineer, "labour_hours") == "2.5"
    assert field_value(engineer, "parts_total") == "CN¥640.00"
    assert field_value(engineer, "travel_fee") == "CN¥72.00"  # 36 km x 2.00
    assert field_value(engineer, "total_amount") == "CN¥1,212.00"  # 2.5 h x 200 + 72 + 640
    assert field_value(engineer, "confirmed_by") == "设备科 王工"
    shot(engineer, "completed")


def closed_or_resolved(page: Any, base: str) -> list[int]:
    page.goto(base + "/app/service_request?filter=" + "status+in+resolved,closed")
    return list_ids(page, "service_request")


def test_equipment_component_tree_and_warnings(industry_server: CrmServer, page: Any, shot: Shot) -> None:
    base = industry_server.url
    demo_sign_in(page, base, DISPATCHER)
    page.goto(base + "/app/customer_asset?view=warranty_expiring")
    assert list_ids(page, "customer_asset"), "no equipment leaving warranty in the demo"
    shot(page, "warranty-expiring")
    page.goto(base + "/app/customer_asset?view=service_due")
    shot(page, "service-due")

    # a cabinet with equipment in it: its components as a tree
    page.goto(base + "/app/customer_asset?filter=" + "name+starts_with+低压配电柜")
    cabinet = list_ids(page, "customer_asset")[0]
    page.goto(f"{base}/app/customer_asset/{cabinet}")
    customer = page.locator("dd[data-field=customer] a").get_attribute("href")
    assert customer
    page.click("[data-test=tab-asset_component]")
    tree = page.locator("table[data-test=related].tree")
    assert tree.count() == 1
    assert page.locator("table[data-test=related] tbody tr[data-depth='1']").count() >= 1  # fans in the cooling unit
    shot(page, "components")
    page.goto(base + customer)
    page.click("[data-test=tab-customer_asset]")
    assert page.locator("table[data-test=related].tree tbody tr[data-depth='1']").count() >= 1  # drives in the cabinet
    shot(page, "installed-base")

    page.goto(base + "/app/maintenance_plan?view=due_30")
    shot(page, "plans")
