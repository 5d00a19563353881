"""Behaviours of the standard CRM pack: hooks, record actions and scheduled jobs.

Everything here uses the public plugin API (engine.plugins, the record service reached through
`ctx.records`, ListQuery and the runtime's errors); docs/standard_crm.md describes each behaviour
for administrators. The pure helpers at the top (mnemonic, name_key, phone_key, next_birthday)
are also used by the demo generator, which fills these values itself because bulk inserts run no
hooks.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import unicodedata
from dataclasses import replace
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.metadata.filters import FilterSpec
from engine.plugins import ActionContext, HookContext, JobContext, action, hook, job
from engine.runtime.errors import NotFound, RecordError
from engine.runtime.query import ListQuery

LEAD_SOURCES = {"web_form": "website"}  # lead source channel -> customer source (a campaign wins)

# -- pure helpers -----------------------------------------------------------------------------------


PINYIN_PHRASES = Path(__file__).with_name("pinyin_phrases.json")
_pinyin_lock = threading.Lock()
_initials: Any = None


def _initials_function() -> Any:
    """pypinyin's lazy_pinyin for initials, imported on first use. Its full phrase dictionary
    (~35 MB in every process that imports it) is needed only for phrases whose initials differ
    from their characters' usual readings (重庆 CQ, not ZQ; 厦门 XM, 银行 YH): pinyin_phrases.json
    keeps just those 2,105 phrases of pypinyin 0.55's dictionary, and pypinyin is imported without
    its own (PYPINYIN_NO_PHRASES) unless something in the process imported it already."""
    global _initials
    with _pinyin_lock:
        if _initials is None:
            fresh = "pypinyin" not in sys.modules
            saved = {k: os.environ.get(k) for k in ("PYPINYIN_NO_PHRASES", "PYPINYIN_NO_DICT_COPY")}
            if fresh:
                os.environ.update({"PYPINYIN_NO_PHRASES": "1", "PYPINYIN_NO_DICT_COPY": "1"})
            try:
                import pypinyin
            finally:
                for key, value in saved.items():  # the process environment stays as it was
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            from pypinyin.constants import PHRASES_DICT

            if len(PHRASES_DICT) < 10_000:  # without pypinyin's own phrases: add the ones that matter
                pypinyin.load_phrases_dict(json.loads(PINYIN_PHRASES.read_text(encoding="utf-8")))
            style = pypinyin.Style.FIRST_LETTER
            words = pypinyin.core.Pinyin()  # the segmentation lazy_pinyin itself uses

            # Converting is what costs (~30 us a character); names repeat their words (cities,
            # trades, 有限公司), so each word is converted once: 6x faster on company names.
            @lru_cache(maxsize=50_000)
            def word_initials(word: str) -> str:
                return "".join(pypinyin.lazy_pinyin(word, style=style))

            _initials = lambda text: [word_initials(w) for w in words.seg(text)]  # noqa: E731
    return _initials


def mnemonic(name: str | None, limit: int = 50) -> str | None:
    """The 助记码 of a name: pinyin initials of its Chinese characters, letters and digits kept,
    upper-case: 重庆长安汽车 -> CQCAQC, ABC科技（上海） -> ABCKJSH."""
    if not name:
        return None
    text = unicodedata.normalize("NFKC", name)
    letters = "".join(ch for part in _initials_function()(text) for ch in part if ch.isascii() and ch.isalnum())
    return letters.upper()[:limit] or None


# Company-form words dropped from the end of a name before comparing names (查重): Chinese as
# suffixes of the last word, English as whole last words.
CN_FORMS = ("股份有限公司", "有限责任公司", "有限公司", "股份公司", "集团公司", "总公司", "公司", "集团", "有限合伙")
EN_FORMS = frozenset(("co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc", "plc",
                      "llp", "gmbh", "group", "pte", "pty"))
EXTENSION = re.compile(r"(?:ext|x|转)", re.IGNORECASE)


def name_key(name: str | None) -> str | None:
    """A customer name as compared for duplicates: case, full/half-width forms, spaces,
    punctuation, brackets and company-form suffixes do not count, so 上海华信科技（集团）有限公司,
    上海华信科技股份有限公司 and 上海 华信科技 give the same key (上海华信科技), and so do
    "ACME Trading Co., Ltd." and "Acme trading inc"."""
    if not name:
        return None
    words = [w for w in re.split(r"[\W_]+", unicodedata.normalize("NFKC", name).casefold()) if w]
    if not words:
        return None
    while True:
        if len(words) > 1 and words[-1] in EN_FORMS:
            words.pop()
            continue
        form = next((f for f in CN_FORMS if words[-1].endswith(f)), None)
        if form is None or (len(words) == 1 and words[0] == form):  # nothing (more) to drop
            return "".join(words)[:200]
        words[-1] = words[-1][:-len(form)]
        if not words[-1]:
            words.pop()


def phone_key(phone: str | None) -> str | None:
    """A phone number as compared for duplicates: its digits, without an extension, with +86 /
    0086 turned into the domestic form (+86 21 5555 1234 and 021-5555-1234 give 02155551234)."""
    if not phone:
        return None
    text = unicodedata.normalize("NFKC", phone).strip()
    digits = re.sub(r"\D", "", EXTENSION.split(text, maxsplit=1)[0])
    international = False
    if digits.startswith("0086"):
        digits, international = digits[4:], True
    elif text.startswith("+86") or (digits.startswith("86") and len(digits) == 13 and digits[2] == "1"):
        digits, international = digits[2:], True
    if international and digits and not digits.startswith(("0", "1")):
        digits = "0" + digits  # a landline's area code gets its trunk prefix back
    return digits[:40] or None


def next_birthday(birthday: date | None, today: date) -> date | None:
    """The next day, today included, on which `birthday` comes round (29 February: the 28th in
    other years)."""
    if birthday is None:
        return None
    for year in (today.year, today.year + 1):
        try:
            day = birthday.replace(year=year)
        except ValueError:
            day = date(year, 2, 28)
        if day >= today:
            return day
    return None  # not reached: next year's day is always after today


# -- 1. customer mnemonic -------------------------------------------------------------------------------


@hook("customer", "before_save", batch=True)
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
    """Live customers whose name is the same as `name` once normalized (name_key, indexed)."""
    return same_key_customers(ctx, "name_key", name_key(name), exclude)


DUPLICATE_KEYS = ("name_key", "phone_key", "email")  # the customer fields duplicate_check compares


def same_key_customers(ctx: Any, field: str, key: str | None, exclude: int | None = None) -> list[dict[str, Any]]:
    if not key:
        return []
    known = (getattr(ctx, "batch", None) or {}).get("customers_by_key")
    if known is not None:  # a batch write: prefetch_duplicates read them (and the batch's own rows)
        return [c for c in known[field].get(key, []) if c.get("id") is None or c["id"] != exclude][:5]
    filters = [f"{field} eq {key}"]
    if exclude:
        filters.append(f"id ne {exclude}")
    return ctx.records.query("customer", ListQuery(filters=filters, sort=["id"], limit=5, count=False,
                                                   titles=("owner",))).rows


def user_name(ctx: Any, user_id: int | None) -> str:
    """A user's name as the organisation knows it (their employee record), else '#id'."""
    if user_id is None:
        return "-"
    rows = ctx.records.query("employee", ListQuery(filters=[f"user eq {user_id}"], limit=1, count=False,
                                                   titles=())).rows
    return str(rows[0]["name"]) if rows else f"#{user_id}"


