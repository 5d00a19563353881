"""Demo data of the project sales pack (`crm demo --pack project_sales`).

Builds on the standard demo: its project-like opportunities (automation retrofits, equipment
networking, MES, power distribution, inspection systems) become projects with tender data, bid
bonds, a stage plan (some stages overdue), the customer's decision chain (new contacts where the
customer has too few), competitive analyses and tasks delegated to pre-sales and service; won and
lost ones get their contract data and project summary. Two pre-sales engineers sign in as
`presales1` / `presales2` (password `demo-<username>`).

Records go through `demo.create`, so the pack's hooks run as for a user's input (owners, shares,
names, stage plan status). Everything comes from `demo.rng`, so a seed gives the same data; dates
are relative to `demo.today`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.runtime.query import ListQuery

MAX_PROJECTS = 36
SALES_USERS = ("sales1", "sales2", "manager")

# (opportunity name ending, project type, task types that fit it)
PROJECTS = (
    ("产线自动化改造项目", "upgrade_retrofit"),
    ("设备联网与数据采集项目", "system_integration"),
    ("MES系统实施项目", "software_implementation"),
    ("新厂房配电工程", "supply_and_install"),
    ("移动巡检系统采购", "equipment_supply"),
)
PROCUREMENT = (("public_tender", 35), ("invited_tender", 20), ("competitive_negotiation", 15),
               ("competitive_consultation", 10), ("inquiry", 5), ("single_source", 5), ("direct_purchase", 10))
TENDERED = ("public_tender", "invited_tender", "competitive_negotiation", "competitive_consultation")
DESIGN_INSTITUTES = ("中国电子工程设计院有限公司", "机械工业第六设计研究院有限公司", "华东建筑设计研究院有限公司",
                     "中国联合工程有限公司", "上海市机电设计研究院有限公司", "中国中元国际工程有限公司")
AGENCIES = (("江苏省设备成套股份有限公司", "JSSB"), ("中化建国际招标有限责任公司", "ZHJ"),
            ("上海机电设备招标有限公司", "SHJD"), ("北京国际招标有限公司", "BJGZ"), ("浙江省成套招标代理有限公司", "ZJCT"))
PARTNERS = ("本地系统集成商", "省级总代理", "原厂直销", "设计院推荐的集成商", "区域工程公司")

# The customer's people of a project, top-down: (job title, department, decision role, influence,
# index of the person they report to (None: the top))
CHAIN = (
    ("总经理", "总经办", "decision_maker", "high", None),
    ("分管副总", "总经办", "decision_maker", "high", 0),
    ("技术总监", "技术部", "technical_evaluator", "high", 1),
    ("采购经理", "采购部", "purchaser", "medium", 1),
    ("财务总监", "财务部", "finance", "medium", 0),
    ("设备部部长", "设备部", "user", "medium", 2),
    ("项目经理", "工程部", "coach", "medium", 2),
)
CONCERNS = {
    "decision_maker": "投资回报周期、项目风险，以及对产能和良率的实际提升。",
    "technical_evaluator": "系统稳定性、与现有设备和系统的兼容性，技术参数是否满足招标文件。",
    "purchaser": "价格、付款条件、供应商资质与合规流程。",
    "finance": "预算控制、付款节点、发票与税率。",
    "user": "操作是否简便、停机切换时间、培训与售后响应速度。",
    "coach": "希望项目按期上线，借此在公司内部做出成绩。",
}
APPROACHES = {
    "decision_maker": "安排公司高层拜访，邀请参观同行业标杆案例。",
    "technical_evaluator": "组织技术交流和方案答疑，提供测试报告与POC。",
    "purchaser": "提前沟通商务条款，准备完整资质文件。",
    "finance": "提供分期付款方案，说明总拥有成本。",
    "user": "安排现场演示和操作培训，收集使用意见写进方案。",
    "coach": "保持每周沟通，及时获取项目内部进展和竞争对手动向。",
}
ATTITUDES = (("supporter", 30), ("neutral", 35), ("skeptic", 18), ("opponent", 10), ("unknown", 7))  # a coach: champion
RELATIONSHIPS = (("none", 10), ("acquainted", 30), ("recognised", 30), ("trusted", 20), ("ally", 10))
# how close we are to someone, by their attitude
CLOSENESS = {"champion": (("trusted", 40), ("ally", 60)), "supporter": (("recognised", 50), ("trusted", 40), ("ally", 10)),
             "neutral": (("acquainted", 50), ("recognised", 50)), "skeptic": (("none", 30), ("acquainted", 70)),
             "opponent": (("none", 50), ("acquainted", 50)), "unknown": (("none", 100),)}
STRATEGIES = ("突出本地化服务和交付周期优势，强调同行业成功案例。",
              "通过技术交流引导招标参数向我方优势倾斜。",
              "报价上保持合理利润，用分期付款和延长质保应对价格战。",
              "联合设计院做方案背书，弱化对手的价格优势。")

# Tasks per stage: (task type, subject, who does it)
TASKS = {
    "initial_contact": (("site_survey", "现场勘察与需求摸底", "service1"),),
    "needs_analysis": (("technical_evaluation", "技术可行性评估", "presales1"),
                       ("site_survey", "现场勘察，确认设备清单", "service1")),
    "proposal": (("solution_design", "编制技术方案", "presales2"), ("cost_estimate", "成本测算与报价支持", "presales1"),
                 ("demo_poc", "客户现场产品演示", "presales1")),
    "bidding": (("bid_document", "编制投标技术文件", "presales2"), ("qualification_docs", "准备资质证明与业绩材料", "presales1")),
    "negotiation": (("contract_review", "合同条款评审", "manager"), ("delivery_plan", "编制交付实施计划", "service1")),
}
RESULTS = ("已完成并提交，详见附件。", "方案已与客户技术部确认。", "评估结论：技术上可行，需增加两台网关。",
           "资料已整理齐全，已发销售。")
SUMMARIES_WON = ("前期与技术部建立了信任，技术方案获得评审第一；商务上分期付款打动了财务。",
                 "设计院推荐我方方案，招标参数对我方有利；现场演示效果好，用户部门全力支持。")
SUMMARIES_LOST = ("对手报价低 15%，我方在价格分上落后；高层关系覆盖不足，未能影响最终决策。",
                  "招标参数偏向对手产品，前期介入太晚；技术交流只覆盖了设备部，未接触到分管副总。")
LESSONS = ("尽早介入设计院和技术规范编写；决策链要覆盖到分管领导。",
           "投标前做一次完整的竞争分析和报价演练；保证金要在开标后一个月内跟进退还。")

# stage -> (goal, deliverables)
STAGE_GOALS = {
    "initial_contact": ("摸清项目背景，确认立项与预算来源", "客户基本信息、项目立项情况"),
    "needs_analysis": ("完成需求调研，确认技术路线", "需求调研报告"),
    "proposal": ("技术方案获得客户技术部认可", "技术方案、初步报价"),
    "bidding": ("按时递交投标文件，力争技术分第一", "投标文件、保证金缴纳凭证"),
    "negotiation": ("谈定价格与付款条件，签订合同", "合同草案、商务条款确认"),
}

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚"
GIVEN = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆旭宁峰毅振海志建文亮东芳娜敏静丽艳娟霞婷雪琳洁颖倩慧"


def money(value: Decimal | float | int, step: int = 1) -> Decimal:
    """A whole amount of `step` yuan (e.g. 10000: rounded to ten thousand)."""
    return (Decimal(str(value)) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step


def weighted(rng: Any, choices: tuple[tuple[str, int], ...]) -> str:
    return str(rng.choices([c for c, _ in choices], [w for _, w in choices])[0])


def generate(demo: Any) -> None:
    rng = demo.rng
    presales = presales_team(demo)
    people = {name: demo.user_id(name) for name in SALES_USERS + ("service1",)} | presales
    owners = [uid for name in SALES_USERS if (uid := people.get(name)) is not None]
    if not owners:
        return
    projects = []
    for opp in demo.records.query("opportunity", query(f"owner in {','.join(map(str, owners))}")).rows:
        kind = next((k for ending, k in PROJECTS if opp["name"].endswith(ending)), None)
        if kind is not None:
            projects.append((opp, kind))
    # sales1's projects first, so that the first salesperson's screens always have some
    projects.sort(key=lambda p: (p[0]["owner"] != people.get("sales1"), p[0]["id"]))
    competitors = demo.ids("competitor")
    for n, (opp, kind) in enumerate(projects[:MAX_PROJECTS]):
        opp = project_data(demo, opp, kind, first=n == 0)
        stage_plan(demo, opp, overdue=n < 3 or rng.random() < 0.35)
        decision_chain(demo, opp)
        if competitors:
            competition(demo, opp, competitors)
        tasks(demo, opp, people, first=n == 0)
        team(demo, opp, people)


def query(*filters: str) -> ListQuery:
    return ListQuery(filters=list(filters), sort=["id"], limit=500, count=False)


def presales_team(demo: Any) -> dict[str, int]:
    """The pre-sales department (under head office) and its two engineers."""
    if not demo.ids("department", "code eq PRESALES", limit=1):
        parent = demo.ids("department", "code eq HQ", limit=1)
        demo.create("department", {"name": "售前技术部", "code": "PRESALES", "parent": parent[0] if parent else None,
                                   "phone": "021-6085 3300"})
    return {
        "presales1": demo.user("presales1", "周磊", ["presales_engineer"], "PRESALES", "售前工程师"),
        "presales2": demo.user("presales2", "吴婷", ["presales_engineer"], "PRESALES", "解决方案架构师"),
    }


def stage_keys(demo: Any) -> list[str]:
    """The opportunity's open stages that a stage plan can name, in pipeline order."""
    registry = demo.runtime.registry
    plan = registry.entity("opportunity_stage_plan").field("stage").picklist
    keys = {o.key for o in plan.options if o.active} if plan is not None else set()
    return [s.key for s in registry.entity("opportunity").field("stage").stages if s.outcome is None and s.key in keys]


