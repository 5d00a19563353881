"""The screenshots of docs/admin.md (the admin studio), taken from the real server as the demo
administrator. `make screenshots` calls `capture_studio` after the user guide's pictures;
tests/browser/test_studio.py calls it too (into test-output/), which keeps it working and checks
that every picture docs/admin.md shows is one it makes.

It changes the server's metadata only where no other test looks: it creates the custom entity
x_project (with one record) and edits that entity's layout; every other screen is only opened
(a custom field is previewed, not applied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.pages import flashes, sign_in, submit

DESKTOP = {"width": 1280, "height": 800}
ADMIN = "admin"


def capture_studio(browser: Any, base: str, out: Path) -> list[Path]:
    """Visit every studio screen and save one 1280x800 picture of each as studio-*.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()

    def snap(name: str, target: Any = None, top: bool = False) -> None:
        if target is not None and top:
            target.evaluate("element => element.scrollIntoView({block: 'start'})")
        elif target is not None:
            target.scroll_into_view_if_needed()
        path = out / f"studio-{name}.png"
        page.screenshot(path=str(path))
        written.append(path)

    try:
        sign_in(page, base, ADMIN, language="en")

        # a pack entity's fields and a custom field previewed (not applied)
        page.goto(base + "/admin/studio/customer")
        snap("entity")
        page.fill("#f-name", "grade")
        page.select_option("#f-type", "choice")
        page.fill("#f-label-zh", "客户级别")
        page.fill("#f-label-en", "Customer level")
        page.fill("#f-options", "gold|金牌|Gold\nsilver|银牌|Silver\nbronze|铜牌|Bronze")
        page.select_option("#f-section", "Basic information")
        page.check("#f-in-list")
        page.check("#f-in-filters")
        submit(page, "[data-test=preview]")
        snap("field-preview", page.locator("[data-test=ddl]"))

        page.goto(base + "/admin/studio/customer/fields/code")
        snap("numbering")
        page.goto(base + "/admin/studio/picklists/customer_type")
        snap("picklist")

        # a custom entity: previewed with its CREATE TABLE, applied, used
        page.goto(base + "/admin/studio")
        made = page.locator("[data-test=studio-x_project]").count() > 0  # by an earlier run on this server
        page.goto(base + "/admin/studio/new-entity")
        if not made:
            page.fill("#e-name", "project")
            page.select_option("#e-menu", "sales")
            page.fill("#e-label-zh", "项目")
            page.fill("#e-label-en", "Project")
            page.fill("#e-title-zh", "项目名称")
            page.fill("#e-title-en", "Project name")
            rows = [("customer", "reference", "客户", "Customer", "customer", ""),
                    ("phase", "stage", "阶段", "Phase", "", "plan|规划|Planning\nbuild|实施|Building\ndone|验收|Accepted|won"),
                    ("budget", "money", "预算", "Budget", "", ""),
                    ("start_on", "date", "开工日期", "Start date", "", ""),
                    ("notes", "text", "备注", "Notes", "", "")]
            for n, (name, kind, zh, en, target, options) in enumerate(rows, 1):
                page.fill(f"#f{n}_name", name)
                page.select_option(f"#f{n}_type", kind)
                page.fill(f"#f{n}_label_zh", zh)
                page.fill(f"#f{n}_label_en", en)
                if target:
                    page.select_option(f"#f{n}_target", target)
                    page.check(f"#f{n}_tab")
                if options:
                    page.fill(f"#f{n}_options", options)
            page.evaluate("window.scrollTo(0, 0)")
            snap("new-entity")
            submit(page, "[data-test=preview]")
            snap("new-entity-preview", page.locator("[data-test=ddl]"))
            submit(page, "[data-test=apply]")
            assert any("Entity created" in f for f in flashes(page)), flashes(page)
        page.goto(base + "/admin/studio/x_project")
        snap("custom-entity")

        page.goto(base + "/app/customer?sort=code")
        customer = page.locator("table[data-test=list] a.row-link").first.inner_text()
        page.goto(base + "/app/x_project/new")
        page.fill("#in-name", "MES rollout, phase 2")
        page.fill("#in-customer", customer)
        page.fill("#in-budget", "860000")
        page.fill("#in-start_on", "2026-09-01")
        submit(page, "[data-test=save]")
        page.goto(base + "/app/x_project")
        snap("custom-entity-list")

        # the layout editor: a field moved on the custom entity's form; the other layouts opened
        page.goto(base + "/admin/studio/x_project/layouts/form")
        submit(page, "[data-test=down-budget]")
        snap("layout-form")
        page.goto(base + "/admin/studio/customer/layouts/list")
        snap("layout-list")
        page.goto(base + "/admin/studio/customer/layouts/related")
        snap("layout-related")

        page.goto(base + "/admin/studio")  # the studio with the history of the changes above
        snap("home")

        # roles: the scope grid, one role's field rules; settings; users
        page.goto(base + "/admin/roles/salesperson")
        snap("roles")
        page.goto(base + "/admin/roles/salesperson/fields/product")
        snap("field-rules")
        page.goto(base + "/admin/settings")
        snap("settings")
        page.goto(base + "/admin/users")
        snap("users")
    finally:
        context.close()
    return written