# -- 4. the customer pool (公海) -----------------------------------------------------------------------


@hook("customer", "before_save", batch=True)
def owner_bookkeeping(ctx: HookContext) -> None:
    """Whenever the owner changes (create, claim, assignment, transfer, release): assigned_at is the
    moment the current owner got the customer, previous_owner who had it before; a customer that
    gets an owner leaves the pool, within the owner's limit (max_customers_per_salesperson)."""
    record, old = ctx.record, ctx.old or {}
    if not ctx.is_new and not ctx.changed("owner"):
        return
    owner = record.get("owner")
    record["assigned_at"] = ctx.records.runtime.now() if owner is not None else None
    if old.get("owner") is not None:
        record["previous_owner"] = old["owner"]
    if owner is not None and old.get("in_pool"):
        check_customer_limit(ctx, owner)
        record.update(in_pool=False, pool_reason=None, pooled_at=None)


def check_customer_limit(ctx: Any, owner: int) -> None:
    limit = int(ctx.setting("max_customers_per_salesperson") or 0)
    if limit <= 0:
        return
    count = owned_customers(ctx, owner)
    if count >= limit:
        if owner == ctx.actor.user_id:
            ctx.reject(ctx.message("pool_limit_reached", count=count, limit=limit))
        ctx.reject(ctx.message("pool_limit_reached_user", user=user_name(ctx, owner), count=count, limit=limit))


