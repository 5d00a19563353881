"""What a user does on the screens, as small steps the browser tests (and the documentation
screenshots) share. Elements are found by their `data-test` attributes, form fields by their
`in-<field>` ids."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.browser.server import PASSWORDS

LANG_ATTR = {"en": "en", "zh": "zh-CN"}


def unique(prefix: str) -> str:
    """A name no other test (or demo record) uses."""
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def submit(page: Any, selector: str) -> None:
    """Click a button that submits a form and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def sign_in(page: Any, base: str, username: str, password: str | None = None, language: str = "en") -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or PASSWORDS[username])
    submit(page, ".login-form button[type=submit]")
    assert "/login" not in page.url, f"{username} could not sign in: {page.inner_text('body')[:300]}"
    set_language(page, language)


def language(page: Any) -> str:
    return "zh" if page.get_attribute("html", "lang") == "zh-CN" else "en"


def set_language(page: Any, wanted: str) -> None:
    """Switch with the top bar's button when the page is in the other language (the demo users
    start in Chinese; the choice is stored with the user)."""
    if language(page) != wanted:
        submit(page, "[data-test=switch-language]")
    assert page.get_attribute("html", "lang") == LANG_ATTR[wanted]


def flashes(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(".flash").all_inner_texts()]


def record_id(page: Any, entity: str) -> int:
    match = re.search(rf"/app/{entity}/(\d+)(?:\?|$)", page.url)
    assert match, f"not on a {entity} detail page: {page.url}"
    return int(match.group(1))


def field_value(page: Any, name: str) -> str:
    """The shown value of a field on a detail page."""
    return str(page.locator(f"dd[data-field={name}]").inner_text()).strip()


def create_customer(page: Any, base: str, name: str, **values: str) -> int:
    """Create a customer through the form (text inputs by field name) -> its id."""
    page.goto(base + "/app/customer/new")
    page.fill("#in-name", name)
    for field, value in values.items():
        page.fill(f"#in-{field}", value)
    submit(page, "[data-test=save]")
    return record_id(page, "customer")


def create_opportunity(page: Any, base: str, name: str, customer: str, amount: str = "") -> int:
    """Create an opportunity through the form, typing the customer's name -> its id."""
    page.goto(base + "/app/opportunity/new")
    page.fill("#in-name", name)
    page.fill("#in-customer", customer)
    if amount:
        page.fill("#in-amount", amount)
    submit(page, "[data-test=save]")
    return record_id(page, "opportunity")


def column_texts(page: Any, label: str, table: str = "list") -> list[str]:
    """The texts of one column of a table, by the column's label (the cells' data-label)."""
    cells = page.locator(f"table[data-test={table}] tbody td[data-label=\"{label}\"]")
    return [t.strip() for t in cells.all_inner_texts()]


def page_widths(page: Any) -> tuple[int, int]:
    """(widest scroll width of the document and body, viewport width)."""
    return page.evaluate("() => [Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),"
                         " window.innerWidth]")