def project_data(demo: Any, opp: dict[str, Any], kind: str, first: bool) -> dict[str, Any]:
    """Project, tender, bond, contract and summary fields; some proposals go out to tender."""
    rng, today = demo.rng, demo.today
    stage = opp["stage"]
    amount = Decimal(opp.get("amount") or rng.randint(30, 300) * 10000)
    close = opp.get("expected_close_date") or today + timedelta(days=60)
    method = weighted(rng, PROCUREMENT)
    order = stage_keys(demo)
    at = order.index(stage) if stage in order else len(order)
    values: dict[str, Any] = {
        "project_type": kind, "procurement_method": method,
        "project_budget": money(amount * Decimal(str(rng.uniform(1.05, 1.3))), 10000),
        "funding_status": ("not_approved" if at == 0 else "approval_pending" if at == 1
                           else rng.choice(("approved", "funded"))),
    }
    if kind in ("supply_and_install", "upgrade_retrofit", "system_integration") and rng.random() < 0.6:
        values["design_institute"] = rng.choice(DESIGN_INSTITUTES)
    # Tendered projects: those still before the tender may have it published now (stage bidding,
    # deadline ahead); later ones went through it (deadline past).
    if "bidding" in order:
        before = at < order.index("bidding")
        if first:
            method = values["procurement_method"] = "public_tender"
        if method in TENDERED and before and (first or (stage != "initial_contact" and
                                                        rng.random() < (0.7 if stage == "proposal" else 0.4))):
            stage = "bidding"
    tendered = method in TENDERED and stage not in order[:order.index("bidding")] if "bidding" in order else False
    if tendered:
        agency, code = rng.choice(AGENCIES)
        closed = stage != "bidding"  # the tender is over
        deadline = (datetime.combine(min(close, today) - timedelta(days=rng.randint(15, 40)), time(9, 30)) if closed
                    else datetime.combine(today + timedelta(days=rng.randint(3, 13)), time(rng.choice((9, 10, 14)), 30)))
        bond = min(money(values["project_budget"] * Decimal("0.02"), 1000), Decimal(800000))
        values |= {
            "tender_no": f"{code}-{deadline.year}{rng.randint(1, 9999):04d}", "tender_agency": agency,
            "tender_published_on": deadline.date() - timedelta(days=rng.randint(20, 30)), "bid_deadline": deadline,
            "bid_bond": bond, "bid_bond_paid_on": deadline.date() - timedelta(days=rng.randint(2, 7)),
            "bid_result": ("won" if stage == "won" else rng.choice(("lost", "lost", "failed")) if stage == "lost"
                           else rng.choice(("shortlisted", "won")) if closed else "pending"),
        }
        if closed and (today - deadline.date()).days > 25 and rng.random() < 0.6:
            values["bid_bond_returned_on"] = deadline.date() + timedelta(days=rng.randint(10, 25))
    if stage == "won":
        signed = min(close, today)
        planned = signed + timedelta(days=rng.randint(60, 150))
        values |= {"contract_amount": money(amount * Decimal(str(rng.uniform(0.95, 1.0))), 100),
                   "contract_signed_on": signed, "planned_delivery": planned,
                   "actual_delivery": planned + timedelta(days=rng.randint(-5, 20)) if planned < today - timedelta(days=20)
                   else None,
                   "win_loss_factors": rng.sample(["technical_solution", "customer_relationship", "decision_chain",
                                                   "brand_references", "service_capability"], 2),
                   "close_summary": rng.choice(SUMMARIES_WON), "lessons_learned": rng.choice(LESSONS)}
    elif stage == "lost":
        values |= {"win_loss_factors": rng.sample(["price", "decision_chain", "product_fit", "customer_relationship"], 2),
                   "close_summary": rng.choice(SUMMARIES_LOST), "lessons_learned": rng.choice(LESSONS)}
    elif stage != opp["stage"]:
        values["stage"] = stage
    return demo.records.update("opportunity", opp["id"], values, opp["version"])


