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

from engine.plugins import HookContext, hook
from engine.runtime.errors import NotFound
from engine.runtime.query import ListQuery

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
