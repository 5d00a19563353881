"""Behaviours of the field_service pack: hooks, record actions and scheduled jobs.

Only what YAML cannot declare lives here; docs/packs/field_service.md describes each behaviour
for administrators. Everything uses the public plugin API (engine.plugins, the record service
reached through `ctx.records`, ListQuery and the runtime's errors).

1. Customer assets: defaults (name, site, region, warranty end), serial numbers unique per
   product, the asset tree, and the warranty and service status kept from the dates.
2. Ownership: an asset belongs to its customer's owner; components and plans follow the asset,
   spare parts follow their work order, and a work order belongs to its engineer.
3. Work orders: filled from the equipment, due date by priority, labour rate and travel fee,
   completion and sign-off rules, the asset's service dates and repair status.
4. Actions: dispatch, arrived on site, complete work, raise a plan's next work order now.
5. Jobs: generate_maintenance_orders, refresh_asset_warnings.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.plugins import ActionContext, HookContext, JobContext, action, hook, job
from engine.runtime.query import ListQuery

# Service types done by an engineer on site: they need labour hours to be completed and the
# customer's sign-off to be closed (setting require_customer_signoff).
ON_SITE = frozenset(("installation", "repair", "maintenance", "training"))
OPEN = ("new", "assigned", "in_progress", "waiting_parts")  # work order statuses before completion
DONE = ("resolved", "closed")
SLA_SETTINGS = {"urgent": "service_sla_days_urgent", "high": "service_sla_days_high",
                "normal": "service_sla_days_normal", "low": "service_sla_days_low"}

# province pick-list key -> service_region key
PROVINCE_REGION = {
    **dict.fromkeys(("shanghai", "jiangsu", "zhejiang", "anhui", "fujian", "jiangxi", "shandong"), "east"),
    **dict.fromkeys(("beijing", "tianjin", "hebei", "shanxi", "inner_mongolia"), "north"),
    **dict.fromkeys(("liaoning", "jilin", "heilongjiang"), "northeast"),
    **dict.fromkeys(("henan", "hubei", "hunan"), "central"),
    **dict.fromkeys(("guangdong", "guangxi", "hainan", "hong_kong", "macao"), "south"),
    **dict.fromkeys(("chongqing", "sichuan", "guizhou", "yunnan", "tibet"), "southwest"),
    **dict.fromkeys(("shaanxi", "gansu", "qinghai", "ningxia", "xinjiang"), "northwest"),
    "outside_china": "overseas",
}
CENT = Decimal("0.01")

# -- pure helpers ---------------------------------------------------------------------------------------


def region_of(province: str | None) -> str | None:
    """The service region of a province pick-list key (None when unknown)."""
    return PROVINCE_REGION.get(province or "")


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months; the 31st becomes the month's last day (1 Jan + 1 = 1 Feb,
    31 Jan + 1 = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def add_interval(day: date, interval: int, unit: str) -> date:
    """The next occurrence of a plan: `interval` days, weeks or months after `day`."""
    if unit == "days":
        return day + timedelta(days=interval)
    if unit == "weeks":
        return day + timedelta(weeks=interval)
    return add_months(day, interval)


def warranty_end_from(install_date: date | None, months: int) -> date | None:
    """The last day of a warranty of `months` months from the install date (1 Mar + 12 months
    -> 28/29 Feb of the next year)."""
    if install_date is None or months <= 0:
        return None
    return add_months(install_date, months) - timedelta(days=1)


def warranty_status(end: date | None, today: date, warning_days: int) -> str:
    """in_warranty, expiring (ends within warning_days days, today included), expired or unknown."""
    if end is None:
        return "unknown"
    if end < today:
        return "expired"
    if warning_days > 0 and end < today + timedelta(days=warning_days):
        return "expiring"
    return "in_warranty"


def service_status(next_date: date | None, today: date, warning_days: int) -> str:
    """none (no date), overdue (before today), due_soon (within warning_days days) or ok."""
    if next_date is None:
        return "none"
    if next_date < today:
        return "overdue"
    if warning_days > 0 and next_date < today + timedelta(days=warning_days):
        return "due_soon"
    return "ok"


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# -- helpers on the record service -------------------------------------------------------------------


def today_of(ctx: Any) -> date:
    return ctx.records.runtime.now().date()


def get(ctx: Any, entity: str, record_id: int | None) -> dict[str, Any] | None:
    """A live record read with the system's permissions, or None (no id, missing, in the bin)."""
    if not record_id:
        return None
    # a query without titles: `get` joins the title of every reference, which hooks do not need
    found = rows(ctx, entity, [f"id eq {int(record_id)}"], limit=1)
    return found[0] if found else None