def owned_customers(ctx: Any, owner: int) -> int:
    page = ctx.records.query("customer", ListQuery(filters=[f"owner eq {owner}", "in_pool eq false"], limit=1,
                                                   titles=()))
    return int(page.total or 0)


def release(ctx: Any, customer: dict[str, Any], reason: str) -> dict[str, Any]:
    """Send a customer to the pool: no owner any more, a reason and the time."""
    return ctx.records.update("customer", customer["id"], {
        "in_pool": True, "pool_reason": reason, "pooled_at": ctx.records.runtime.now(), "owner": None,
    }, customer["version"])


@action("customer", "to_pool")
def to_pool(ctx: ActionContext) -> None:
    """The owner (or a manager who may reassign the customer) releases it to the pool."""
    customer = ctx.record
    if customer.get("owner") != ctx.actor.user_id and not ctx.may("customer", "assign", customer):
        ctx.reject(ctx.message("pool_release_not_owner"))
    release(ctx, customer, ctx.inputs["reason"])
    ctx.done(ctx.message("pool_customer_released", name=customer["name"]))


@action("customer", "claim")
def claim(ctx: ActionContext) -> None:
    """A salesperson takes a pool customer (refused beyond max_customers_per_salesperson)."""
    customer = ctx.record
    if ctx.actor.user_id is None:
        ctx.reject(ctx.message("pool_claim_needs_user"))
    ctx.records.update("customer", customer["id"], {"owner": ctx.actor.user_id}, customer["version"])
    ctx.done(ctx.message("pool_customer_claimed", name=customer["name"]), open=("customer", customer["id"]))


@action("customer", "assign_from_pool")
def assign_from_pool(ctx: ActionContext) -> None:
    """A manager gives a pool customer to someone they may assign records to (their team)."""
    customer, user = ctx.record, ctx.inputs["user"]
    if not ctx.may("customer", "assign", {"owner": user}):
        ctx.reject(ctx.message("pool_assign_outside_team", user=user_name(ctx, user)), field="user")
    ctx.records.update("customer", customer["id"], {"owner": user}, customer["version"])
    ctx.done(ctx.message("pool_customer_assigned", name=customer["name"], user=user_name(ctx, user)))


@job("return_idle_customers")
def return_idle_customers(ctx: JobContext) -> None:
    """Customers not followed up for pool_return_days days go back to the pool (nightly).

    Idle time counts from the last follow-up, or from when the owner got the customer if that
    is later; the reason is "not followed up in time". 0 days switches the job off."""
    days = int(ctx.setting("pool_return_days") or 0)
    if days <= 0:
        ctx.report.append("pool_return_days is 0: nothing returned")
        return
    before = f"lt last_n_days:{days}"  # before the first of the last N days: idle for N days or more
    idle: set[int] = set()
    for conditions in ([f"last_follow_up_at {before}", f"assigned_at {before}"],
                       [f"last_follow_up_at {before}", "assigned_at is_empty", f"created_at {before}"],
                       ["last_follow_up_at is_empty", f"assigned_at {before}"],
                       ["last_follow_up_at is_empty", "assigned_at is_empty", f"created_at {before}"]):
        idle |= set(ctx.records.ids("customer", ["in_pool eq false", "owner is_not_empty", *conditions]))
    returned = 0
    for customer_id in sorted(idle):
        try:
            customer = ctx.records.get("customer", customer_id)
            release(ctx, customer, "no_follow_up")
        except RecordError as exc:
            ctx.report.append(f"customer {customer_id}: {exc.message.text('en')}")
            continue
        returned += 1
        ctx.report.append(ctx.records.runtime.registry.message("pool_auto_returned", "en", name=customer["name"],
                                                               days=days))
    ctx.report.append(f"{returned} customer(s) returned to the pool")


