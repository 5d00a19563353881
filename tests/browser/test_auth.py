"""Signing in and out, and switching the language, in a real browser."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.browser.conftest import Shot
from tests.browser.pages import PASSWORDS, language, set_language, sign_in, submit
from tests.browser.server import CrmServer


def test_sign_in_with_a_wrong_password_then_the_right_one(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    page.goto(base + "/app/customer")
    assert page.url == f"{base}/login?next={quote('/app/customer', safe='')}"
    shot(page, "login")

    page.fill("input[name=username]", "sales1")
    page.fill("input[name=password]", "not-the-password")
    submit(page, ".login-form button[type=submit]")
    assert page.locator(".login-form .error").inner_text() == "The user name or password is wrong."
    assert page.input_value("input[name=username]") == "sales1"  # the user name is kept
    assert page.input_value("input[name=password]") == ""
    shot(page, "wrong-password")

    page.fill("input[name=password]", PASSWORDS["sales1"])
    submit(page, ".login-form button[type=submit]")
    assert page.url == base + "/app/customer"  # back where the user was going
    assert page.locator(".user-name").inner_text() == "李明"
    set_language(page, "en")
    assert page.locator("h1").inner_text().startswith("Customer")
    assert page.locator("table[data-test=list] tbody tr").count() > 0
    shot(page, "signed-in")


def test_sign_out(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "sales2")
    page.goto(base + "/app/customer")
    shot(page, "signed-in")

    submit(page, "[data-test=sign-out]")
    assert page.url == base + "/login"
    assert page.locator(".login-form").is_visible()
    shot(page, "signed-out")

    page.goto(base + "/app/customer")  # protected: back to the login page
    assert page.url.startswith(base + "/login?next=")
    assert page.locator("table[data-test=list]").count() == 0
    page.goto(base + "/")
    assert page.url.startswith(base + "/login")
    shot(page, "protected-page")


def test_switch_language(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "marketing1", language="en")
    page.goto(base + "/app/customer?sort=name")
    sidebar = page.locator("nav.sidebar")
    assert "Customer" in sidebar.inner_text()
    assert page.locator("[data-test=sign-out]").inner_text() == "Sign out"
    shot(page, "english")

    submit(page, "[data-test=switch-language]")
    assert language(page) == "zh"
    assert page.url == base + "/app/customer?sort=name"  # the same page, now in Chinese
    assert "客户" in sidebar.inner_text()
    assert "Customer" not in sidebar.inner_text()
    assert page.locator("h1").inner_text().startswith("客户")
    assert page.locator("[data-test=sign-out]").inner_text() == "退出"
    assert page.locator("[data-test=switch-language]").inner_text() == "English"
    shot(page, "chinese")

    page.goto(base + "/")  # the choice stays for the next pages
    assert language(page) == "zh"
    assert page.locator("nav.sidebar .nav-home").inner_text() == "首页"

    submit(page, "[data-test=switch-language]")
    assert language(page) == "en"
    assert page.locator("nav.sidebar .nav-home").inner_text() == "Home"
    shot(page, "english-again")
