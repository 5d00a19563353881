"""Behaviours of the standard CRM pack: hooks, record actions and scheduled jobs.

Everything here uses the public plugin API (engine.plugins, the record service reached through
`ctx.records`, ListQuery and the runtime's errors); docs/standard_crm.md describes each behaviour
for administrators. The pure helpers at the top (mnemonic, name_key, phone_key, next_birthday)
are also used by the demo generator, which fills these values itself because bulk inserts run no
hooks.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from pypinyin import Style, lazy_pinyin

from engine.plugins import ActionContext, HookContext, action, hook
from engine.runtime.errors import NotFound, RecordError
from engine.runtime.query import ListQuery

LEAD_SOURCES = {"web_form": "website"}  # lead source channel -> customer source (a campaign wins)

# -- pure helpers -----------------------------------------------------------------------------------


def mnemonic(name: str | None, limit: int = 50) -> str | None:
    """The 助记码 of a name: pinyin initials of its Chinese characters, letters and digits kept,
    upper-case: 重庆长安汽车 -> CQCAQC, ABC科技（上海） -> ABCKJSH."""
    if not name:
        return None
    text = unicodedata.normalize("NFKC", name)
    letters = "".join(ch for part in lazy_pinyin(text, style=Style.FIRST_LETTER) for ch in part
                      if ch.isascii() and ch.isalnum())
    return letters.upper()[:limit] or None


# -- 1. customer mnemonic -------------------------------------------------------------------------------


@hook("customer", "before_save")
def fill_mnemonic(ctx: HookContext) -> None:
    """The mnemonic follows the name (it is read-only on forms, and searchable)."""
    if ctx.changed("name") or not ctx.record.get("mnemonic"):
        ctx.record["mnemonic"] = mnemonic(ctx.record.get("name"))


# -- 2. follow-ups keep the customer up to date --------------------------------------------------------


@hook("follow_up", "after_save")
def follow_up_updates_customer(ctx: HookContext) -> None:
    """The customer's last follow-up time is its newest follow-up's; the newest follow-up also sets
    the customer's maturity and next follow-up (a follow-up with no next time clears a next time
    that it fulfilled). A back-dated follow-up changes nothing but, possibly, the last time."""
    refresh_follow_up(ctx, ctx.record["customer"], ctx.record)
    if ctx.old is not None and ctx.old.get("customer") not in (None, ctx.record["customer"]):
        refresh_follow_up(ctx, ctx.old["customer"])  # moved to another customer


@hook("follow_up", "after_delete")
def deleted_follow_up_updates_customer(ctx: HookContext) -> None:
    refresh_follow_up(ctx, ctx.record["customer"])


def refresh_follow_up(ctx: HookContext, customer_id: int, saved: dict[str, Any] | None = None) -> None:
    latest = ctx.records.query("follow_up", ListQuery(filters=[f"customer eq {customer_id}"],
                                                      sort=["-followed_up_at", "-id"], limit=1, count=False,
                                                      titles=())).rows
    try:
        customer = ctx.records.get("customer", customer_id)
    except NotFound:  # the customer is in the recycle bin
        return
    changes: dict[str, Any] = {"last_follow_up_at": latest[0]["followed_up_at"] if latest else None}
    if latest and saved is not None and latest[0]["id"] == saved["id"]:
        if saved.get("maturity"):
            changes["maturity"] = saved["maturity"]
        if saved.get("next_follow_up_at"):
            changes["next_follow_up_at"] = saved["next_follow_up_at"]
        elif customer.get("next_follow_up_at") and customer["next_follow_up_at"] <= saved["followed_up_at"]:
            changes["next_follow_up_at"] = None  # the follow-up that was due has happened
    update_if_changed(ctx, "customer", customer, changes)


def update_if_changed(ctx: Any, entity: str, record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Write only the values that differ (an update that changes nothing writes no history)."""
    changes = {k: v for k, v in changes.items() if record.get(k) != v}
    if not changes:
        return record
    return ctx.records.update(entity, record["id"], changes, record["version"])


def as_user(ctx: ActionContext) -> Any:
    """A record service acting as the user who runs the action (their own permissions), inside
    the action's transaction; `ctx.records` itself has the system's permissions."""
    return ctx.records.runtime.records(ctx.actor, ctx.records.conn)