# -- 5. duplicate check (查重) ----------------------------------------------------------------------------


def duplicate_keys(record: dict[str, Any]) -> dict[str, str | None]:
    return {"name_key": name_key(record.get("name")), "phone_key": phone_key(record.get("phone")),
            "email": record.get("email") or None}


def prefetch_duplicates(contexts: list[HookContext]) -> None:
    """For a batch (an import): the live customers sharing a key with any of the rows, one query
    per key field and 500 keys, instead of three queries per row."""
    records = contexts[0].records
    wanted: dict[str, set[str]] = {field: set() for field in DUPLICATE_KEYS}
    for ctx in contexts:
        for field, key in duplicate_keys(ctx.record).items():
            if key:
                wanted[field].add(key)
    known: dict[str, dict[str, list[dict[str, Any]]]] = {field: {} for field in DUPLICATE_KEYS}
    for field, keys in wanted.items():
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            query = ListQuery(filters=[FilterSpec(field, "in", tuple(ordered[start:start + 500]))], sort=["id"],
                              limit=500, count=False, titles=("owner",))
            while True:
                page = records.query("customer", query)
                for row in page.rows:
                    known[field].setdefault(str(row[field]), []).append(row)
                if page.next_cursor is None:
                    break
                query = replace(query, cursor=page.next_cursor)
    contexts[0].batch["customers_by_key"] = known  # type: ignore[index]


@hook("customer", "before_save", prefetch=prefetch_duplicates)
def duplicate_check(ctx: HookContext) -> None:
    """Keep the comparison keys, and look for other customers with the same normalized name
    (refused or warned, as duplicate_name_policy says), phone or e-mail (warned). The keys are
    indexed, so each check is one indexed lookup."""
    record = ctx.record
    if ctx.changed("name") or not record.get("name_key"):
        record["name_key"] = name_key(record.get("name"))
    if ctx.changed("phone") or bool(record.get("phone")) != bool(record.get("phone_key")):
        record["phone_key"] = phone_key(record.get("phone"))
    own_id = record.get("id")
    if ctx.is_new or ctx.changed("name"):
        same = same_key_customers(ctx, "name_key", record.get("name_key"), own_id)
        if same:
            if ctx.setting("duplicate_name_policy") == "refuse":
                ctx.reject(ctx.message("duplicate_customer_name_refused", name=same[0]["name"]), field="name")
            ctx.warn(ctx.message("duplicate_customer_name", name=same[0]["name"], code=same[0].get("code") or "",
                                 owner=(same[0].get("_titles") or {}).get("owner") or "-"))
    if ctx.is_new or ctx.changed("phone"):
        same = same_key_customers(ctx, "phone_key", record.get("phone_key"), own_id)
        if same:
            ctx.warn(ctx.message("duplicate_customer_phone", name=same[0]["name"], phone=record.get("phone")))
    if record.get("email") and (ctx.is_new or ctx.changed("email")):
        same = same_key_customers(ctx, "email", record["email"], own_id)
        if same:
            ctx.warn(ctx.message("duplicate_customer_email", name=same[0]["name"], email=record["email"]))
    known = (ctx.batch or {}).get("customers_by_key")
    if known is not None:  # the batch's later rows are compared with this one too
        for field in DUPLICATE_KEYS:  # the keys this hook just set
            if record.get(field):
                known[field].setdefault(record[field], []).append(record)