def stage_plan(demo: Any, opp: dict[str, Any], overdue: bool) -> None:
    """The plan of every open stage: finished ones with their actual dates, the current one in
    progress (past its planned end when `overdue`), later ones not started; lost: the rest skipped."""
    rng, today = demo.rng, demo.today
    keys = stage_keys(demo)
    if not keys:
        return
    stage = opp["stage"]
    at = keys.index(stage) if stage in keys else len(keys)
    step = rng.randint(14, 35)  # days a stage is planned to take
    if stage in keys:  # open: the current stage's window holds today, or ended a few days ago
        current = (today - timedelta(days=rng.randint(2, 12) + step - 1) if overdue
                   else today - timedelta(days=rng.randint(0, step - 3)))
        start = current - timedelta(days=step * at)
    else:
        end = min(opp.get("expected_close_date") or today, today)
        start = end - timedelta(days=step * len(keys))
    previous_end: date | None = None
    lost_at = rng.randint(1, len(keys) - 1) if stage == "lost" else None
    for i, key in enumerate(keys):
        planned_start = start + timedelta(days=i * step)
        planned_end = planned_start + timedelta(days=step - 1)
        row: dict[str, Any] = {"opportunity": opp["id"], "stage": key, "planned_start": planned_start,
                               "planned_end": planned_end}
        finished = i < at if stage != "lost" else i < (lost_at or 0)
        if finished:
            actual_end = min(planned_end + timedelta(days=rng.choice((-3, 0, 2, 5, 9))), today - timedelta(days=1))
            row |= {"status": "done", "actual_start": previous_end or planned_start, "actual_end": actual_end}
            previous_end = actual_end
        elif i == at and stage not in ("won", "lost"):
            row |= {"status": "in_progress", "actual_start": previous_end or planned_start}
        elif stage == "lost":
            row["status"] = "skipped"
        else:
            row["status"] = "not_started"
        row["name"], row["deliverables"] = STAGE_GOALS.get(key, (None, None))
        demo.create("opportunity_stage_plan", row)


