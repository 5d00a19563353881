"""Behaviours of the project sales pack: what its YAML cannot declare.

docs/packs/project_sales.md describes each one for administrators:

1. closing an opportunity (won or lost) needs a project summary and its key factors;
2. stage plans: generated for new opportunities (and by an action), kept in step with the
   opportunity's stage, one row per stage, dates and status consistent;
3. decision makers: name and defaults from the contact, one row per contact, and `reports_to`
   stays inside the opportunity without loops (the decision tree);
4. competitive analysis: one row per competitor and opportunity;
5. the records of an opportunity (decision makers, analyses, stage plans) belong to its owner and
   move with it; only someone who may edit the opportunity adds them;
6. delegated tasks: shared with the assignee (and the opportunity, to read), who may only work
   the task (status, result, deliverable); department and completion date kept;
7. team members get the opportunity shared at their access level;
8. bid bond bookkeeping.

Everything here uses the plugin API (engine.plugins, the record service reached through
`ctx.records`, ListQuery), except `may()`: the plugin API has no public "may this user do that to
this record?" yet, so it asks the runtime's access rules as the standard pack's hooks do.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from engine.plugins import ActionContext, HookContext, action, hook
from engine.runtime.query import ListQuery

CHILDREN = ("decision_maker", "opportunity_competitor", "opportunity_stage_plan")  # owned as the opportunity
OPEN_PLAN = ("not_started", "in_progress")
OPEN_TASK = ("pending", "in_progress")
ASSIGNEE_MAY_CHANGE = frozenset(("status", "result", "deliverable"))
ACCESS_RANK = {None: 0, "read": 1, "edit": 2}

# -- helpers ------------------------------------------------------------------------------------------


def today(ctx: Any) -> date:
    return ctx.records.runtime.now().date()


def rows(ctx: Any, entity: str, *filters: str, sort: tuple[str, ...] = ("id",)) -> list[dict[str, Any]]:
    """Every live record matching `filters` (as the system: hooks maintain what users cannot see)."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = ctx.records.query(entity, ListQuery(filters=list(filters), sort=list(sort), limit=500, count=False,
                                                   cursor=cursor, titles=()))
        found += page.rows
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def fetch(ctx: Any, entity: str, record_id: Any) -> dict[str, Any] | None:
    """A live record by id, or None. (A query without titles: `get` joins the title of every
    referenced record, which hooks do not need.)"""
    if record_id is None:
        return None
    found = ctx.records.query(entity, ListQuery(filters=[f"id eq {int(record_id)}"], limit=1, count=False, titles=())).rows
    return found[0] if found else None


def may(ctx: Any, entity: str, action_key: str, record: dict[str, Any] | None, *, shares: bool = True) -> bool:
    """May the acting user do `action_key` on `record` by their roles (and, with `shares`, what is
    shared with them)? The system (demo data, jobs, other hooks) may do everything."""
    if ctx.actor.is_system or ctx.actor.user_id is None:
        return True
    if shares:
        return bool(ctx.may(entity, action_key, record))
    return ctx.records.runtime.access.allows(ctx.actor, ctx.records.registry.entity(entity), action_key, record)


def option_label(ctx: Any, entity: str, field: str, key: str | None) -> str:
    """An option's label in the acting user's language (Chinese when they have none)."""
    f = ctx.records.registry.entity(entity).field(field)
    option = f.picklist.option(key) if f.picklist is not None and key else None
    if option is None:
        return key or ""
    language = ctx.actor.language if ctx.actor.language in option.label else "zh"
    return str(option.label[language])


