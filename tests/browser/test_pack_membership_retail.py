"""The membership retail pack in a real browser, on the industry server (the standard demo with the
industry packs installed and their demo data): a store clerk's day (the home page's birthdays and
low balances), serving a member (a consumption paid from the card through the form, the balance
going down, the points going up), being refused when the card does not hold enough, and a member's
page with the cards, the segment and the referrals."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from tests.browser.conftest import Shot
from tests.browser.pages import field_value, flashes, record_id, sign_in, submit
from tests.browser.server import CrmServer


def money(text: str) -> Decimal:
    """CN¥20,695.70 -> Decimal('20695.70')."""
    return Decimal(re.sub(r"[^\d.\-]", "", text) or "0")


def open_tab(page: Any, entity: str) -> None:
    with page.expect_navigation():
        page.click(f"[data-test=tab-{entity}]")


def test_a_store_clerk_records_a_consumption_and_the_balance_changes(
        industry_server: CrmServer, page: Any, shot: Shot) -> None:
    base = industry_server.url
    sign_in(page, base, "clerk1", "demo-clerk1")
    main = page.inner_text("main")
    assert "My members' birthdays this week" in main and "Cards running low" in main
    shot(page, "home")

    # the cards with the most stored value: one to serve
    page.goto(base + "/app/member_card?view=big_balance")
    assert page.locator("table[data-test=list] tbody tr").count() > 0
    shot(page, "cards")
    with page.expect_navigation():
        page.locator("table[data-test=list] tbody tr a[href^='/app/member_card/']").first.click()
    card = record_id(page, "member_card")
    balance = money(field_value(page, "balance"))
    points = int(field_value(page, "points_balance").replace(",", "") or 0)
    assert balance >= 5000
    shot(page, "card")

    # a consumption through the related tab's form: the card is filled in, the clerk's store too
    open_tab(page, "card_consumption")
    with page.expect_navigation():
        page.click("[data-test=new-related]")
    assert page.url.startswith(base + f"/app/card_consumption/new?card={card}")
    page.fill("#in-items", "补水保湿护理")
    page.fill("#in-amount", "298")
    page.select_option("#in-payment_method", label="Stored value (card balance)")
    shot(page, "consumption-form")
    submit(page, "[data-test=save]")
    assert page.url.startswith(base + f"/app/member_card/{card}?tab=")
    assert any(f.endswith("created.") for f in flashes(page))
    first = page.locator("table[data-test=related] tbody tr").first
    cells = [c.strip() for c in first.locator("td").all_inner_texts()]
    assert "补水保湿护理" in cells
    paid = money(first.locator("td[data-label='Paid from stored value']").inner_text())
    assert Decimal("0") < paid <= Decimal("298")  # less the member's level discount
    shot(page, "consumption-saved")

    open_tab(page, "points_entry")
    assert page.locator("table[data-test=related] tbody tr").first.locator("td").nth(1).inner_text() == \
        "Earned by a consumption"
    page.goto(base + f"/app/member_card/{card}")
    assert money(field_value(page, "balance")) == balance - paid
    assert int(field_value(page, "points_balance").replace(",", "")) > points
    shot(page, "card-after")

    # more than the card holds: refused beside the payment, nothing saved
    page.goto(base + f"/app/card_consumption/new?card={card}")
    page.fill("#in-items", "抗衰紧致疗程（10次）")
    page.fill("#in-amount", str(balance * 2))
    page.select_option("#in-payment_method", "stored_value")
    submit(page, "[data-test=save]")
    assert "/app/card_consumption/new" in page.url
    error = page.locator(".field[data-field=payment_method] .field-error").inner_text()
    assert "less than the" in error and "recharge first" in error
    shot(page, "overspending-refused")
    page.goto(base + f"/app/member_card/{card}")
    assert money(field_value(page, "balance")) == balance - paid

    # the member: level, segment, balances across cards, history of visits
    with page.expect_navigation():
        page.click("dd[data-field=member] a")
    record_id(page, "customer")
    assert field_value(page, "segment") != "" and field_value(page, "member_level") != ""
    assert money(field_value(page, "stored_value_balance")) >= balance - paid
    shot(page, "member")


def test_a_clerk_cannot_change_a_recorded_consumption_and_the_store_manager_voids_it(
        industry_server: CrmServer, new_page: Any, shot: Shot) -> None:
    base = industry_server.url
    manager, clerk = new_page(), new_page()
    sign_in(manager, base, "storemgr1", "demo-storemgr1")
    sign_in(clerk, base, "clerk1", "demo-clerk1")

    # the store manager records a consumption paid in cash on one of the store's active cards
    manager.goto(base + "/app/member_card?view=my_store&filter=status+eq+active")
    with manager.expect_navigation():
        manager.locator("table[data-test=list] tbody tr a[href^='/app/member_card/']").first.click()
    card = record_id(manager, "member_card")
    balance = field_value(manager, "balance")
    points = field_value(manager, "points_balance")
    manager.goto(base + f"/app/card_consumption/new?card={card}")
    manager.fill("#in-items", "手部护理")
    manager.fill("#in-amount", "128")
    manager.select_option("#in-payment_method", "cash")
    submit(manager, "[data-test=save]")
    consumption = record_id(manager, "card_consumption")
    assert field_value(manager, "points_earned") not in ("", "0")

    # the clerk sees it (their store's) but may neither edit nor void it
    clerk.goto(base + f"/app/card_consumption/{consumption}")
    assert field_value(clerk, "items") == "手部护理"
    assert clerk.locator("[data-test=edit]").count() == 0
    assert clerk.locator("[data-test=action-void]").count() == 0
    shot(clerk, "clerk-sees-consumption")
    clerk.goto(base + f"/app/member_card/{card}")
    assert clerk.locator("[data-test=edit]").count() == 0  # nor the card and its balances

    # the manager voids it with a reason: the points go back, the card is as before
    with manager.expect_navigation():
        manager.click("[data-test=action-void]")
    manager.fill("#in-reason", "收银录错，顾客未消费")
    shot(manager, "void-form")
    submit(manager, "[data-test=run-action]")
    assert any("voided" in f for f in flashes(manager))
    manager.goto(base + f"/app/card_consumption/{consumption}")
    assert field_value(manager, "status") == "Voided"
    assert field_value(manager, "void_reason") == "收银录错，顾客未消费"
    shot(manager, "voided")
    manager.goto(base + f"/app/member_card/{card}")
    assert field_value(manager, "balance") == balance and field_value(manager, "points_balance") == points
