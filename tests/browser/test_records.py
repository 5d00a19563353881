"""Creating, validating, editing and relating records through the generated forms."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Shot
from tests.browser.pages import (
    column_texts,
    field_value,
    flashes,
    record_id,
    sign_in,
    submit,
    unique,
)
from tests.browser.server import CrmServer


def test_create_a_customer(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "sales1")
    page.goto(base + "/app/customer")
    before = int(page.locator("[data-test=total]").inner_text())
    shot(page, "list")

    page.click("[data-test=new]")
    assert page.url == base + "/app/customer/new"
    assert page.locator("h1").inner_text() == "New Customer"
    name = unique("Browser Trading Co.")
    page.fill("#in-name", name)
    page.select_option("#in-industry", label="Manufacturing")
    page.fill("#in-annual_revenue", "1234567.5")
    page.fill("#in-phone", "021-12345678")
    page.fill("#in-city", "Shanghai")
    shot(page, "form-filled")
    submit(page, "[data-test=save]")

    customer = record_id(page, "customer")
    assert page.locator("[data-test=record-title]").inner_text() == name
    assert f"{name} created." in flashes(page)
    assert field_value(page, "industry") == "Manufacturing"
    assert field_value(page, "annual_revenue") == "CN¥1,234,567.50"
    assert field_value(page, "city") == "Shanghai"
    assert field_value(page, "code").startswith("KH")  # the autonumber was given
    shot(page, "detail")

    page.goto(base + "/app/customer")
    assert int(page.locator("[data-test=total]").inner_text()) == before + 1
    assert page.locator(f"table[data-test=list] a[href='/app/customer/{customer}']").inner_text() != ""
    shot(page, "list-after")


def test_a_validation_error_is_shown_beside_the_field_and_can_be_fixed(
        crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "sales1")
    page.goto(base + "/app/customer/new")
    name = unique("Validation Test Ltd")
    page.fill("#in-name", name)
    page.fill("#in-phone", "0755-88886666")
    page.fill("#in-email", "sales@example")  # the browser accepts it; the server wants a domain
    page.fill("#in-annual_revenue", "lots")
    page.select_option("#in-source", label="Trade fair / exhibition")
    submit(page, "[data-test=save]")

    assert page.url == base + "/app/customer/new"  # nothing was saved
    assert "nothing was saved" in page.locator("[data-test=form-errors]").inner_text()
    email = page.locator(".field[data-field=email]")
    assert "has-error" in (email.get_attribute("class") or "")
    assert email.locator(".field-error").inner_text() != ""
    revenue = page.locator(".field[data-field=annual_revenue]")
    assert revenue.locator(".field-error").count() == 1
    assert page.locator(".field-error").count() == 2  # only the two wrong fields
    # everything typed is still there
    assert page.input_value("#in-name") == name
    assert page.input_value("#in-phone") == "0755-88886666"
    assert page.input_value("#in-email") == "sales@example"
    assert page.input_value("#in-annual_revenue") == "lots"
    assert page.locator("#in-source option:checked").inner_text() == "Trade fair / exhibition"
    shot(page, "errors")

    page.fill("#in-email", "sales@example.com")
    page.fill("#in-annual_revenue", "500000")
    submit(page, "[data-test=save]")
    record_id(page, "customer")
    assert f"{name} created." in flashes(page)
    assert field_value(page, "email") == "sales@example.com"
    assert field_value(page, "annual_revenue") == "CN¥500,000.00"
    assert field_value(page, "source") == "Trade fair / exhibition"
    shot(page, "saved")


def test_edit_a_record(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "sales2")
    page.goto(base + "/app/customer/new")
    name = unique("Edit Me Co.")
    page.fill("#in-name", name)
    page.fill("#in-city", "Hangzhou")
    submit(page, "[data-test=save]")
    customer = record_id(page, "customer")

    page.click("[data-test=edit]")
    assert page.url == f"{base}/app/customer/{customer}/edit"
    assert page.input_value("#in-name") == name
    assert page.input_value("#in-city") == "Hangzhou"
    renamed = name + " (renamed)"
    page.fill("#in-name", renamed)
    page.fill("#in-city", "Suzhou")
    page.check("#in-hot")
    shot(page, "form")
    submit(page, "[data-test=save]")

    assert page.url == f"{base}/app/customer/{customer}"
    assert f"{renamed} saved." in flashes(page)
    assert page.locator("[data-test=record-title]").inner_text() == renamed
    assert field_value(page, "city") == "Suzhou"
    assert field_value(page, "hot") == "Yes"
    shot(page, "detail")

    page.click("[data-test=tab-history]")
    history = page.locator("table[data-test=history] tbody").inner_text()
    assert "Hangzhou" in history and "Suzhou" in history
    shot(page, "history")


def test_add_a_related_contact_from_the_customer_tab(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "sales1")
    page.goto(base + "/app/customer/new")
    customer_name = unique("Related Tab Co.")
    page.fill("#in-name", customer_name)
    submit(page, "[data-test=save]")
    customer = record_id(page, "customer")

    page.click("[data-test=tab-contact]")
    assert page.url.startswith(f"{base}/app/customer/{customer}?tab=")
    tab_url = page.url
    assert page.locator("[data-test=tab-contact] .count").inner_text() == "0"
    shot(page, "empty-tab")

    page.click("[data-test=new-related]")
    assert page.url.startswith(base + "/app/contact/new?")
    assert page.input_value("#in-customer") == customer_name  # the link back is filled in
    contact = unique("Wang Fang")
    page.fill("#in-name", contact)
    page.fill("#in-title", "Purchasing manager")
    page.fill("#in-mobile", "13800138000")
    shot(page, "form")
    submit(page, "[data-test=save]")

    assert page.url == tab_url  # back on the customer's contacts tab
    assert f"{contact} created." in flashes(page)
    assert page.locator("[data-test=tab-contact] .count").inner_text() == "1"
    assert column_texts(page, "Name", table="related") == [contact]
    assert column_texts(page, "Job title", table="related") == ["Purchasing manager"]
    shot(page, "tab-with-contact")

    page.locator("table[data-test=related]").get_by_role("link", name=contact).click()
    page.wait_for_url(f"{base}/app/contact/*")
    assert field_value(page, "customer") == customer_name
    shot(page, "contact")