def new_contact(demo: Any, opp: dict[str, Any], title: str, dept: str, role: str, influence: str) -> int:
    rng = demo.rng
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    mobile = rng.choice(("135", "138", "139", "186", "187", "150", "158")) + f"{rng.randrange(10 ** 8):08d}"
    return int(demo.create("contact", {"customer": opp["customer"], "name": name, "title": title, "department": dept,
                                       "decision_role": role, "influence": influence, "mobile": mobile,
                                       "owner": opp["owner"]})["id"])


def decision_chain(demo: Any, opp: dict[str, Any]) -> None:
    """Four to seven people of the customer, as a tree: the existing contacts take the places
    that fit their role, new contacts fill the others."""
    rng = demo.rng
    existing = demo.records.query("contact", query(f"customer eq {opp['customer']}")).rows
    size = rng.randint(4, len(CHAIN))
    made: list[int] = []
    used: set[int] = set()
    for title, dept, role, influence, boss in CHAIN[:size]:
        # an existing contact takes the place of the same title, or of the same role below the top
        contact = next((c for c in existing if c["id"] not in used and (
            c.get("title") == title or (c.get("decision_role") == role and role != "decision_maker"))), None)
        contact_id = contact["id"] if contact else new_contact(demo, opp, title, dept, role, influence)
        used.add(contact_id)
        attitude = "champion" if role == "coach" else weighted(rng, ATTITUDES)
        row = {"opportunity": opp["id"], "contact": contact_id, "decision_role": role, "influence": influence,
               "attitude": attitude, "relationship": weighted(rng, CLOSENESS[attitude]),
               "reports_to": made[boss] if boss is not None and boss < len(made) else None,
               "concerns": CONCERNS.get(role), "approach": APPROACHES.get(role)}
        if contact is None:
            row["job_title"] = title
        made.append(int(demo.create("decision_maker", row)["id"]))


