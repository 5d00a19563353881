"""The admin studio in a browser (issue 6's scenario): the administrator adds a custom choice
field with a new pick-list to customers, in the form's first section, the list and the filter
bar; a salesperson fills it, filters by it and finds it in the OpenAPI document; the
administrator undoes the change and the field disappears while its data stays. The administrator
creates an entity of their own, moves a field on its form and uses it; the admin guide's
screenshots can be made."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from tests.browser.conftest import OUTPUT, Shot
from tests.browser.make_screenshots import DOCS_SCREENSHOTS
from tests.browser.pages import create_customer, flashes, sign_in, submit, unique
from tests.browser.server import ROOT, CrmServer
from tests.browser.studio_screenshots import capture_studio


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


def test_admin_creates_an_entity_moves_a_field_on_its_form_and_uses_it(
        crm_server: CrmServer, new_page: Callable[..., Any], shot: Shot) -> None:
    base = crm_server.url
    admin = new_page()
    sign_in(admin, base, "admin")
    customer = unique("Visited Co.")
    create_customer(admin, base, customer)
    name = "visit_" + uuid.uuid4().hex[:6]  # the session's server is shared: a name of this test's own
    admin.goto(base + "/admin/studio")
    admin.click("[data-test=new-entity]")
    admin.fill("#e-name", name)
    admin.select_option("#e-menu", "sales")
    admin.fill("#e-label-zh", "拜访")
    admin.fill("#e-label-en", "Site visit")
    admin.fill("#f1_name", "customer")
    admin.select_option("#f1_type", "reference")
    admin.fill("#f1_label_zh", "客户")
    admin.fill("#f1_label_en", "Customer")
    admin.select_option("#f1_target", "customer")
    admin.check("#f1_tab")
    admin.fill("#f2_name", "visited_on")
    admin.select_option("#f2_type", "date")
    admin.fill("#f2_label_zh", "拜访日期")
    admin.fill("#f2_label_en", "Visited on")
    submit(admin, "[data-test=preview]")
    assert f"CREATE TABLE x_{name}" in admin.locator("[data-test=ddl]").inner_text()
    shot(admin, "entity-preview")
    submit(admin, "[data-test=apply]")
    assert any("Entity created" in f for f in flashes(admin))
    assert admin.url.endswith(f"/admin/studio/x_{name}")

    # a layout move: the date goes up, above the customer, on the form
    admin.click("[data-test=edit-layout-form]")
    submit(admin, "[data-test=up-visited_on]")
    assert any("Applied" in f for f in flashes(admin))
    placed = admin.locator("[data-test=section-fields-0] tr").all_inner_texts()
    assert [p.split()[0] for p in placed][:3] == ["Name", "Visited", "Customer"]
    shot(admin, "layout-moved")

    # the new entity has its menu entry, form (in the new order), record page and the tab on the customer
    admin.goto(base + "/")
    admin.click(f".sidebar a[href='/app/x_{name}']")
    admin.click("[data-test=new]")
    order = admin.eval_on_selector_all("form[data-test=record-form] [name]", "els => els.map(e => e.name)")
    assert order.index("visited_on") < order.index("customer")
    admin.fill("#in-name", "First visit")
    admin.fill("#in-visited_on", "2026-03-02")
    admin.fill("#in-customer", customer)
    submit(admin, "[data-test=save]")
    assert "First visit" in admin.locator("[data-test=record-title]").inner_text()
    admin.click("dd[data-field=customer] a")
    admin.click(f"[data-test=tab-x_{name}]")
    assert "First visit" in admin.locator("main").inner_text()
    shot(admin, "tab-on-customer")


def test_the_admin_guide_screenshots_can_be_made(crm_server: CrmServer, browser: Any) -> None:
    out = OUTPUT / "docs-screenshots"
    for old in out.glob("studio-*.png"):
        old.unlink()
    made = {p.name for p in capture_studio(browser, crm_server.url, out)}
    guide = (ROOT / "docs" / "admin.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"\(screenshots/(studio-[\w-]+\.png)\)", guide))
    assert shown, "docs/admin.md shows no screenshots"
    assert shown <= made, f"docs/admin.md shows pictures the script does not make: {shown - made}"
    missing = [n for n in sorted(shown) if not (DOCS_SCREENSHOTS / n).is_file()]
    assert not missing, f"not in docs/screenshots (run `make screenshots`): {missing}"