@job("refresh_customer_keys")
def refresh_customer_keys(ctx: JobContext) -> None:
    """Fill the mnemonic and duplicate-check keys of customers that lack them (after bulk loads).

    Records written by bulk inserts (imports, benchmarks) ran no hooks; saving each one again
    without changes runs them, so the keys are filled exactly as a normal save would."""
    ids = set(ctx.records.ids("customer", ["name_key is_empty"])) | set(ctx.records.ids("customer", ["mnemonic is_empty"]))
    ids |= set(ctx.records.ids("customer", ["phone is_not_empty", "phone_key is_empty"]))
    for customer_id in sorted(ids):
        customer = ctx.records.get("customer", customer_id)
        ctx.records.update("customer", customer_id, {}, customer["version"])
    ctx.report.append(f"{len(ids)} customer(s) updated")


# -- 6. merge (合并) --------------------------------------------------------------------------------------

# Customer fields a merge never copies from the duplicate: kept by hooks, or about this record's
# own place in the pool and its history.
NOT_MERGED = frozenset(("mnemonic", "name_key", "phone_key", "in_pool", "pool_reason", "pooled_at", "previous_owner",
                        "assigned_at", "merged_into", "parent", "hot", "last_follow_up_at", "last_deal_at"))


def empty(value: Any) -> bool:
    return value is None or value == "" or value == []


@action("customer", "merge")
def merge(ctx: ActionContext) -> None:
    """Merge a duplicate into this customer: every record that refers to the duplicate (whatever
    entity, found through the registry) is moved here with an ordinary update, so each move is in
    that record's history; empty fields are filled from the duplicate; its shares carry over; the
    duplicate is marked merged_into and goes to the recycle bin. All in one transaction."""
    survivor_id, duplicate_id = ctx.record["id"], ctx.inputs["duplicate"]
    if duplicate_id == survivor_id:
        ctx.reject(ctx.message("merge_same_customer"), field="duplicate")
    try:
        duplicate = as_user(ctx).get("customer", duplicate_id)
    except NotFound:
        ctx.reject(ctx.message("merge_duplicate_not_found"), field="duplicate")
    if not ctx.may("customer", "edit", duplicate):
        ctx.reject(ctx.message("merge_needs_edit", name=duplicate["name"]), field="duplicate")
    moved = 0
    for ref in ctx.records.registry.referencing("customer"):
        filters = [f"{ref.name} eq {duplicate_id}"]
        if ref.entity == "customer":
            filters.append(f"id ne {duplicate_id}")
        while rows := ctx.records.query(ref.entity, ListQuery(filters=filters, sort=["id"], limit=200, count=False,
                                                              titles=())).rows:
            for row in rows:
                # the survivor may have been a branch of the duplicate: it cannot be its own parent
                target = None if (ref.entity == "customer" and row["id"] == survivor_id) else survivor_id
                ctx.records.update(ref.entity, row["id"], {ref.name: target}, row["version"])
                moved += 1
    survivor = ctx.records.get("customer", survivor_id)
    duplicate = ctx.records.get("customer", duplicate_id)
    fill = {f.name: duplicate[f.name] for f in ctx.entity.user_fields
            if not f.kind.derived and f.name not in NOT_MERGED
            and empty(survivor.get(f.name)) and not empty(duplicate.get(f.name))}
    if duplicate.get("hot"):
        fill["hot"] = True
    for name in ("last_follow_up_at", "last_deal_at"):
        if duplicate.get(name) and (not survivor.get(name) or duplicate[name] > survivor[name]):
            fill[name] = duplicate[name]
    survivor = update_if_changed(ctx, "customer", survivor, fill)
    shared = {s["user_id"]: s["access"] for s in ctx.records.shares("customer", survivor_id)}
    wanted = {s["user_id"]: s["access"] for s in ctx.records.shares("customer", duplicate_id)}
    if duplicate.get("owner") is not None:
        wanted.setdefault(duplicate["owner"], "read")  # the duplicate's owner still sees the customer
    for user_id, access in wanted.items():
        if user_id != survivor.get("owner") and shared.get(user_id) != "edit" and shared.get(user_id) != access:
            ctx.records.share("customer", survivor_id, user_id, access)
    duplicate = ctx.records.update("customer", duplicate_id, {"merged_into": survivor_id}, duplicate["version"])
    ctx.records.delete("customer", duplicate_id)
    ctx.done(ctx.message("merge_done", duplicate=duplicate["name"], name=survivor["name"], count=moved))