def update_if_changed(ctx: Any, entity: str, record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Write only the values that differ (an update that changes nothing writes no history)."""
    changes = {k: v for k, v in changes.items() if record.get(k) != v}
    if not changes:
        return record
    return ctx.records.update(entity, record["id"], changes, record["version"])


def share_level(ctx: Any, entity: str, record_id: int, user_id: int) -> str | None:
    return next((s["access"] for s in ctx.records.shares(entity, record_id) if s["user_id"] == user_id), None)


def set_share(ctx: Any, entity: str, record: dict[str, Any], user_id: int | None, level: str | None) -> None:
    """Make `user_id`'s share on the record `level` (None: no share); nothing for its owner."""
    if user_id is None or user_id == record.get("owner"):
        return
    current = share_level(ctx, entity, record["id"], user_id)
    if current == level:
        return
    if level is None:
        ctx.records.unshare(entity, record["id"], user_id)
    else:
        ctx.records.share(entity, record["id"], user_id, level)


# -- 1. project summary at close ------------------------------------------------------------------------


@hook("opportunity", "before_stage_change")
def summary_before_closing(ctx: HookContext) -> None:
    """Entering a won or lost stage needs a project summary and at least one key factor (setting
    `project_summary_required`)."""
    if ctx.stage_field != "stage":
        return
    stage = ctx.entity.field("stage").stage(ctx.record.get("stage"))
    if stage is None or stage.outcome is None or not ctx.setting("project_summary_required"):
        return
    if not (ctx.record.get("close_summary") or "").strip():
        ctx.reject(ctx.message("summary_required", stage=stage.label.get("en", stage.key)), field="close_summary")
    if not ctx.record.get("win_loss_factors"):
        ctx.reject(ctx.message("factors_required"), field="win_loss_factors")


# -- 8. bid bond bookkeeping ----------------------------------------------------------------------------------


@hook("opportunity", "before_validate")
def bid_bond_bookkeeping(ctx: HookContext) -> None:
    """A return date marks the bond returned; marking it returned dates it today; a bond cannot
    come back before it was paid."""
    record = ctx.record
    if record.get("bid_bond_returned") is None:
        record["bid_bond_returned"] = False  # opportunities from before the pack was installed
    if record.get("bid_bond_returned_on") and not record.get("bid_bond_returned"):
        if ctx.changed("bid_bond_returned_on"):
            record["bid_bond_returned"] = True
        else:  # unticked: the return date goes with it
            record["bid_bond_returned_on"] = None
    if record.get("bid_bond_returned") and not record.get("bid_bond_returned_on"):
        record["bid_bond_returned_on"] = today(ctx)
    paid, returned = record.get("bid_bond_paid_on"), record.get("bid_bond_returned_on")
    if isinstance(paid, date) and isinstance(returned, date) and returned < paid:
        ctx.reject(ctx.message("bond_returned_before_paid"), field="bid_bond_returned_on")


# -- 2. stage plans --------------------------------------------------------------------------------------------


def open_stages(ctx: Any) -> list[Any]:
    """The opportunity pipeline's stages without an outcome that a plan can name, in order."""
    plan_stages = ctx.records.registry.entity("opportunity_stage_plan").field("stage").picklist
    keys = {o.key for o in plan_stages.options if o.active} if plan_stages is not None else set()
    return [s for s in ctx.records.registry.entity("opportunity").field("stage").stages
            if s.outcome is None and s.key in keys]


def generate_stage_plan(ctx: Any, opportunity: dict[str, Any]) -> int:
    """Plan rows for the opportunity's current stage and every later open stage that has none,
    their dates spread evenly from today to the expected close date (30 days a stage without
    one). Returns how many rows it created."""
    stages = open_stages(ctx)
    keys = [s.key for s in stages]
    if opportunity.get("stage") not in keys:
        return 0
    stages = stages[keys.index(opportunity["stage"]):]
    have = {r["stage"] for r in rows(ctx, "opportunity_stage_plan", f"opportunity eq {opportunity['id']}")}
    start = today(ctx)
    close = opportunity.get("expected_close_date")
    days = (close - start).days if isinstance(close, date) and close > start else 30 * len(stages)
    step = max(days / len(stages), 1)
    made = 0
    for i, stage in enumerate(stages):
        planned_start = start + timedelta(days=round(i * step))
        planned_end = max(start + timedelta(days=round((i + 1) * step)) - timedelta(days=1), planned_start)
        if stage.key in have:
            continue
        ctx.records.create("opportunity_stage_plan", {
            "opportunity": opportunity["id"], "stage": stage.key, "planned_start": planned_start,
            "planned_end": planned_end, "status": "in_progress" if i == 0 else "not_started",
            "responsible": opportunity.get("owner"), "owner": opportunity.get("owner"),
        })
        made += 1
    return made


@hook("opportunity", "after_save")
def new_opportunity_gets_a_plan(ctx: HookContext) -> None:
    if ctx.is_new and ctx.record.get("expected_close_date") and ctx.setting("stage_plan_auto"):
        generate_stage_plan(ctx, ctx.record)


@action("opportunity", "generate_stage_plan")
def generate_stage_plan_action(ctx: ActionContext) -> None:
    made = generate_stage_plan(ctx, ctx.record)
    ctx.done(ctx.message("stage_plan_generated", count=made) if made else ctx.message("stage_plan_complete"))


@hook("opportunity", "after_stage_change")
def stage_plan_follows_the_stage(ctx: HookContext) -> None:
    """Moving to a stage finishes the plan rows of the stages before it and starts its own; won
    finishes every open row, lost skips them."""
    if ctx.stage_field != "stage":
        return
    stage = ctx.entity.field("stage").stage(ctx.record.get("stage"))
    if stage is None:
        return
    order = [s.key for s in ctx.entity.field("stage").stages if s.outcome is None]
    day = today(ctx)
    for row in rows(ctx, "opportunity_stage_plan", f"opportunity eq {ctx.record['id']}"):
        changes: dict[str, Any] = {}
        is_open = row["status"] in OPEN_PLAN
        if stage.outcome == "won" and is_open:
            changes = {"status": "done", "actual_end": row.get("actual_end") or day}
        elif stage.outcome == "lost" and is_open:
            changes = {"status": "skipped"}
        elif stage.outcome is None and row["stage"] in order:
            here, there = order.index(row["stage"]), order.index(stage.key)
            if here < there and is_open:
                changes = {"status": "done", "actual_end": row.get("actual_end") or day}
            elif here == there and row["status"] != "in_progress":
                changes = {"status": "in_progress", "actual_start": row.get("actual_start") or day, "actual_end": None}
        if changes:
            update_if_changed(ctx, "opportunity_stage_plan", row, changes)


@hook("opportunity_stage_plan", "before_validate")
def stage_plan_rules(ctx: HookContext) -> None:
    """Goal and responsible default to the stage's name and the opportunity's owner; one row per
    stage; the planned end not before the planned start; status and actual dates agree."""
    record = ctx.record
    if not record.get("name") and record.get("stage"):
        record["name"] = option_label(ctx, "opportunity_stage_plan", "stage", record["stage"])
    if record.get("opportunity") and (ctx.is_new or ctx.changed("stage")):
        same = [f"opportunity eq {record['opportunity']}", f"stage eq {record.get('stage')}"]
        if not ctx.is_new:
            same.append(f"id ne {record['id']}")
        if record.get("stage") and rows(ctx, "opportunity_stage_plan", *same):
            ctx.reject(ctx.message("stage_planned_twice"), field="stage")
    start, end = record.get("planned_start"), record.get("planned_end")
    if isinstance(start, date) and isinstance(end, date) and end < start:
        ctx.reject(ctx.message("plan_ends_before_start"), field="planned_end")
    if ctx.changed("actual_end") and record.get("actual_end") and record.get("status") in OPEN_PLAN:
        record["status"] = "done"
    if record.get("status") == "done" and not record.get("actual_end"):
        record["actual_end"] = today(ctx)
    elif record.get("status") in OPEN_PLAN and ctx.changed("status") and not ctx.changed("actual_end"):
        record["actual_end"] = None  # reopened
    if record.get("status") == "in_progress" and not record.get("actual_start"):
        record["actual_start"] = today(ctx)


@hook("opportunity_stage_plan", "after_save")
def responsible_works_the_stage(ctx: HookContext) -> None:
    """The responsible person (when not the owner) may edit the stage: it is shared with them."""
    if not (ctx.is_new or ctx.changed("responsible") or ctx.changed("owner")):
        return
    old = ctx.old.get("responsible") if ctx.old else None
    if old is not None and old != ctx.record.get("responsible"):
        set_share(ctx, "opportunity_stage_plan", ctx.record, old, None)
    set_share(ctx, "opportunity_stage_plan", ctx.record, ctx.record.get("responsible"), "edit")


# -- 5. records of an opportunity belong to its owner -------------------------------------------------------


@hook("decision_maker", "before_validate")
@hook("opportunity_competitor", "before_validate")
@hook("opportunity_stage_plan", "before_validate")
def belongs_to_the_opportunity(ctx: HookContext) -> None:
    """Only someone who may edit the opportunity adds these records; they are owned by the
    opportunity's owner (and move with it); they never move to another opportunity."""
    record = ctx.record
    if not ctx.is_new:
        if ctx.changed("opportunity"):
            ctx.reject(ctx.message("cannot_move_to_other_opportunity"), field="opportunity")
        return
    opportunity = fetch(ctx, "opportunity", record.get("opportunity"))
    if opportunity is None:
        return  # validation reports the missing reference
    if not may(ctx, "opportunity", "edit", opportunity):
        ctx.reject(ctx.message("opportunity_not_editable", name=opportunity["name"]), field="opportunity")
    if opportunity.get("owner") is not None:
        record["owner"] = opportunity["owner"]
    if ctx.entity.key == "opportunity_stage_plan" and not record.get("responsible"):
        record["responsible"] = opportunity.get("owner")


@hook("decision_maker", "after_save")
@hook("opportunity_competitor", "after_save")
@hook("opportunity_stage_plan", "after_save")
def adder_keeps_access(ctx: HookContext) -> None:
    """Someone who added a record to another person's opportunity (a team member with edit access)
    keeps editing it: it is shared with them when their own scope does not reach it."""
    user = ctx.actor.user_id
    if not ctx.is_new or ctx.actor.is_system or user is None or user == ctx.record.get("owner"):
        return
    if not may(ctx, ctx.entity.key, "edit", ctx.record, shares=False):
        ctx.records.share(ctx.entity.key, ctx.record["id"], user, "edit")


@hook("opportunity", "after_save")
def records_follow_the_owner(ctx: HookContext) -> None:
    """A new owner of an opportunity (transfer, or with its customer) takes its decision makers,
    analyses and stage plans along, and the open tasks the previous owner delegated."""
    if ctx.old is None or ctx.record.get("owner") == ctx.old.get("owner") or ctx.record.get("owner") is None:
        return
    new, old, opportunity = ctx.record["owner"], ctx.old.get("owner"), ctx.record["id"]
    owned = [f"opportunity eq {opportunity}", f"owner ne {new}"]
    for entity in CHILDREN:
        for row in rows(ctx, entity, *owned):
            changes = {"owner": new}
            if entity == "opportunity_stage_plan" and old is not None and row.get("responsible") == old:
                changes["responsible"] = new  # the stages the previous owner drove
            ctx.records.update(entity, row["id"], changes, row["version"])
    if old is not None:
        for row in rows(ctx, "project_task", f"opportunity eq {opportunity}", f"owner eq {old}",
                        f"status in {','.join(OPEN_TASK)},returned"):
            ctx.records.update("project_task", row["id"], {"owner": new}, row["version"])


# -- 3. decision makers -------------------------------------------------------------------------------------


@hook("decision_maker", "before_validate")
def decision_maker_rules(ctx: HookContext) -> None:
    """Name (and empty job title, role and influence) from the contact; one row per contact and
    opportunity; reports_to stays inside the opportunity and makes no loop."""
    record = ctx.record
    contact = fetch(ctx, "contact", record.get("contact"))
    if contact is not None:
        record["name"] = contact["name"]
        for mine, theirs in (("job_title", "title"), ("decision_role", "decision_role"), ("influence", "influence")):
            if ctx.changed("contact") and not record.get(mine):
                record[mine] = contact.get(theirs)
    if contact is not None and record.get("opportunity") and (ctx.is_new or ctx.changed("contact")):
        same = [f"opportunity eq {record['opportunity']}", f"contact eq {contact['id']}"]
        if not ctx.is_new:
            same.append(f"id ne {record['id']}")
        if rows(ctx, "decision_maker", *same):
            ctx.reject(ctx.message("decision_maker_twice", name=contact["name"]), field="contact")
        opportunity = fetch(ctx, "opportunity", record["opportunity"])
        if opportunity is not None and contact.get("customer") != opportunity.get("customer"):
            ctx.warn(ctx.message("decision_maker_other_customer", name=contact["name"]))
    if record.get("reports_to") is not None and (ctx.is_new or ctx.changed("reports_to")):
        check_reports_to(ctx, record)


def check_reports_to(ctx: HookContext, record: dict[str, Any]) -> None:
    """reports_to: not the record itself, a decision maker of the same opportunity, and no loop
    (following reports_to upwards from it never comes back to this record)."""
    me = record.get("id")
    boss = fetch(ctx, "decision_maker", record["reports_to"])
    if me is not None and record["reports_to"] == me:
        ctx.reject(ctx.message("reports_to_self"), field="reports_to")
    if boss is None or boss.get("opportunity") != record.get("opportunity"):
        ctx.reject(ctx.message("reports_to_other_opportunity"), field="reports_to")
    assert boss is not None
    seen: set[int] = set()
    while boss is not None and boss.get("reports_to") is not None:
        up = boss["reports_to"]
        if up == me:
            ctx.reject(ctx.message("reports_to_cycle", name=boss["name"]), field="reports_to")
        if up in seen:  # an old loop above (made before this rule): it does not include this record
            return
        seen.add(up)
        boss = fetch(ctx, "decision_maker", up)


# -- 4. competitive analysis ----------------------------------------------------------------------------------


@hook("opportunity_competitor", "before_validate")
def competitor_rules(ctx: HookContext) -> None:
    record = ctx.record
    competitor = fetch(ctx, "competitor", record.get("competitor"))
    if competitor is None:
        return
    record["name"] = competitor["name"]
    if record.get("opportunity") and (ctx.is_new or ctx.changed("competitor")):
        same = [f"opportunity eq {record['opportunity']}", f"competitor eq {competitor['id']}"]
        if not ctx.is_new:
            same.append(f"id ne {record['id']}")
        if rows(ctx, "opportunity_competitor", *same):
            ctx.reject(ctx.message("competitor_twice", name=competitor["name"]), field="competitor")


# -- 6. delegated tasks ----------------------------------------------------------------------------------------


def department_of(ctx: Any, user_id: int | None) -> int | None:
    """The department of the user's employee record (the organisation of the standard pack)."""
    if user_id is None:
        return None
    found = rows(ctx, "employee", f"user eq {user_id}")
    return found[0].get("department") if found else None


@hook("project_task", "before_validate")
def task_rules(ctx: HookContext) -> None:
    """Only someone who may read the opportunity delegates work on it; the department defaults to
    the assignee's; an assignee who only has the task through its share works it (status, result,
    deliverable) but does not rewrite or cancel it."""
    record = ctx.record
    if ctx.is_new or ctx.changed("opportunity"):
        opportunity = fetch(ctx, "opportunity", record.get("opportunity"))
        if opportunity is not None and not may(ctx, "opportunity", "read", opportunity):
            ctx.reject(ctx.message("opportunity_not_visible"), field="opportunity")
    if record.get("assigned_to") and (ctx.is_new or ctx.changed("assigned_to")) and \
            (not record.get("department") or (not ctx.is_new and not ctx.changed("department"))):
        record["department"] = department_of(ctx, record["assigned_to"]) or record.get("department")
    old = ctx.old
    user = ctx.actor.user_id
    if old is None or ctx.actor.is_system or user is None or user != old.get("assigned_to") or user == old.get("owner"):
        return
    if may(ctx, "project_task", "edit", old, shares=False):
        return  # their own role reaches the task (a manager of the requester, an administrator)
    changed = {k for k in ctx.entity.fields if not ctx.entity.fields[k].system and ctx.changed(k)} - ASSIGNEE_MAY_CHANGE
    for k in [k for k in changed if ctx.entity.fields[k].type in ("string", "text")]:
        if " ".join(str(record.get(k) or "").split()) == " ".join(str(old.get(k) or "").split()):
            record[k] = old.get(k)  # a form sent the same text back (line breaks as \r\n)
            changed.discard(k)
    if changed:
        def names(lang: str) -> str:
            return ("、" if lang == "zh" else ", ").join(ctx.entity.fields[k].title(lang) for k in sorted(changed))

        registry = ctx.records.registry
        ctx.reject({lang: registry.message("assignee_may_only_work", lang, fields=names(lang)) for lang in ("en", "zh")})
    if record.get("status") == "cancelled" and ctx.changed("status"):
        ctx.reject(ctx.message("assignee_cannot_cancel"), field="status")


@hook("project_task", "before_save")
def task_completion_date(ctx: HookContext) -> None:
    if ctx.record.get("status") == "done":
        if not ctx.record.get("completed_on") or (not ctx.is_new and ctx.changed("status")):
            ctx.record["completed_on"] = today(ctx)
    else:
        ctx.record["completed_on"] = None


@hook("project_task", "after_save")
def assignee_gets_the_task(ctx: HookContext) -> None:
    """The assignee may edit the task and read its opportunity (shares); a former assignee loses
    the task's share, and the opportunity's when nothing else gives them one."""
    if not (ctx.is_new or ctx.changed("assigned_to") or ctx.changed("owner") or ctx.changed("opportunity")):
        return
    new = ctx.record.get("assigned_to")
    old = ctx.old.get("assigned_to") if ctx.old else None
    if old is not None and old != new:
        set_share(ctx, "project_task", ctx.record, old, None)
        refresh_opportunity_share(ctx, ctx.old["opportunity"], old)
    set_share(ctx, "project_task", ctx.record, new, "edit")
    if ctx.old is not None and ctx.old.get("opportunity") != ctx.record.get("opportunity"):
        refresh_opportunity_share(ctx, ctx.old["opportunity"], new)
    refresh_opportunity_share(ctx, ctx.record["opportunity"], new)


@hook("project_task", "after_delete")
def deleted_task_share(ctx: HookContext) -> None:
    refresh_opportunity_share(ctx, ctx.record.get("opportunity"), ctx.record.get("assigned_to"))


# -- 7. the project team ------------------------------------------------------------------------------------------


def refresh_opportunity_share(ctx: Any, opportunity_id: int | None, user_id: int | None) -> None:
    """The share of `user_id` on the opportunity is what the pack's rules give them: their team
    membership's access, at least read while a task on it is assigned to them, else none. Only
    someone who may share the opportunity (its owner, their manager, an administrator) widens it."""
    opportunity = fetch(ctx, "opportunity", opportunity_id)
    if opportunity is None or user_id is None or user_id == opportunity.get("owner"):
        return
    level: str | None = None
    for member in rows(ctx, "opportunity_member", f"opportunity eq {opportunity['id']}", f"user eq {user_id}"):
        access = member.get("access") if member.get("access") in ("read", "edit") else None
        if ACCESS_RANK[access] > ACCESS_RANK[level]:
            level = access
    if level is None and rows(ctx, "project_task", f"opportunity eq {opportunity['id']}", f"assigned_to eq {user_id}"):
        level = "read"
    current = share_level(ctx, "opportunity", opportunity["id"], user_id)
    if ACCESS_RANK[level] > ACCESS_RANK[current] and not may(ctx, "opportunity", "share", opportunity):
        return
    set_share(ctx, "opportunity", opportunity, user_id, level)


@hook("opportunity_member", "after_save")
def team_member_gets_access(ctx: HookContext) -> None:
    if not (ctx.is_new or ctx.changed("user") or ctx.changed("access") or ctx.changed("opportunity")):
        return
    if ctx.old is not None and (ctx.old.get("user"), ctx.old.get("opportunity")) != \
            (ctx.record.get("user"), ctx.record.get("opportunity")):
        refresh_opportunity_share(ctx, ctx.old.get("opportunity"), ctx.old.get("user"))
    refresh_opportunity_share(ctx, ctx.record.get("opportunity"), ctx.record.get("user"))


@hook("opportunity_member", "after_delete")
def former_member_loses_access(ctx: HookContext) -> None:
    refresh_opportunity_share(ctx, ctx.record.get("opportunity"), ctx.record.get("user"))