def rows(ctx: Any, entity: str, filters: list[str], sort: tuple[str, ...] = ("id",), limit: int = 500,
         trash: bool = False) -> list[dict[str, Any]]:
    return ctx.records.query(entity, ListQuery(filters=filters, sort=list(sort), limit=limit, count=False,
                                               titles=(), trash=trash)).rows


def update_if_changed(ctx: Any, entity: str, record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Write only the values that differ (an update that changes nothing writes no history)."""
    changes = {k: v for k, v in changes.items() if record.get(k) != v}
    if not changes:
        return record
    return ctx.records.update(entity, record["id"], changes, record["version"])


def acting_user_is_trusted(ctx: HookContext) -> bool:
    """Writes of jobs (no user) are trusted; `ctx.actor.is_system` is also true for the writes
    hooks and actions make on a user's behalf, so it cannot tell those apart."""
    return ctx.actor.user_id is None


def language(ctx: Any) -> str:
    return str(ctx.setting("generated_text_language") or "zh")


def text(ctx: Any, key: str, **params: Any) -> str:
    """A message of the pack's locale files in the language of the texts it writes into records."""
    return str(ctx.message(key, **params)[language(ctx)])


def option_label(ctx: Any, picklist: str, key: str | None) -> dict[str, str]:
    """A pick-list option's label in every language (the key itself when unknown)."""
    pick = ctx.records.registry.picklists.get(picklist)
    option = next((o for o in pick.options if o.key == key), None) if pick else None
    return dict(option.label) if option else {"en": key or "", "zh": key or ""}


def bilingual(ctx: Any, key: str, **params: Any) -> dict[str, str]:
    """Like ctx.message, with parameters that are themselves {en, zh} texts (option labels)."""
    registry = ctx.records.registry
    return {lang: registry.message(key, lang, **{k: v[lang] if isinstance(v, dict) else v for k, v in params.items()})
            for lang in ("en", "zh")}


def interval_words(lang: str, interval: int, unit: str | None) -> str:
    """How an interval's unit reads after its number: 3 个月 / 2 周 / 1 month / 14 days."""
    unit = unit or "months"
    if lang == "zh":
        return {"days": "天", "weeks": "周", "months": "个月"}.get(unit, unit)
    return unit[:-1] if interval == 1 else unit


def employee_of(ctx: Any, user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    found = rows(ctx, "employee", [f"user eq {user_id}"], limit=1)
    return found[0] if found else None


def user_name(ctx: Any, user_id: int | None) -> str:
    """A user's name as the organisation knows it (their employee record), else '#id'."""
    employee = employee_of(ctx, user_id)
    return str(employee["name"]) if employee else f"#{user_id}"


def move_owner(ctx: Any, entity: str, filters: list[str], owner: int) -> None:
    """Give every record matching `filters` (and not owned by `owner` yet) to `owner`."""
    for other in (f"owner ne {owner}", "owner is_empty"):  # `ne` leaves out records without an owner
        while found := rows(ctx, entity, [*filters, other], limit=200):
            for record in found:
                ctx.records.update(entity, record["id"], {"owner": owner}, record["version"])


# -- 1. customer assets -----------------------------------------------------------------------------------


@hook("customer_asset", "before_validate")
def asset_defaults(ctx: HookContext) -> None:
    """Name, site, region and warranty end default from the product, the customer and the install
    date; a new asset belongs to its customer's owner; serial numbers are unique per product;
    the asset tree stays within one customer and has no loops."""
    record = ctx.record
    customer = get(ctx, "customer", record.get("customer"))
    if customer is not None and (ctx.is_new or ctx.changed("customer")):
        if ctx.is_new:
            for name in ("province", "city", "address"):
                if not record.get(name) and customer.get(name):
                    record[name] = customer[name]
        if customer.get("owner") is not None:
            record["owner"] = customer["owner"]
    if not record.get("region"):
        record["region"] = region_of(record.get("province") or (customer or {}).get("province"))
    if not record.get("name") and record.get("product"):
        product = get(ctx, "product", record["product"])
        if product is not None:
            record["name"] = f"{product['name']} {record.get('serial_number') or ''}".strip()[:200]
    if (not record.get("warranty_end") and record.get("install_date") and record.get("warranty_type") != "none"
            and (ctx.is_new or ctx.changed("install_date"))):
        record["warranty_end"] = warranty_end_from(record["install_date"], int(ctx.setting("default_warranty_months") or 0))
    serial, product_id = record.get("serial_number"), record.get("product")
    if serial and product_id and (ctx.is_new or ctx.changed("serial_number") or ctx.changed("product")):
        filters = [f"product eq {product_id}", f"serial_number eq {serial}"]
        if record.get("id"):
            filters.append(f"id ne {record['id']}")
        same = rows(ctx, "customer_asset", filters, limit=1)
        if same:
            ctx.reject(ctx.message("fs_serial_taken", serial=serial, asset=same[0].get("code") or same[0]["id"]),
                       field="serial_number")
    parent_id = record.get("parent_asset")
    if parent_id and (ctx.is_new or ctx.changed("parent_asset") or ctx.changed("customer")):
        check_asset_parent(ctx, record, parent_id)


def check_asset_parent(ctx: HookContext, record: dict[str, Any], parent_id: int) -> None:
    parent = get(ctx, "customer_asset", parent_id)
    if parent is None:
        return  # the reference check reports a missing record
    if parent["customer"] != record.get("customer"):
        ctx.reject(ctx.message("fs_parent_other_customer", parent=parent["name"]), field="parent_asset")
    seen = {record.get("id")}
    while parent is not None:
        if parent["id"] in seen:
            ctx.reject(ctx.message("fs_asset_tree_loop"), field="parent_asset")
        seen.add(parent["id"])
        parent = get(ctx, "customer_asset", parent.get("parent_asset"))


@hook("customer_asset", "before_save")
def asset_statuses(ctx: HookContext) -> None:
    """The warranty and service status follow the dates and the warning settings; the job
    refresh_asset_warnings moves them on as days pass."""
    today = today_of(ctx)
    record = ctx.record
    record["warranty_status"] = warranty_status(record.get("warranty_end"), today,
                                                int(ctx.setting("warranty_warning_days") or 0))
    record["service_status"] = service_status(record.get("next_service_date"), today,
                                              int(ctx.setting("service_warning_days") or 0))


@hook("customer_asset", "after_save")
def asset_owner_carries_over(ctx: HookContext) -> None:
    """Components and maintenance plans belong to the asset's owner."""
    owner = ctx.record.get("owner")
    if ctx.old is None or owner is None or owner == ctx.old.get("owner"):
        return
    move_owner(ctx, "asset_component", [f"asset eq {ctx.record['id']}"], owner)
    move_owner(ctx, "maintenance_plan", [f"asset eq {ctx.record['id']}"], owner)


@hook("customer", "after_save")
def assets_follow_the_customer(ctx: HookContext) -> None:
    """When a customer gets a new owner (transfer, claim, assignment), its equipment goes along,
    so the salesperson who looks after the customer sees its installed base and warranty
    reminders. Customers released to the pool keep their assets' owner."""
    if ctx.old is None:
        return
    owner = ctx.record.get("owner")
    if owner is None or owner == ctx.old.get("owner"):
        return
    move_owner(ctx, "customer_asset", [f"customer eq {ctx.record['id']}"], owner)


@hook("asset_component", "before_validate")
def component_rules(ctx: HookContext) -> None:
    """A component belongs to its asset's owner; its parent is a component of the same asset, and
    the tree has no loops."""
    record = ctx.record
    asset = get(ctx, "customer_asset", record.get("asset"))
    if asset is not None and (ctx.is_new or ctx.changed("asset")) and asset.get("owner") is not None:
        record["owner"] = asset["owner"]
    parent_id = record.get("parent_component")
    if not parent_id or not (ctx.is_new or ctx.changed("parent_component") or ctx.changed("asset")):
        return
    parent = get(ctx, "asset_component", parent_id)
    if parent is None:
        return
    if parent["asset"] != record.get("asset"):
        ctx.reject(ctx.message("fs_component_other_asset", parent=parent["name"]), field="parent_component")
    seen = {record.get("id")}
    while parent is not None:
        if parent["id"] in seen:
            ctx.reject(ctx.message("fs_component_tree_loop"), field="parent_component")
        seen.add(parent["id"])
        parent = get(ctx, "asset_component", parent.get("parent_component"))


# -- 2. maintenance plans ----------------------------------------------------------------------------------


@hook("maintenance_plan", "before_validate")
def plan_defaults(ctx: HookContext) -> None:
    """A plan's customer is its asset's, it belongs to the asset's owner, and a plan without a
    name is named after its interval and asset."""
    record = ctx.record
    asset = get(ctx, "customer_asset", record.get("asset"))
    if asset is None:
        return
    record["customer"] = asset["customer"]
    if (ctx.is_new or ctx.changed("asset")) and asset.get("owner") is not None:
        record["owner"] = asset["owner"]
    if not record.get("name") and record.get("interval"):
        record["name"] = text(ctx, "fs_plan_name", interval=record["interval"],
                              unit=interval_words(language(ctx), int(record["interval"]), record.get("interval_unit")),
                              asset=asset["name"])[:200]


@hook("maintenance_plan", "after_save", "after_delete")
def plan_moves_the_asset_date(ctx: HookContext) -> None:
    """The asset's next service date follows its plans."""
    for asset_id in {ctx.record.get("asset"), (ctx.old or {}).get("asset")} - {None}:
        refresh_asset_service(ctx, asset_id)


def refresh_asset_service(ctx: Any, asset_id: int, done_on: date | None = None, maintained: bool = False) -> None:
    """Keep an asset's next service date: the earliest of its active plans' next due dates and
    its open plan work orders' planned dates. An asset without any plan keeps the date entered
    by hand, cleared once a maintenance has been done on or after it. `done_on`: on-site work was
    just completed that day (the last service date); `maintained`: it was a maintenance."""
    asset = get(ctx, "customer_asset", asset_id)
    if asset is None:
        return
    changes: dict[str, Any] = {}
    if done_on is not None and (asset.get("last_service_date") is None or done_on > asset["last_service_date"]):
        changes["last_service_date"] = done_on
    plans = rows(ctx, "maintenance_plan", [f"asset eq {asset_id}"], limit=200)
    if plans:
        dates = [p["next_due"] for p in plans
                 if p.get("active") and p.get("next_due") and (p.get("end_date") is None or p["next_due"] <= p["end_date"])]
        dates += [o["planned_for"] for o in rows(ctx, "service_request", [
            f"asset eq {asset_id}", "maintenance_plan is_not_empty", f"status in {','.join(OPEN)}"], limit=200)
            if o.get("planned_for")]
        changes["next_service_date"] = min(dates) if dates else None
    elif maintained and done_on is not None and asset.get("next_service_date") and asset["next_service_date"] <= done_on:
        changes["next_service_date"] = None
    update_if_changed(ctx, "customer_asset", asset, changes)


# -- 3. work orders ---------------------------------------------------------------------------------------


@hook("service_request", "before_validate")
def work_order_defaults(ctx: HookContext) -> None:
    """The equipment fills the customer, product, serial number, contact, region and warranty cover;
    a new work order gets its due date from its priority and the labour rate from the settings;
    the travel fee follows the distance; the engineer owns the work order."""
    record, today = ctx.record, today_of(ctx)
    if record.get("asset") and (ctx.is_new or ctx.changed("asset")):
        fill_from_asset(ctx, record, today)
    if not record.get("region") and record.get("customer"):
        customer = get(ctx, "customer", record["customer"])
        record["region"] = region_of((customer or {}).get("province"))
    if ctx.is_new:
        if not record.get("due_date"):
            days = int(ctx.setting(SLA_SETTINGS.get(record.get("priority") or "normal", SLA_SETTINGS["normal"])) or 0)
            record["due_date"] = today + timedelta(days=max(days, 0))
        if record.get("labour_rate") is None:
            record["labour_rate"] = money(Decimal(str(ctx.setting("service_labour_rate") or 0)))
    fill_travel_fee(ctx, record)
    # assigning an engineer is dispatching: it needs 'assign' (a new work order may name its author)
    assigns = ctx.changed("assigned_to") if ctx.old is not None else \
        record.get("assigned_to") not in (None, ctx.actor.user_id)
    if assigns and not ctx.actor.is_system and not user_may(ctx, "service_request", "assign", ctx.old or {"owner": None}):
        ctx.reject(ctx.message("fs_dispatch_needs_assign"), field="assigned_to")
    if record.get("assigned_to") and (ctx.is_new or ctx.changed("assigned_to")):
        record["owner"] = record["assigned_to"]
    if record.get("confirmed_by") and not record.get("confirmed_at"):
        record["confirmed_at"] = ctx.records.runtime.now()


def fill_from_asset(ctx: HookContext, record: dict[str, Any], today: date) -> None:
    asset = get(ctx, "customer_asset", record["asset"])
    if asset is None:
        return
    if record.get("customer") and record["customer"] != asset["customer"]:
        customer = get(ctx, "customer", record["customer"]) or {}
        ctx.reject(ctx.message("fs_asset_other_customer", asset=asset["name"], customer=customer.get("name", "")),
                   field="asset")
    record["customer"] = asset["customer"]
    record["product"] = asset["product"]
    record["serial_number"] = asset["serial_number"]
    if not record.get("contact") and asset.get("contact"):
        record["contact"] = asset["contact"]
    if asset.get("region"):
        record["region"] = asset["region"]
    end = asset.get("warranty_end")
    record["warranty_covered"] = bool(end and end >= today)


def fill_travel_fee(ctx: HookContext, record: dict[str, Any]) -> None:
    """travel_fee = distance × rate when the distance changes and the fee was empty or was the
    amount calculated from the previous distance (a fee typed by hand stays)."""
    km = record.get("travel_km")
    if km is None or not ctx.changed("travel_km"):
        return
    rate = Decimal(str(ctx.setting("service_travel_fee_per_km") or 0))
    if rate <= 0:
        return
    old_km = (ctx.old or {}).get("travel_km")
    calculated = money(old_km * rate) if old_km is not None else None
    if record.get("travel_fee") is None or record.get("travel_fee") == calculated:
        record["travel_fee"] = money(km * rate)


@hook("service_request", "before_stage_change")
def completion_rules(ctx: HookContext) -> None:
    """On-site work is completed with its labour hours and closed with the customer's sign-off
    (setting require_customer_signoff); completing stamps the completion time and the fee."""
    if ctx.stage_field != "status":
        return
    record = ctx.record
    on_site = record.get("service_type") in ON_SITE and record.get("assigned_to") is not None
    status = record.get("status")
    if status in DONE and on_site and record.get("labour_hours") is None:
        ctx.reject(ctx.message("fs_hours_needed"), field="labour_hours")
    if (status == "closed" and on_site and not record.get("confirmed_by")
            and ctx.setting("require_customer_signoff")):
        ctx.reject(ctx.message("fs_signoff_needed"), field="confirmed_by")
    now = ctx.records.runtime.now()
    if status == "in_progress" and not record.get("arrived_at"):
        record["arrived_at"] = now
    if status in DONE:
        record["completed_at"] = record.get("completed_at") or now
        record["resolved_at"] = record.get("resolved_at") or record["completed_at"]
        if record.get("service_fee") is None:
            record["service_fee"] = Decimal("0.00") if record.get("warranty_covered") else cost_of(record)


def cost_of(record: dict[str, Any]) -> Decimal:
    """Labour + travel + parts, as total_amount will be computed on saving."""
    hours, rate = record.get("labour_hours") or 0, record.get("labour_rate") or 0
    return money(Decimal(hours) * Decimal(rate) + (record.get("travel_fee") or 0) + (record.get("parts_total") or 0))


@hook("service_request", "after_save")
def work_order_follow_ups(ctx: HookContext) -> None:
    """Who may still see it after the engineer took it over; the parts' owner; the equipment's
    service dates and repair status."""
    record, old = ctx.record, ctx.old or {}
    owner, before = record.get("owner"), (old.get("owner") if ctx.old is not None else record.get("created_by"))
    if owner is not None and owner != before:
        if before is not None:  # whoever logged or had it keeps read access
            ctx.records.share("service_request", record["id"], before, "read")
        if ctx.old is not None:
            move_owner(ctx, "work_order_part", [f"service_request eq {record['id']}"], owner)
    asset_id = record.get("asset")
    status_changed = ctx.old is None or record.get("status") != old.get("status")
    if asset_id and status_changed:
        repair_status(ctx, record)
    finished = record.get("status") in DONE and (ctx.old is None or old.get("status") not in DONE)
    if asset_id and finished:
        done_on = (record.get("completed_at") or ctx.records.runtime.now()).date()
        refresh_asset_service(ctx, asset_id, done_on if record.get("service_type") in ON_SITE else None,
                              maintained=record.get("service_type") == "maintenance")
    elif asset_id and (record.get("maintenance_plan") or old.get("maintenance_plan")) and status_changed:
        refresh_asset_service(ctx, asset_id)
    if old.get("asset") and old.get("asset") != asset_id:
        refresh_asset_service(ctx, old["asset"])


def repair_status(ctx: HookContext, record: dict[str, Any]) -> None:
    """A repair in progress marks the equipment under repair; when no repair of it is open any
    more, equipment under repair is back in use."""
    if record.get("service_type") != "repair":
        return
    asset = get(ctx, "customer_asset", record["asset"])
    if asset is None:
        return
    if record.get("status") in ("in_progress", "waiting_parts") and asset.get("status") == "in_use":
        update_if_changed(ctx, "customer_asset", asset, {"status": "under_repair"})
    elif record.get("status") in DONE and asset.get("status") == "under_repair":
        still_open = rows(ctx, "service_request", [f"asset eq {asset['id']}", "service_type eq repair",
                                                   "status in in_progress,waiting_parts", f"id ne {record['id']}"],
                          limit=1)
        if not still_open:
            update_if_changed(ctx, "customer_asset", asset, {"status": "in_use"})


@hook("work_order_part", "before_validate", "before_delete")
def parts_follow_their_work_order(ctx: HookContext) -> None:
    """Parts are recorded by whoever may edit the work order, until it is closed; they belong to
    the work order's owner (its engineer), so the engineer sees every part of their work
    orders. The unit, price and description default from the part."""
    record = ctx.record
    for order_id in {record.get("service_request"), (ctx.old or {}).get("service_request")} - {None}:
        order = get(ctx, "service_request", order_id)
        if order is None:
            continue
        if not acting_user_is_trusted(ctx) and not user_may(ctx, "service_request", "edit", order):
            ctx.reject(ctx.message("fs_part_needs_work_order", code=order.get("code") or ""), field="service_request")
        if order.get("status") == "closed" and not acting_user_is_trusted(ctx):
            ctx.reject(ctx.message("fs_parts_closed", code=order.get("code") or ""))
    if ctx.event == "before_delete":
        return
    order = get(ctx, "service_request", record.get("service_request"))
    if order is not None and order.get("owner") is not None:
        record["owner"] = order["owner"]
    if record.get("product") and (ctx.is_new or ctx.changed("product")):
        product = get(ctx, "product", record["product"])
        if product is not None:
            if record.get("unit_price") is None and product.get("standard_price") is not None:
                record["unit_price"] = product["standard_price"]
            if not record.get("unit"):
                record["unit"] = product.get("unit")
            if not record.get("description"):
                record["description"] = " ".join(str(p) for p in (product["name"], product.get("specification")) if p)[:300]


def user_may(ctx: HookContext, entity: str, action_key: str, record: dict[str, Any]) -> bool:
    """May the user behind this write do `action_key` on `record` by their own roles (hooks and
    actions write with the system's permissions, but keep the user's id and roles)?"""
    return ctx.may(entity, action_key, record)


# -- 4. actions ------------------------------------------------------------------------------------------


@action("service_request", "dispatch")
def dispatch(ctx: ActionContext) -> None:
    """Assign an engineer (and a visit time): the work order leaves the queue and becomes theirs.
    Refused for someone who has left; a warning when the engineer lacks the required skill,
    serves another region or is not marked as a field engineer."""
    order, engineer = ctx.record, ctx.inputs["engineer"]
    employee = employee_of(ctx, engineer)
    name = str(employee["name"]) if employee else f"#{engineer}"
    if employee is not None and employee.get("active") is False:
        ctx.reject(ctx.message("fs_engineer_left", engineer=name), field="engineer")
    if employee is not None:
        if not employee.get("field_engineer"):
            ctx.warn(ctx.message("fs_not_a_field_engineer", engineer=name))
        skill = order.get("required_skill")
        if skill and skill not in (employee.get("skills") or []):
            ctx.warn(bilingual(ctx, "fs_engineer_lacks_skill", engineer=name, code=order.get("code") or "",
                               skill=option_label(ctx, "service_skill", skill)))
        region = order.get("region")
        if region and employee.get("service_region") and employee["service_region"] != region:
            ctx.warn(bilingual(ctx, "fs_engineer_other_region", engineer=name, code=order.get("code") or "",
                               region=option_label(ctx, "service_region", region)))
    changes: dict[str, Any] = {"assigned_to": engineer}
    if order.get("status") == "new":
        changes["status"] = "assigned"
    if ctx.inputs.get("scheduled_at"):
        changes["scheduled_at"] = ctx.inputs["scheduled_at"]
    ctx.records.update("service_request", order["id"], changes, order["version"])
    ctx.done(ctx.message("fs_dispatched", code=order.get("code") or "", engineer=name))


@action("service_request", "start_work")
def start_work(ctx: ActionContext) -> None:
    order = ctx.record
    ctx.records.update("service_request", order["id"], {"status": "in_progress"}, order["version"])
    ctx.done(ctx.message("fs_work_started", code=order.get("code") or ""))


@action("service_request", "complete_work")
def complete_work(ctx: ActionContext) -> None:
    """The engineer's result and hours (and distance, signatory); the work order is resolved."""
    order = ctx.record
    changes: dict[str, Any] = {"status": "resolved", "resolution": ctx.inputs["resolution"],
                               "labour_hours": ctx.inputs["labour_hours"]}
    for name in ("travel_km", "confirmed_by"):
        if ctx.inputs.get(name) is not None:
            changes[name] = ctx.inputs[name]
    saved = ctx.records.update("service_request", order["id"], changes, order["version"])
    ctx.warnings.extend(saved.get("_warnings") or [])
    ctx.done(ctx.message("fs_work_completed", code=order.get("code") or "",
                         total=str(saved.get("total_amount") or "0.00")))


@action("maintenance_plan", "generate_now")
def generate_now(ctx: ActionContext) -> None:
    plan = ctx.record
    if plan.get("end_date") and plan["next_due"] > plan["end_date"]:
        ctx.reject(ctx.message("fs_plan_ended", date=plan["end_date"].isoformat()))
    order = raise_order(ctx, plan, plan["next_due"])
    advance(ctx, plan, plan["next_due"], order)
    if order is None:
        ctx.done(ctx.message("fs_plan_order_exists", date=plan["next_due"].isoformat()))
        return
    ctx.done(ctx.message("fs_plan_order_raised", code=order.get("code") or "", date=plan["next_due"].isoformat()),
             open=("service_request", order["id"]))


# -- 5. jobs ----------------------------------------------------------------------------------------------


def raise_order(ctx: Any, plan: dict[str, Any], due: date) -> dict[str, Any] | None:
    """The work order of `plan` for the date `due`, unless one exists already (even in the
    recycle bin: a work order someone deleted is not raised again)."""
    for trash in (False, True):
        if rows(ctx, "service_request", [f"maintenance_plan eq {plan['id']}", f"planned_for eq {due.isoformat()}"],
                limit=1, trash=trash):
            return None
    asset = get(ctx, "customer_asset", plan["asset"])
    if asset is None:
        return None
    engineer = plan.get("engineer")
    values: dict[str, Any] = {
        "subject": text(ctx, "fs_plan_order_subject", plan=plan["name"], date=due.isoformat())[:200],
        "asset": asset["id"], "customer": asset["customer"], "service_type": plan.get("service_type") or "maintenance",
        "required_skill": plan.get("required_skill"), "priority": plan.get("priority") or "normal",
        "source": "maintenance_plan", "description": plan.get("checklist"), "due_date": due,
        "maintenance_plan": plan["id"], "planned_for": due,
    }
    if engineer:  # straight to the engineer; otherwise the work order waits in the dispatch queue
        values.update(assigned_to=engineer, status="assigned", scheduled_at=datetime.combine(due, time(9, 0)))
    return ctx.records.create("service_request", values)


def advance(ctx: Any, plan: dict[str, Any], due: date, order: dict[str, Any] | None) -> dict[str, Any]:
    """Move the plan on by one interval after the occurrence `due`."""
    changes: dict[str, Any] = {"next_due": add_interval(due, int(plan["interval"]), plan["interval_unit"]),
                               "last_generated_on": due}
    if order is not None:
        changes["last_work_order"] = order["id"]
    return ctx.records.update("maintenance_plan", plan["id"], changes, plan["version"])


MAX_PER_PLAN = 60  # work orders one plan may raise in one run (a daily plan with a long lead time)


@job("generate_maintenance_orders")
def generate_maintenance_orders(ctx: JobContext) -> None:
    """Raise the work orders of maintenance plans that fall due within their lead days (daily).

    Each active plan whose next due date is within its lead days (the plan's own, else the
    setting maintenance_lead_days) gets a work order for that date, with the plan's asset,
    customer, service type, skill, priority and checklist, assigned to the plan's engineer or put
    in the dispatch queue; the plan then moves on by its interval, until the next date is beyond
    the lead time or the plan's end. Dates missed while the job did not run collapse into one
    work order (the latest missed date). Running it again the same day raises nothing."""
    today = today_of(ctx)
    default_lead = max(int(ctx.setting("maintenance_lead_days") or 0), 0)
    furthest = today + timedelta(days=max(default_lead, 365))
    raised = skipped = 0
    for plan_id in ctx.records.ids("maintenance_plan", ["active eq true", f"next_due lte {furthest.isoformat()}"]):
        plan = get(ctx, "maintenance_plan", plan_id)
        if plan is None:
            continue
        lead = plan["lead_days"] if plan.get("lead_days") is not None else default_lead
        horizon = today + timedelta(days=lead)
        for _ in range(MAX_PER_PLAN):
            due = plan["next_due"]
            if due > horizon or (plan.get("end_date") and due > plan["end_date"]):
                break
            following = add_interval(due, int(plan["interval"]), plan["interval_unit"])
            order = None
            if following < today and not (plan.get("end_date") and following > plan["end_date"]):
                skipped += 1  # missed, and a later date is missed too: only the latest is raised
            else:
                order = raise_order(ctx, plan, due)
                if order is not None:
                    raised += 1
                    ctx.report.append(ctx.records.registry.message(
                        "fs_plan_order_raised", "en", code=order.get("code") or "", date=due.isoformat()))
            plan = advance(ctx, plan, due, order)
    if skipped:
        ctx.report.append(f"{skipped} missed date(s) skipped (a later date of the same plan was raised)")
    ctx.report.append(f"{raised} work order(s) raised from maintenance plans")


@job("refresh_asset_warnings")
def refresh_asset_warnings(ctx: JobContext) -> None:
    """Move assets' warranty and service status on as days pass, and remind owners (daily).

    Statuses follow warranty_warning_days and service_warning_days. The owner of an asset that
    is leaving warranty gets one planned call (to offer an extended warranty or a service
    contract) per warranty end date; the owner of an asset due for service that has no active
    maintenance plan and no open work order gets one planned call to book the visit per next
    service date. 0 days switches a warning off."""
    today = today_of(ctx)
    warranty_days = int(ctx.setting("warranty_warning_days") or 0)
    service_days = int(ctx.setting("service_warning_days") or 0)
    soon_w = (today + timedelta(days=max(warranty_days, 0))).isoformat()
    soon_s = (today + timedelta(days=max(service_days, 0))).isoformat()
    stale: set[int] = set()
    for filters in (["warranty_status ne expired", "warranty_end lt today"],
                    ["warranty_status eq in_warranty", f"warranty_end lt {soon_w}"],
                    ["warranty_status eq expiring", f"warranty_end gte {soon_w}"],
                    ["warranty_status is_empty"],
                    ["service_status ne overdue", "next_service_date lt today"],
                    ["service_status eq ok", f"next_service_date lt {soon_s}"],
                    ["service_status eq due_soon", f"next_service_date gte {soon_s}"],
                    ["service_status is_empty"]):
        stale |= set(ctx.records.ids("customer_asset", filters))
    for asset_id in sorted(stale):
        asset = get(ctx, "customer_asset", asset_id)
        if asset is not None:
            ctx.records.update("customer_asset", asset_id, {}, asset["version"])  # the hook recomputes
    ctx.report.append(f"{len(stale)} asset status(es) updated")
    reminders = 0
    if warranty_days > 0:
        for asset_id in ctx.records.ids("customer_asset", ["warranty_status eq expiring", "status ne scrapped",
                                                       "owner is_not_empty"]):
            asset = get(ctx, "customer_asset", asset_id)
            if asset is None or asset.get("warranty_reminded_for") == asset["warranty_end"]:
                continue
            remind(ctx, asset, text(ctx, "fs_warranty_reminder", asset=asset["name"], date=asset["warranty_end"].isoformat()),
                   text(ctx, "fs_warranty_reminder_detail", asset=asset["name"], serial=asset["serial_number"],
                        date=asset["warranty_end"].isoformat()))
            update_if_changed(ctx, "customer_asset", asset, {"warranty_reminded_for": asset["warranty_end"]})
            reminders += 1
    if service_days > 0:
        for asset_id in ctx.records.ids("customer_asset", ["service_status in due_soon,overdue", "status ne scrapped",
                                                       "owner is_not_empty"]):
            asset = get(ctx, "customer_asset", asset_id)
            if asset is None or asset.get("service_reminded_for") == asset["next_service_date"]:
                continue
            if rows(ctx, "maintenance_plan", [f"asset eq {asset_id}", "active eq true"], limit=1) or rows(
                    ctx, "service_request", [f"asset eq {asset_id}", f"status in {','.join(OPEN)}"], limit=1):
                continue  # a plan raises the work order, or one is open already
            remind(ctx, asset, text(ctx, "fs_service_reminder", asset=asset["name"],
                                    date=asset["next_service_date"].isoformat()),
                   text(ctx, "fs_service_reminder_detail", asset=asset["name"], serial=asset["serial_number"],
                        date=asset["next_service_date"].isoformat()))
            update_if_changed(ctx, "customer_asset", asset, {"service_reminded_for": asset["next_service_date"]})
            reminders += 1
    ctx.report.append(f"{reminders} reminder(s) put on owners' activities")


def remind(ctx: JobContext, asset: dict[str, Any], subject: str, description: str) -> None:
    """A planned call for the asset's owner, today at 09:00, about the asset and its customer."""
    ctx.records.create("activity", {
        "activity_type": "call", "subject": subject[:200], "description": description, "status": "planned",
        "planned_start": datetime.combine(today_of(ctx), time(9, 0)), "customer": asset["customer"],
        "contact": asset.get("contact"), "customer_asset": asset["id"], "owner": asset["owner"]})