# -- 7. lists and reminders -------------------------------------------------------------------------------


@hook("contact", "before_save", batch=True)
def keep_next_birthday(ctx: HookContext) -> None:
    """next_birthday is the birthday's next occurrence, for the "birthdays this week" lists and
    home card; the daily job roll_birthdays moves past ones on by a year."""
    today = ctx.records.runtime.now().date()
    current = ctx.record.get("next_birthday")
    if ctx.changed("birthday") or current is None or current < today:
        ctx.record["next_birthday"] = next_birthday(ctx.record.get("birthday"), today)


@job("roll_birthdays")
def roll_birthdays(ctx: JobContext) -> None:
    """Contacts whose birthday has passed get next year's date (daily)."""
    ids = sorted(set(ctx.records.ids("contact", ["next_birthday lt today"]))
                 | set(ctx.records.ids("contact", ["birthday is_not_empty", "next_birthday is_empty"])))
    for contact_id in ids:
        contact = ctx.records.get("contact", contact_id)
        ctx.records.update("contact", contact_id, {}, contact["version"])  # the hook recomputes it
    ctx.report.append(f"{len(ids)} contact(s) updated")


@job("remind_stale_customers")
def remind_stale_customers(ctx: JobContext) -> None:
    """Customers not followed up for followup_stale_days days go on today's follow-up list (daily).

    Only customers with an owner, outside the pool and with no next follow-up planned; their next
    follow-up time becomes today 09:00, so they show on the owner's home page ("Customers to follow
    up today") and, if nobody acts, in "Follow-up overdue". 0 days switches the job off."""
    days = int(ctx.setting("followup_stale_days") or 0)
    if days <= 0:
        ctx.report.append("followup_stale_days is 0: no reminders")
        return
    before = f"lt last_n_days:{days}"
    base = ["in_pool eq false", "owner is_not_empty", "next_follow_up_at is_empty"]
    stale: set[int] = set()
    for conditions in ([f"last_follow_up_at {before}", f"assigned_at {before}"],
                       [f"last_follow_up_at {before}", "assigned_at is_empty"],
                       ["last_follow_up_at is_empty", f"assigned_at {before}"]):
        stale |= set(ctx.records.ids("customer", [*base, *conditions]))
    due = datetime.combine(ctx.records.runtime.now().date(), time(9, 0))
    for customer_id in sorted(stale):
        customer = ctx.records.get("customer", customer_id)
        ctx.records.update("customer", customer_id, {"next_follow_up_at": due}, customer["version"])
    ctx.report.append(f"{len(stale)} customer(s) put on today's follow-up list")


# -- 8. quote approval and orders --------------------------------------------------------------------------

QUOTE_OPEN = ("draft", "rejected")  # statuses in which a quote's content may change
QUOTE_FREE_FIELDS = frozenset(("status", "remarks"))  # what may change on a submitted or approved quote
MANAGER_SCOPES = ("department", "subtree", "all")  # an approver's edit scope on quotes


@hook("quote", "before_validate")
def quote_approval_rules(ctx: HookContext) -> None:
    """Approvals go through the Approve / Reject actions; a quote that is submitted, approved, sent
    or accepted cannot change (except its status and remarks) until it goes back to draft; a quote
    needs lines to be submitted. Writes of the pack's own actions and hooks are trusted."""
    record, old = ctx.record, ctx.old
    if ctx.changed("status") and record.get("status") == "submitted" and not quote_has_lines(ctx, record.get("id")):
        ctx.reject(ctx.message("quote_no_lines"), field="status")
    if ctx.actor.is_system or old is None:
        return
    status, before = record.get("status"), old.get("status")
    if status != before and (status == "approved" or (status == "rejected" and before == "submitted")):
        ctx.reject(ctx.message("quote_use_approval_action"), field="status")
    if before not in QUOTE_OPEN:
        changed = [f for f in ctx.entity.user_fields if f.name not in QUOTE_FREE_FIELDS and not f.kind.derived
                   and ctx.changed(f.name)]
        if changed:
            ctx.reject(not_editable(ctx, old))


