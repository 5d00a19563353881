"""The admin studio in a browser (issue 6's scenario): the administrator adds a custom choice
field with a new pick-list to customers, in the form's first section, the list and the filter
bar; a salesperson fills it, filters by it and finds it in the OpenAPI document; the
administrator undoes the change and the field disappears while its data stays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.browser.conftest import Shot
from tests.browser.pages import flashes, sign_in, submit, unique
from tests.browser.server import CrmServer


def test_admin_adds_a_field_a_salesperson_uses_it_then_it_is_undone(
        crm_server: CrmServer, new_page: Callable[..., Any], shot: Shot) -> None:
    base = crm_server.url
    admin = new_page()
    sign_in(admin, base, "admin")
    admin.click("[data-test=nav-studio]")
    admin.click("[data-test=studio-customer]")
    admin.fill("#f-name", "tier")
    admin.select_option("#f-type", "choice")
    admin.fill("#f-label-zh", "客户层级")
    admin.fill("#f-label-en", "Tier")
    admin.fill("#f-options", "gold|金牌|Gold\nsilver|银牌|Silver")
    admin.select_option("#f-section", "Basic information")
    admin.check("#f-in-list")
    admin.check("#f-in-filters")
    submit(admin, "[data-test=preview]")
    assert "x_tier" in admin.locator("[data-test=ddl]").inner_text()
    shot(admin, "preview")
    submit(admin, "[data-test=apply]")
    assert any("Applied" in f for f in flashes(admin))

    sales = new_page()
    sign_in(sales, base, "sales1")
    sales.goto(base + "/app/customer/new")
    first_section = sales.locator("fieldset.section").first
    assert first_section.locator("#in-x_tier").count() == 1  # in the form's first section
    name = unique("Tiered Co.")
    sales.fill("#in-name", name)
    sales.select_option("#in-x_tier", label="Gold")
    shot(sales, "form-with-custom-field")
    submit(sales, "[data-test=save]")
    assert "Gold" in sales.locator("dd[data-field=x_tier]").inner_text()

    sales.goto(base + "/app/customer")
    sales.select_option("[data-test=filter-x_tier]", "gold")
    submit(sales, "[data-test=apply-filters]")
    rows = sales.locator("table[data-test=list] tbody tr")
    assert rows.count() == 1 and name in rows.first.inner_text()
    shot(sales, "filtered-by-custom-field")
    assert "x_tier" in sales.request.get(base + "/api/openapi.json").text()

    admin.goto(base + "/admin/studio")
    newest_entity_change = admin.locator("tr", has_text="entity customer").first
    with admin.expect_navigation():
        newest_entity_change.locator("[data-test^=undo-]").click()
    sales.goto(base + "/app/customer/new")
    assert sales.locator("#in-x_tier").count() == 0
    sales.goto(base + "/app/customer")
    assert sales.locator("[data-test=filter-x_tier]").count() == 0
    assert name in sales.locator("table[data-test=list]").inner_text()  # the record (and its data) stay
    shot(sales, "after-undo")
