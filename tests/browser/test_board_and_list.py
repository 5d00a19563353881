"""The kanban board (moving a card along the pipeline) and the list (filter bar, sorting)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.browser.conftest import Shot
from tests.browser.pages import (
    column_texts,
    create_customer,
    create_opportunity,
    flashes,
    sign_in,
    submit,
    unique,
)
from tests.browser.server import CrmServer


def test_move_an_opportunity_along_its_pipeline_on_the_board(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "sales2")
    customer = unique("Board Customer")
    create_customer(page, base, customer)
    name = unique("Board deal")
    deal = create_opportunity(page, base, name, customer, amount="88000")
    assert page.locator("[data-test=stage-path-stage] li.current").inner_text().startswith("Initial contact")

    page.goto(base + "/app/opportunity/board")
    card = page.locator(f".board-card[data-id='{deal}']")
    assert card.locator("xpath=ancestor::section").get_attribute("data-stage") == "initial_contact"
    first = page.locator("[data-test=column-initial_contact]")
    second = page.locator("[data-test=column-needs_analysis]")
    counts = int(first.locator(".count").inner_text()), int(second.locator(".count").inner_text())
    shot(page, "board")

    page.select_option(f"[data-test=card-stage-{deal}]", "needs_analysis")
    submit(page, f"[data-test=card-move-{deal}]")

    assert page.url == base + "/app/opportunity/board"
    assert "Moved to Needs analysis." in flashes(page)
    assert second.locator(f".board-card[data-id='{deal}']").count() == 1
    assert first.locator(f".board-card[data-id='{deal}']").count() == 0
    assert int(first.locator(".count").inner_text()) == counts[0] - 1
    assert int(second.locator(".count").inner_text()) == counts[1] + 1
    shot(page, "moved")

    # and on to "Proposal" (which requires an amount, which this deal has)
    page.select_option(f"[data-test=card-stage-{deal}]", "proposal")
    submit(page, f"[data-test=card-move-{deal}]")
    assert page.locator(f"[data-test=column-proposal] .board-card[data-id='{deal}']").count() == 1

    page.goto(f"{base}/app/opportunity/{deal}")
    path = page.locator("[data-test=stage-path-stage]")
    assert path.locator("li.current").inner_text().startswith("Proposal / quote")
    assert path.locator("li.done").count() == 2
    shot(page, "detail")


def test_a_stage_rule_is_enforced_on_the_board(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "sales2")
    customer = unique("Rule Customer")
    create_customer(page, base, customer)
    deal = create_opportunity(page, base, unique("No amount deal"), customer)

    page.goto(base + "/app/opportunity/board")
    page.select_option(f"[data-test=card-stage-{deal}]", "proposal")  # requires an amount
    submit(page, f"[data-test=card-move-{deal}]")
    assert page.locator(".flash-error").count() == 1
    assert page.locator(f"[data-test=column-initial_contact] .board-card[data-id='{deal}']").count() == 1
    shot(page, "refused")


def test_filter_and_sort_a_list(crm_server: CrmServer, page: Any, shot: Shot) -> None:
    base = crm_server.url
    sign_in(page, base, "sales1")
    page.goto(base + "/app/customer")
    total = int(page.locator("[data-test=total]").inner_text())
    types = column_texts(page, "Customer type")
    assert total >= 5 and len(types) == total
    wanted = types[0]
    shot(page, "all")

    page.select_option("[data-test=filter-customer_type]", label=wanted)
    submit(page, "[data-test=apply-filters]")
    query = parse_qs(urlparse(page.url).query)
    assert len(query["f.customer_type"]) == 1
    filtered = column_texts(page, "Customer type")
    assert filtered and set(filtered) == {wanted}
    assert len(filtered) == types.count(wanted)
    assert int(page.locator("[data-test=total]").inner_text()) == len(filtered)
    assert page.locator("[data-test=filter-customer_type] option:checked").inner_text() == wanted
    shot(page, "filtered")

    # click the "Customer code" header: ascending, then again: descending; the filter stays
    page.click("[data-test=sort-code]")
    page.wait_for_url("**sort=code**")
    codes = column_texts(page, "Customer code")
    assert len(codes) == len(filtered) and codes == sorted(codes)
    assert "sorted-asc" in (page.locator("th:has([data-test=sort-code])").get_attribute("class") or "")
    assert set(column_texts(page, "Customer type")) == {wanted}
    shot(page, "sorted-ascending")

    page.click("[data-test=sort-code]")
    page.wait_for_url("**sort=-code**")
    assert column_texts(page, "Customer code") == sorted(codes, reverse=True)
    shot(page, "sorted-descending")

    # the search box of the filter bar narrows to one customer
    name = column_texts(page, "Customer name")[0]
    page.fill("[data-test=list-search]", name)
    submit(page, "[data-test=apply-filters]")
    assert name in column_texts(page, "Customer name")
    assert column_texts(page, "Customer code") == sorted(column_texts(page, "Customer code"), reverse=True)
    shot(page, "searched")
