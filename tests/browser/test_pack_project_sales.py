"""The project sales pack in a real browser, on the industry server (the standard demo with the
industry packs installed and their demo data): a pre-sales engineer's day (tasks assigned to
them, an opportunity's decision chain and its overdue stage, delegating a site survey through a
form), and a salesperson closing a project (the summary is required)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from tests.browser.conftest import Shot
from tests.browser.pages import field_value, flashes, record_id, sign_in, submit, unique
from tests.browser.server import CrmServer


def open_tab(page: Any, entity: str) -> None:
    with page.expect_navigation():
        page.click(f"[data-test=tab-{entity}]")


def test_a_presales_engineer_works_a_project(industry_server: CrmServer, page: Any, shot: Shot) -> None:
    base = industry_server.url
    sign_in(page, base, "presales1", "demo-presales1")
    assert "Tasks assigned to me" in page.inner_text("main")
    shot(page, "home")

    # the tasks assigned to them, overdue ones marked
    page.goto(base + "/app/project_task?view=assigned_to_me")
    rows = page.locator("table[data-test=list] tbody tr")
    assert rows.count() > 0
    assert page.locator("table[data-test=list] tbody tr.highlight").count() > 0
    shot(page, "my-tasks")

    # work the overdue one: in progress, with a first result
    with page.expect_navigation():
        page.locator("table[data-test=list] tbody tr.highlight a[href^='/app/project_task/']").first.click()
    task = record_id(page, "project_task")
    with page.expect_navigation():
        page.click("[data-test=edit]")
    page.select_option("#in-status", "in_progress")
    page.fill("#in-result", "已完成初稿，待内部评审。\n评审后发送销售。")
    submit(page, "[data-test=save]")
    assert record_id(page, "project_task") == task, page.inner_text("main")[:1500]
    assert field_value(page, "status") == "In progress"
    shot(page, "task-worked")

    # an opportunity with an overdue stage: project data, decision chain, stage plan
    page.goto(base + "/app/opportunity_stage_plan?view=overdue")
    first = page.locator("table[data-test=list] tbody tr.highlight").first
    with page.expect_navigation():
        first.locator("a[href^='/app/opportunity_stage_plan/']").first.click()
    shot(page, "stage-plan")
    with page.expect_navigation():
        page.click("dd[data-field=opportunity] a")
    opportunity = record_id(page, "opportunity")
    assert field_value(page, "project_type") != ""
    shot(page, "opportunity")

    open_tab(page, "decision_maker")
    tree = page.locator("table.tree[data-test=related] tbody tr")
    depths = [int(tree.nth(i).get_attribute("data-depth") or 0) for i in range(tree.count())]
    assert depths[0] == 0 and max(depths) >= 1  # bosses first, their reports nested below
    assert page.locator("table.tree .branch").count() == sum(1 for d in depths if d)
    shot(page, "decision-chain")

    open_tab(page, "opportunity_stage_plan")
    assert page.locator("table[data-test=related] tbody tr.highlight").count() >= 1
    shot(page, "stage-plan-tab")

    open_tab(page, "opportunity_competitor")
    shot(page, "competition")

    # delegate a site survey to the service engineer, from the opportunity's task tab
    open_tab(page, "project_task")
    with page.expect_navigation():
        page.click("[data-test=new-related]")
    subject = unique("现场勘察：配电室改造条件")
    page.fill("#in-subject", subject)
    page.select_option("#in-task_type", label="Site survey")
    page.select_option("#in-assigned_to", label="刘洋")
    page.fill("#in-due_date", str(date.today() + timedelta(days=5)))
    page.fill("#in-description", "确认配电室空间、进线位置和停电窗口。")
    shot(page, "task-form")
    submit(page, "[data-test=save]")
    # back on the opportunity's task tab, with the new task in it
    assert record_id(page, "opportunity") == opportunity
    assert any("created" in f for f in flashes(page)), flashes(page)
    shot(page, "task-tab")
    with page.expect_navigation():
        page.click(f"table[data-test=related] a:has-text('{subject}')")
    record_id(page, "project_task")
    assert field_value(page, "department") == "客户服务部"  # the assignee's department
    assert re.match(r"RW\d{6}-\d{4}", field_value(page, "code"))
    shot(page, "task")


def test_closing_a_project_needs_its_summary(industry_server: CrmServer, page: Any, shot: Shot) -> None:
    base = industry_server.url
    sign_in(page, base, "sales1")
    page.goto(base + "/app/opportunity?view=in_tender")
    link = page.locator("table[data-test=list] tbody a[href^='/app/opportunity/']").first
    with page.expect_navigation():
        link.click()
    opportunity = record_id(page, "opportunity")
    shot(page, "in-tender")

    # won without a summary is refused, with the reason
    page.select_option("[data-test=move-stage-stage]", "won")
    submit(page, ".stage-move button[type=submit]")
    text = page.inner_text("main")
    assert "project summary" in text, text[:1500]
    shot(page, "summary-required")

    # the summary and its factors on the form, then the stage
    page.goto(f"{base}/app/opportunity/{opportunity}/edit")
    page.fill("#in-close_summary", "技术方案评分第一，现场演示打动了设备部；商务上接受分期付款。")
    page.check("#in-win_loss_factors input[value=technical_solution]")
    page.check("#in-win_loss_factors input[value=customer_relationship]")
    page.fill("#in-contract_amount", "1150000")
    page.select_option("#in-stage", "won")
    shot(page, "summary-form")
    submit(page, "[data-test=save]")
    assert record_id(page, "opportunity") == opportunity, page.inner_text("main")[:1500]
    assert page.locator("[data-test=stage-path-stage] li.current").inner_text().startswith("Won")
    assert "技术方案评分第一" in field_value(page, "close_summary")
    shot(page, "won")
    open_tab(page, "opportunity_stage_plan")
    assert page.locator("table[data-test=related] tbody tr.highlight").count() == 0  # every stage finished
    shot(page, "plan-done")


def test_the_project_tabs_in_chinese(industry_server: CrmServer, page: Any, shot: Shot) -> None:
    base = industry_server.url
    sign_in(page, base, "manager", language="zh")
    page.goto(base + "/app/opportunity?view=bids_due_soon")
    assert "14天内投标截止" in page.inner_text("main")
    shot(page, "bids-due")
    page.goto(base + "/app/decision_maker")  # the team's decision makers, by opportunity
    with page.expect_navigation():
        page.locator("table[data-test=list] tbody a[href^='/app/decision_maker/']").first.click()
    with page.expect_navigation():
        page.click("dd[data-field=opportunity] a")
    assert "招投标与保证金" in page.inner_text("main")
    open_tab(page, "decision_maker")
    assert page.locator("[data-test=tab-decision_maker]").inner_text().startswith("决策链")
    assert page.locator("table.tree[data-test=related] tbody tr[data-depth='1']").count() >= 1
    shot(page, "decision-chain")
    open_tab(page, "opportunity_stage_plan")
    assert "阶段目标" in page.inner_text("main")
    shot(page, "stage-plan")