@hook("quote_line", "before_validate", "before_delete")
def quote_lines_follow_their_quote(ctx: HookContext) -> None:
    """Lines of a quote that is not a draft (or rejected) cannot be added, changed or removed."""
    if ctx.actor.is_system:
        return
    for quote_id in {q for q in (ctx.record.get("quote"), (ctx.old or {}).get("quote")) if q}:
        try:
            quote = ctx.records.get("quote", quote_id)
        except NotFound:
            continue
        if quote.get("status") not in QUOTE_OPEN:
            ctx.reject(not_editable(ctx, quote))


def quote_has_lines(ctx: Any, quote_id: int | None) -> bool:
    if not quote_id:
        return False
    return bool(ctx.records.query("quote_line", ListQuery(filters=[f"quote eq {quote_id}"], limit=1, count=False,
                                                          titles=())).rows)


def not_editable(ctx: Any, quote: dict[str, Any]) -> dict[str, str]:
    """quote_not_editable with the status's label in each language."""
    registry = ctx.records.registry
    stage = next((s for s in registry.entity("quote").field("status").stages if s.key == quote.get("status")), None)
    return {lang: registry.message("quote_not_editable", lang, code=quote.get("code") or "",
                                   status=stage.label[lang] if stage else quote.get("status"))
            for lang in ("en", "zh")}


def may_approve(ctx: ActionContext) -> None:
    access = ctx.records.runtime.access
    if access.scope(ctx.actor, ctx.entity, "edit") not in MANAGER_SCOPES or ctx.record.get("owner") == ctx.actor.user_id:
        ctx.reject(ctx.message("quote_approval_needs_manager"))


@action("quote", "submit")
def submit_quote(ctx: ActionContext) -> None:
    quote = ctx.record
    ctx.records.update("quote", quote["id"], {"status": "submitted", "approval_comment": None, "approved_by": None,
                                              "approved_at": None}, quote["version"])
    ctx.done(ctx.message("quote_submitted", code=quote["code"]))


@action("quote", "approve")
def approve_quote(ctx: ActionContext) -> None:
    decide_quote(ctx, "approved", "quote_approved")


@action("quote", "reject")
def reject_quote(ctx: ActionContext) -> None:
    decide_quote(ctx, "rejected", "quote_rejected")


def decide_quote(ctx: ActionContext, status: str, message: str) -> None:
    """A sales manager's decision, with the comment kept on the quote (and so in its history)."""
    may_approve(ctx)
    quote = ctx.record
    ctx.records.update("quote", quote["id"], {
        "status": status, "approval_comment": ctx.inputs.get("comment"), "approved_by": ctx.actor.user_id,
        "approved_at": ctx.records.runtime.now()}, quote["version"])
    ctx.done(ctx.message(message, code=quote["code"]))


@action("quote", "send")
def send_quote(ctx: ActionContext) -> None:
    quote = ctx.record
    valid_until = ctx.inputs.get("valid_until") or quote.get("valid_until")
    if valid_until is None:
        ctx.reject(ctx.message("quote_valid_until_required"), field="valid_until")
    ctx.records.update("quote", quote["id"], {"status": "sent", "valid_until": valid_until}, quote["version"])
    ctx.done(ctx.message("quote_sent", code=quote["code"]))


@action("quote", "accept")
def accept_quote(ctx: ActionContext) -> None:
    quote = ctx.record
    ctx.records.update("quote", quote["id"], {"status": "accepted"}, quote["version"])
    ctx.done(ctx.message("quote_accepted", code=quote["code"]))