def carry_warnings(ctx: ActionContext, record: dict[str, Any]) -> None:
    """Warnings of hooks that ran for a record the action wrote reach the user too."""
    ctx.warnings.extend(record.get("_warnings") or [])


def title(record: dict[str, Any], name: str) -> str:
    return str(record.get(name) or "")


# -- 3. lead conversion -----------------------------------------------------------------------------------


@action("lead", "convert")
def convert_lead(ctx: ActionContext) -> None:
    """A lead becomes a customer (or joins an existing one), a contact and optionally an
    opportunity, in one transaction; the lead is marked converted and links to them. The action's
    `when` (status new, working or qualified) refuses converting twice."""
    lead = ctx.record
    if lead.get("converted_customer") or lead.get("status") == "converted":
        ctx.reject(ctx.message("lead_already_converted", date=str(lead.get("converted_at") or "")))
    owner = lead.get("owner") or ctx.actor.user_id
    customer: dict[str, Any]
    if ctx.inputs.get("customer"):
        try:  # the user must be allowed to see the customer they add the lead to
            customer = as_user(ctx).get("customer", ctx.inputs["customer"])
        except NotFound:
            ctx.reject(ctx.message("lead_customer_not_found"), field="customer")
    else:
        same = [c for c in same_name_customers(ctx, lead["company"]) if visible(ctx, "customer", c["id"])]
        if same:
            customer = same[0]
            ctx.warn(ctx.message("lead_duplicate_customer", name=customer["name"]))
        else:
            source = "campaign" if lead.get("campaign") else LEAD_SOURCES.get(lead.get("source_channel") or "")
            customer = ctx.records.create("customer", {
                "name": lead["company"], "phone": lead.get("phone") or lead.get("mobile"), "email": lead.get("email"),
                "province": lead.get("province"), "city": lead.get("city"), "industry": lead.get("industry"),
                "source": source, "remarks": lead.get("remarks"), "owner": owner})
            carry_warnings(ctx, customer)
    contact = None
    if lead.get("contact_name"):
        contact = ctx.records.create("contact", {
            "customer": customer["id"], "name": lead["contact_name"], "title": lead.get("contact_title"),
            "mobile": lead.get("mobile"), "office_phone": lead.get("phone"), "email": lead.get("email"),
            "owner": owner})
        carry_warnings(ctx, contact)
    opportunity = None
    if ctx.inputs.get("create_opportunity"):
        opportunity = ctx.records.create("opportunity", {
            "name": ctx.inputs.get("opportunity_name") or lead["company"], "customer": customer["id"],
            "contact": contact["id"] if contact else None, "amount": ctx.inputs.get("amount"),
            "expected_close_date": ctx.inputs.get("expected_close_date"), "campaign": lead.get("campaign"),
            "source": "campaign" if lead.get("campaign") else LEAD_SOURCES.get(lead.get("source_channel") or ""),
            "owner": owner})
        carry_warnings(ctx, opportunity)
    ctx.records.update("lead", lead["id"], {
        "status": "converted", "converted_customer": customer["id"], "converted_contact": contact and contact["id"],
        "converted_opportunity": opportunity and opportunity["id"], "converted_at": ctx.records.runtime.now(),
    }, lead["version"])
    if contact is None:
        message = ctx.message("lead_converted_customer_only", customer=customer["name"])
    elif opportunity is None:
        message = ctx.message("lead_converted", customer=customer["name"], contact=contact["name"])
    else:
        message = ctx.message("lead_converted_with_opportunity", customer=customer["name"], contact=contact["name"],
                              opportunity=opportunity["name"])
    ctx.done(message, open=("customer", customer["id"]))


def visible(ctx: ActionContext, entity: str, record_id: int) -> bool:
    try:
        as_user(ctx).get(entity, record_id)
    except RecordError:
        return False
    return True


def same_name_customers(ctx: Any, name: str | None, exclude: int | None = None) -> list[dict[str, Any]]:
    """Live customers whose name is the same as `name` (see name_key, behaviour 5)."""
    if not name:
        return []
    filters = [f"name eq {name}"]
    if exclude:
        filters.append(f"id ne {exclude}")
    return ctx.records.query("customer", ListQuery(filters=filters, sort=["id"], limit=5, count=False)).rows
