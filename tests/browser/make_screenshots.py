"""The screenshots of docs/user.md (and of docs/admin.md, see studio_screenshots.py), taken from
the real server in Debian's Chromium.

    make screenshots          # = python -m tests.browser.make_screenshots docs/screenshots

Run on its own it starts a fresh demo server (`crm demo`, seed 42), so the pictures show only
demo data. The browser tests call `capture` too (into test-output/docs-screenshots/), which keeps
this script working and checks that every picture docs/user.md shows is one it makes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.browser.pages import create_opportunity, sign_in, submit
from tests.browser.server import ROOT, CrmServer, launch
from tests.browser.studio_screenshots import capture_studio

DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
USER = "sales1"  # a salesperson: what most people using the CRM see


def capture(browser: Any, base: str, out: Path) -> list[Path]:
    """Visit the screens as USER and save one 1280x800 picture of each (PNG) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()

    def snap(page: Any, name: str, target: Any = None, top: bool = False) -> None:
        """Save the viewport, scrolled to show `target` (centred, or at the top)."""
        if target is not None and top:
            target.evaluate("element => element.scrollIntoView({block: 'start'})")
        elif target is not None:
            target.scroll_into_view_if_needed()
        path = out / f"{name}.png"
        page.screenshot(path=str(path))
        written.append(path)

    try:
        page.goto(base + "/login")
        snap(page, "login")

        sign_in(page, base, USER, language="en")
        page.goto(base + "/")
        snap(page, "home")

        page.goto(base + "/app/customer")
        snap(page, "list")

        page.select_option("[data-test=filter-customer_type]", "potential")
        submit(page, "[data-test=apply-filters]")
        page.click("[data-test=sort-code]")
        page.wait_for_url("**sort=code**")
        page.click(".columns-chooser summary")
        snap(page, "list-filtered")

        page.goto(base + "/app/customer?sort=code")
        page.locator("table[data-test=list] a.row-link").first.click()
        page.wait_for_url(base + "/app/customer/*")
        customer = page.locator("[data-test=record-title]").inner_text()
        page.click("[data-test=tab-contact]")
        snap(page, "related")

        # a deal of our own, moved along and edited, so that its history has something to show
        deal = create_opportunity(page, base, "Pilot project: MES rollout, phase 1", customer, amount="120000")
        page.select_option("[data-test=move-stage-stage]", "needs_analysis")
        submit(page, "[data-test=stage-path-stage] button[type=submit]")
        page.click("[data-test=edit]")
        page.fill("#in-amount", "135000")
        page.fill("#in-expected_close_date", "2027-03-31")
        page.fill("#in-next_step", "Visit the plant with the solution engineer")
        submit(page, "[data-test=save]")
        snap(page, "detail")
        page.click("[data-test=tab-history]")
        snap(page, "history")

        page.goto(base + "/app/customer/new")
        snap(page, "form")
        page.fill("#in-name", "上海示例贸易有限公司")
        page.fill("#in-phone", "021-12345678")
        page.fill("#in-email", "sales@example")
        page.fill("#in-annual_revenue", "lots")
        submit(page, "[data-test=save]")
        snap(page, "form-errors", page.locator(".field[data-field=annual_revenue]"))

        page.goto(base + "/app/contact/new")
        page.fill("#in-name", "王芳")
        page.fill("#in-customer", "有限公司")  # a name many customers share
        submit(page, "[data-test=save]")
        snap(page, "reference-pick", page.locator("[data-test=pick-customer]"))

        page.goto(base + "/app/opportunity/board")
        snap(page, "board")

        # something in the recycle bin: the deal made above
        page.goto(f"{base}/app/opportunity/{deal}")
        page.once("dialog", lambda dialog: dialog.accept())
        submit(page, "[data-test=delete]")
        page.goto(base + "/app/opportunity/trash")
        assert page.locator(f"[data-test=restore-{deal}]").count() == 1
        snap(page, "trash")

        page.goto(base + "/settings")
        snap(page, "settings")

        page.goto(base + "/app/customer")
        submit(page, "[data-test=switch-language]")
        snap(page, "list-zh")
        submit(page, "[data-test=switch-language]")
    finally:
        context.close()

    phone = browser.new_context(viewport=PHONE, locale="en-US")
    try:
        page = phone.new_page()
        sign_in(page, base, USER, language="en")
        page.goto(base + "/app/customer")
        snap(page, "phone-list", page.locator("table[data-test=list]"), top=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.click("label.nav-button")
        snap(page, "phone-menu")
    finally:
        phone.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default=str(DOCS_SCREENSHOTS), help="folder for the PNG files")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="crm-screenshots-") as tmp:
        server = CrmServer(Path(tmp))
        server.start()
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                try:
                    paths = capture(browser, server.url, Path(args.out))
                    paths += capture_studio(browser, server.url, Path(args.out))  # docs/admin.md's
                finally:
                    browser.close()
        finally:
            server.stop()
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