def competition(demo: Any, opp: dict[str, Any], competitors: list[int]) -> None:
    rng = demo.rng
    amount = Decimal(opp.get("amount") or 1000000)
    for n, competitor in enumerate(rng.sample(competitors, min(len(competitors), rng.randint(1, 3)))):
        threat = "high" if n == 0 and rng.random() < 0.6 else rng.choice(("medium", "low", "medium"))
        demo.create("opportunity_competitor", {
            "opportunity": opp["id"], "competitor": competitor, "local_partner": rng.choice(PARTNERS),
            "offered_solution": rng.choice(("同档次国产方案", "进口品牌方案，配置略高", "低配方案，以价格取胜", "软硬件一体化打包方案")),
            "quoted_price": money(amount * Decimal(str(rng.uniform(0.82, 1.12))), 1000),
            "threat_level": threat, "customer_relationship": weighted(rng, RELATIONSHIPS),
            "strengths": rng.choice(("与客户设备部关系好", "报价低", "有同行业大型案例", "交期短")),
            "weaknesses": rng.choice(("本地无服务团队", "软件二次开发能力弱", "过往项目有延期记录", "售后响应慢")),
            "our_strategy": rng.choice(STRATEGIES),
        })


def tasks(demo: Any, opp: dict[str, Any], people: dict[str, int | None], first: bool) -> None:
    """Work delegated in the stages the project went through: done ones, and open ones in the
    current stage (some overdue)."""
    rng, today = demo.rng, demo.today
    keys = stage_keys(demo)
    stage = opp["stage"]
    at = keys.index(stage) if stage in keys else len(keys)
    for i, key in enumerate(keys[:at + 1]):
        current = i == at and stage in keys
        if not current and rng.random() < 0.5:
            continue
        options = TASKS.get(key, ())
        for task_type, subject, who in rng.sample(options, min(len(options), 1 if not current else 2)):
            assignee = people.get(who)
            if assignee is None or assignee == opp["owner"]:
                continue
            if current:
                late = first or rng.random() < 0.35
                due = today - timedelta(days=rng.randint(1, 8)) if late else today + timedelta(days=rng.randint(2, 15))
                status = rng.choice(("pending", "in_progress")) if not first else "in_progress"
                result = None
            else:
                due = today - timedelta(days=rng.randint(20, 90) * (at - i))
                status, result = "done", rng.choice(RESULTS)
            row = {"subject": subject, "opportunity": opp["id"], "task_type": task_type, "assigned_to": assignee,
                   "due_date": due, "status": status, "result": result, "owner": opp["owner"],
                   "priority": "high" if current and key == "bidding" else "normal",
                   "description": f"{opp['name']}：{subject}，请在要求日期前完成。"}
            if status == "done":
                row["completed_on"] = due - timedelta(days=rng.randint(0, 3))
            demo.create("project_task", {k: v for k, v in row.items() if v is not None})


def team(demo: Any, opp: dict[str, Any], people: dict[str, int | None]) -> None:
    """The pre-sales engineer joins bigger projects' team (with read access to the opportunity)."""
    engineer = people.get(demo.rng.choice(("presales1", "presales2")))
    if engineer is None or Decimal(opp.get("amount") or 0) < 200000:
        return
    demo.create("opportunity_member", {"opportunity": opp["id"], "user": engineer, "role": "presales",
                                       "responsibility": "技术方案与投标技术文件", "access": "read", "owner": opp["owner"]})
