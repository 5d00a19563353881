"""A phone-width screen: pages fit the width, tables become cards, the menu folds behind ☰."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.browser.conftest import Shot
from tests.browser.pages import page_widths, sign_in
from tests.browser.server import CrmServer

PHONE = {"width": 375, "height": 812}


def assert_fits(page: Any) -> None:
    widest, viewport = page_widths(page)
    assert viewport == PHONE["width"]
    assert widest <= viewport, f"{page.url} is {widest}px wide on a {viewport}px screen"


def test_phone_width(crm_server: CrmServer, new_page: Callable[..., Any], shot: Shot) -> None:
    base = crm_server.url
    page = new_page(**PHONE)
    sign_in(page, base, "sales1")
    assert_fits(page)
    shot(page, "home")

    page.goto(base + "/app/customer")
    assert_fits(page)
    assert page.locator("table[data-test=list] tbody tr").count() > 0
    assert page.locator("table[data-test=list] thead").is_hidden()  # rows shown as cards
    shot(page, "list")

    page.locator("table[data-test=list] a.row-link").first.click()
    page.wait_for_url(f"{base}/app/customer/*")
    assert page.locator("[data-test=record-title]").is_visible()
    assert_fits(page)
    shot(page, "detail")

    page.goto(base + "/app/opportunity")
    page.locator("table[data-test=list] a.row-link").first.click()
    page.wait_for_url(f"{base}/app/opportunity/*")
    assert page.locator("[data-test=stage-path-stage]").is_visible()
    assert_fits(page)
    shot(page, "detail-with-stages")

    page.goto(base + "/app/customer/new")
    assert_fits(page)
    shot(page, "form")

    sidebar = page.locator("nav.sidebar")
    assert sidebar.is_hidden()
    page.click("label.nav-button")
    assert sidebar.is_visible()
    link = sidebar.get_by_role("link", name="Contact", exact=True)
    assert link.is_visible()
    shot(page, "menu-open", full_page=False)
    link.click()
    page.wait_for_url(base + "/app/contact")
    assert page.locator("h1").inner_text().startswith("Contact")
    assert sidebar.is_hidden()  # a new page starts with the menu folded
    assert_fits(page)
    shot(page, "contacts")