@action("quote", "create_order")
def create_order(ctx: ActionContext) -> None:
    """An accepted quote becomes a sales order with the same customer, terms and lines, in one
    transaction; a quote gives one order only (an order already made from it, even in the
    recycle bin, refuses a second one)."""
    quote = ctx.record
    if not ctx.may("order", "create", None):
        ctx.reject(ctx.message("quote_order_not_allowed"))
    for trash in (False, True):
        existing = ctx.records.query("order", ListQuery(filters=[f"quote eq {quote['id']}"], trash=trash, limit=1,
                                                        count=False, titles=())).rows
        if existing:
            ctx.reject(ctx.message("quote_order_exists", code=quote["code"], order=existing[0]["code"]))
    order = ctx.records.create("order", {
        "customer": quote["customer"], "contact": quote.get("contact"), "quote": quote["id"],
        "payment_terms": quote.get("payment_terms"), "remarks": quote.get("remarks"), "owner": quote.get("owner")})
    lines = ctx.records.query("quote_line", ListQuery(filters=[f"quote eq {quote['id']}"], sort=["id"], limit=500,
                                                      titles=())).rows
    for line in lines:
        ctx.records.create("order_line", {
            "order": order["id"], "product": line["product"], "description": line.get("description"),
            "quantity": line["quantity"], "unit": line.get("unit"), "unit_price": line["unit_price"],
            "discount_percent": line.get("discount_percent")})
    discount = quote.get("discount_amount")
    if discount:  # orders have no overall discount: the salesperson adjusts the order's lines
        ctx.warn(ctx.message("quote_discount_not_copied", amount=str(discount)))
    ctx.records.update("quote", quote["id"], {"created_order": order["id"]}, quote["version"])
    ctx.done(ctx.message("quote_converted_to_order", code=quote["code"], order=order["code"]),
             open=("order", order["id"]))


@hook("order", "after_save")
def order_makes_a_deal(ctx: HookContext) -> None:
    """A new order makes its customer a transacting customer and sets its last deal time."""
    if ctx.is_new:
        record_deal(ctx, ctx.record["customer"], datetime.combine(ctx.record["order_date"], time(0, 0)))


@hook("opportunity", "after_stage_change")
def won_opportunity_makes_a_deal(ctx: HookContext) -> None:
    if ctx.stage_field == "stage" and ctx.record.get("stage") == "won":
        record_deal(ctx, ctx.record["customer"], ctx.records.runtime.now())


def record_deal(ctx: HookContext, customer_id: int, at: datetime) -> None:
    try:
        customer = ctx.records.get("customer", customer_id)
    except NotFound:
        return
    changes: dict[str, Any] = {"customer_type": "transacting"}
    if customer.get("last_deal_at") is None or at > customer["last_deal_at"]:
        changes["last_deal_at"] = at
    update_if_changed(ctx, "customer", customer, changes)


# -- 9. share and transfer ---------------------------------------------------------------------------------


@hook("customer", "after_save", batch=True)
def transfer_goes_with_the_customer(ctx: HookContext) -> None:
    """When a customer gets a new owner (transfer, bulk change of owner, claim, assignment from the
    pool), its contacts and its open opportunities of the previous owner go with it, so the new
    owner sees and works them. Won and lost opportunities, follow-ups, activities, quotes and
    orders stay with whoever did the work."""
    if ctx.old is None:
        return
    new_owner, old_owner = ctx.record.get("owner"), ctx.old.get("owner")
    if new_owner is None or new_owner == old_owner:
        return
    given_by = old_owner if old_owner is not None else ctx.old.get("previous_owner")  # from the pool: who had it
    customer = ctx.record["id"]
    move_owner(ctx, "contact", [f"customer eq {customer}", f"owner ne {new_owner}"], new_owner)
    if given_by is not None:
        move_owner(ctx, "opportunity", [f"customer eq {customer}", f"owner eq {given_by}", "stage not_in won,lost"],
                   new_owner)


def move_owner(ctx: HookContext, entity: str, filters: list[str], owner: int) -> None:
    while rows := ctx.records.query(entity, ListQuery(filters=filters, sort=["id"], limit=200, count=False,
                                                      titles=())).rows:
        for row in rows:
            ctx.records.update(entity, row["id"], {"owner": owner}, row["version"])
