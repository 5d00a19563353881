"""Behaviours of the membership retail pack (会员制门店): stored value, points, levels, segments,
birthday care and campaigns for segments. docs/packs/membership_retail.md describes each one for
administrators.

The money and the points are ledgers. A card's stored-value balance is derived from its valid
recharges and consumptions, and its points balance from its points entries (rollups and computed
fields: nobody can type a balance in). What the hooks guarantee is that no entry makes a balance
negative: before an entry is checked, its card row is locked in the entry's own transaction (an
update of the card through `ctx.records`, which reads it with SELECT ... FOR UPDATE on
PostgreSQL), so two clerks paying from the same card at the same moment are served one after the
other and the second sees what the first left. Recorded entries cannot be changed or deleted;
mistakes are voided (recharges, consumptions) or adjusted (points), which leaves a trail.

The pure helpers at the top (segment_of, bonus_for, points_for, months_before) are also used by
the pack's demo.py.

Beyond the public plugin API of docs/plugins.md, the code uses: the runtime's clock
(`ctx.records.runtime.now()`) and registry (`ctx.records.registry`: the pick-list of levels and
card statuses, the standard pack's hooks.py for its next_birthday rule; `.message()` for texts
written into records in one language); and `ctx.records.summarize(entity, ListQuery, group_by,
sums)`, the record service's grouped count and sum, for the members' 12-month figures and the
points expiry.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from types import ModuleType
from typing import Any

from engine.plugins import ActionContext, HookContext, JobContext, action, hook, job
from engine.runtime.errors import Conflict, NotFound, RecordError
from engine.runtime.query import ListQuery

ZERO = Decimal("0")
LOCK_ATTEMPTS = 5
CARE_HOUR = time(10, 0)  # activities the pack plans are due at 10:00

# Fields of a recorded entry that only the pack itself (void, merge) may change afterwards.
RECHARGE_FIXED = ("card", "store", "recharged_at", "amount", "bonus", "payment_channel", "status", "void_reason")
CONSUMPTION_FIXED = ("card", "store", "consumed_at", "amount", "discount_percent", "payment_method",
                     "stored_value_paid", "other_channel", "status", "void_reason")
POINTS_FIXED = ("card", "kind", "points", "consumption", "campaign")

# -- pure helpers ---------------------------------------------------------------------------------


def dec(value: Any, default: Decimal = ZERO) -> Decimal:
    """A setting or a field as a Decimal (settings of type decimal are stored as text)."""
    if value is None or value == "":
        return default
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return default


def amount_due(amount: Decimal | None, discount_percent: Decimal | None) -> Decimal | None:
    """What the member pays: the list price less the member discount (as the computed field)."""
    if amount is None:
        return None
    return (amount * (100 - (discount_percent or ZERO)) / 100).quantize(Decimal("0.01"))


def parse_bonus_rules(text: str | None) -> list[tuple[Decimal, Decimal]]:
    """'1000:100, 3000:400' -> [(1000, 100), (3000, 400)], highest threshold first; bad pairs are
    left out."""
    rules = []
    for part in (text or "").replace("，", ",").replace("：", ":").split(","):
        threshold, _, bonus = part.partition(":")
        try:
            rules.append((Decimal(threshold.strip()), Decimal(bonus.strip())))
        except InvalidOperation:
            continue
    return sorted((r for r in rules if r[0] > 0 and r[1] >= 0), reverse=True)


def bonus_for(amount: Decimal | None, rules_text: str | None) -> Decimal:
    """The bonus of a recharge of `amount` by the recharge bonus rules (the highest rule reached)."""
    if amount is None:
        return ZERO
    for threshold, bonus in parse_bonus_rules(rules_text):
        if amount >= threshold:
            return bonus.quantize(Decimal("0.01"))
    return ZERO


def points_for(due: Decimal | None, per_yuan: Decimal, multiplier: Decimal, birthday_multiplier: Decimal,
               birthday: date | None, day: date) -> int:
    """Points a consumption earns: amount due x points per yuan x the level's multiplier (x the
    birthday multiplier in the member's birthday month), rounded down."""
    if not due or due <= 0 or per_yuan <= 0:
        return 0
    points = due * per_yuan * multiplier
    if birthday is not None and birthday.month == day.month:
        points *= birthday_multiplier
    return int(points.to_integral_value(rounding=ROUND_FLOOR))


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (the month's last day when it has no such day)."""
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)  # not reached


def segment_of(member_since: date | None, last_visit: date | None, visits_12m: int, spend_12m: Decimal,
               today: date, settings: dict[str, Any]) -> str | None:
    """The consumption-frequency segment (RFM-like) of a member.

    - vip: visited within `sleeping_days` and spent `vip_spend` (or visited `vip_visits` times)
      in the last 12 months;
    - new: first card younger than `new_days` (and not a VIP yet);
    - active: visited within `sleeping_days`;
    - sleeping: last visit (or, never visited, the first card) `sleeping_days` to `lost_days` ago;
    - lost: longer ago than that.
    A customer without a card is no member: None.
    """
    if member_since is None:
        return None
    membership_days = (today - member_since).days
    recency = (today - last_visit).days if last_visit is not None else None
    if recency is not None and recency <= settings["sleeping_days"]:
        vip_visits = settings["vip_visits"]
        if spend_12m >= settings["vip_spend"] or (vip_visits > 0 and visits_12m >= vip_visits):
            return "vip"
        return "new" if membership_days <= settings["new_days"] else "active"
    if membership_days <= settings["new_days"]:
        return "new"
    idle = recency if recency is not None else membership_days
    return "sleeping" if idle <= settings["lost_days"] else "lost"


def segment_settings(ctx: Any) -> dict[str, Any]:
    return {"new_days": int(ctx.setting("segment_new_days") or 0),
            "sleeping_days": int(ctx.setting("segment_sleeping_days") or 0),
            "lost_days": int(ctx.setting("segment_lost_days") or 0),
            "vip_spend": dec(ctx.setting("segment_vip_spend"), Decimal("Infinity")),
            "vip_visits": int(ctx.setting("segment_vip_visits") or 0)}


# -- shared plumbing ----------------------------------------------------------------------------------


def standard_crm(ctx: Any) -> ModuleType | None:
    """The standard pack's hooks.py, for its pure helpers (next_birthday); loaded once."""
    name = "crm_pack_hooks.standard_crm"
    if name in sys.modules:
        return sys.modules[name]
    pack = next((p for p in ctx.records.registry.packs if p.name == "standard_crm" and p.hooks), None)
    if pack is None:
        return None
    spec = importlib.util.spec_from_file_location(name, pack.hooks)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def next_birthday(ctx: Any, birthday: date | None, today: date) -> date | None:
    """The birthday's next occurrence, today included: the standard pack's rule for contacts."""
    helpers = standard_crm(ctx)
    if helpers is not None:
        return helpers.next_birthday(birthday, today)  # type: ignore[no-any-return]
    if birthday is None:
        return None
    for year in (today.year, today.year + 1):
        try:
            day = birthday.replace(year=year)
        except ValueError:
            day = date(year, 2, 28)
        if day >= today:
            return day
    return None


def today_of(ctx: Any) -> date:
    return ctx.records.runtime.now().date()  # type: ignore[no-any-return]


def rows(ctx: Any, entity: str, filters: list[str], sort: list[str] | None = None,
         limit: int | None = None) -> list[dict[str, Any]]:
    """Every record matching `filters` (page by page, keyset), or the first `limit`."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        size = min(500, limit - len(found)) if limit is not None else 500
        page = ctx.records.query(entity, ListQuery(filters=filters, sort=sort or ["id"], limit=size, cursor=cursor,
                                                   count=False, titles=()))
        found += page.rows
        cursor = page.next_cursor
        if not cursor or (limit is not None and len(found) >= limit):
            return found


def update_if_changed(ctx: Any, entity: str, record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Write only the values that differ (an update that changes nothing writes no history)."""
    changes = {k: v for k, v in changes.items() if record.get(k) != v}
    if not changes:
        return record
    return ctx.records.update(entity, record["id"], changes, record["version"])  # type: ignore[no-any-return]


def text(ctx: Any, key: str, **params: Any) -> str:
    """A message in the language of the texts the pack writes into records (setting text_language)."""
    language = ctx.setting("text_language") or "zh"
    return ctx.records.runtime.registry.message(key, language, **params)  # type: ignore[no-any-return]


def lock_card(ctx: Any, card_id: int) -> dict[str, Any]:
    """The card, freshly read and locked until the end of the transaction.

    An update without changes through the record service locks the row (SELECT ... FOR UPDATE on
    PostgreSQL; SQLite has one writer at a time anyway) and returns it as it is now, so balances
    read from it include every entry committed before. A card changed by someone else between the
    read and the lock is read again."""
    for _ in range(LOCK_ATTEMPTS):
        card = ctx.records.get("member_card", card_id)
        try:
            return ctx.records.update("member_card", card_id, {}, card["version"])  # type: ignore[no-any-return]
        except Conflict:
            continue
    ctx.reject(ctx.message("card_busy"))
    raise AssertionError  # not reached: reject raises


def usable_card(ctx: HookContext, card_id: int | None) -> dict[str, Any] | None:
    """The entry's card, locked, after checking that it takes entries (active, not expired)."""
    if card_id is None:
        return None
    try:
        card = lock_card(ctx, card_id)
    except NotFound:
        return None  # validation reports the missing card
    if card.get("status") != "active":
        ctx.reject(card_not_active(ctx, card), field="card")
    if card.get("expires_on") is not None and card["expires_on"] < today_of(ctx):
        ctx.reject(ctx.message("card_expired", card=card["card_no"], day=card["expires_on"].isoformat()), field="card")
    return card


def say(ctx: Any, key: str, **params: Any) -> dict[str, str]:
    """Like ctx.message, but a parameter may be a label ({"en": ..., "zh": ...}) shown in each language."""
    registry = ctx.records.runtime.registry
    return {lang: registry.message(key, lang, **{k: v.get(lang, v.get("en")) if isinstance(v, dict) else v
                                                  for k, v in params.items()})
            for lang in ("en", "zh")}


def card_not_active(ctx: Any, card: dict[str, Any]) -> dict[str, str]:
    option = ctx.records.registry.picklists["card_status"].option(card.get("status") or "")
    return say(ctx, "card_not_active", card=card["card_no"], status=option.label if option else card.get("status"))


def actor_store(ctx: Any) -> int | None:
    """The open store whose team (department) the acting user works in, if any."""
    user = ctx.actor.user_id
    if user is None:
        return None
    employees = rows(ctx, "employee", [f"user eq {user}", "department is_not_empty"], limit=1)
    if not employees:
        return None
    stores = rows(ctx, "store", [f"department eq {employees[0]['department']}", "active eq true"], limit=1)
    return int(stores[0]["id"]) if stores else None


def fill_store(ctx: HookContext) -> None:
    if ctx.record.get("store") is None:
        ctx.record["store"] = actor_store(ctx)
    if ctx.record.get("store") is None:
        ctx.reject(ctx.message("store_required"), field="store")


def keep_recorded(ctx: HookContext, fixed: tuple[str, ...], message: str) -> None:
    """Recorded money and points stay as recorded: users may change the notes of an entry, not its
    amounts (the pack's own void and merge, acting as the system, may)."""
    if ctx.actor.is_system:
        return
    changed = [name for name in fixed if ctx.changed(name)]
    if changed:
        ctx.reject(say(ctx, message, entity=ctx.entity.label), field=changed[0])


def level_rules(ctx: Any) -> dict[str, dict[str, Any]]:
    """The card level rules by level key."""
    return {r["level"]: r for r in rows(ctx, "card_level", [], sort=["rank", "id"])}


def level_rank(ctx: Any, rules: dict[str, dict[str, Any]], level: str | None) -> int:
    """A level's rank: its rule's, else its place in the member_level pick-list."""
    if level is None:
        return -1
    if level in rules and rules[level].get("rank") is not None:
        return int(rules[level]["rank"])
    keys = [o.key for o in ctx.records.registry.picklists["member_level"].options]
    return keys.index(level) if level in keys else -1


def upgrade_card(ctx: Any, card: dict[str, Any], reached: list[str]) -> None:
    """Raise the card to the best of the levels `reached` when that is higher than its own."""
    rules = level_rules(ctx)
    best = max(reached, key=lambda level: level_rank(ctx, rules, level), default=None)
    if best is not None and level_rank(ctx, rules, best) > level_rank(ctx, rules, card.get("level")):
        ctx.records.update("member_card", card["id"], {"level": best}, card["version"])


def primary_card(ctx: Any, member_id: int) -> dict[str, Any] | None:
    """The member's newest active card (where gifts go)."""
    cards = rows(ctx, "member_card", [f"member eq {member_id}", "status eq active"], sort=["-issued_on", "-id"],
                 limit=1)
    return cards[0] if cards else None


# -- members: birthday, level, segment ---------------------------------------------------------------


@hook("customer", "before_save", batch=True)
def keep_member_birthday(ctx: HookContext) -> None:
    """next_birthday is the birthday's next occurrence (for the birthday lists, the home card and
    the birthday care job, which also moves past ones on by a year)."""
    today = today_of(ctx)
    current = ctx.record.get("next_birthday")
    if ctx.changed("birthday") or (ctx.record.get("birthday") and (current is None or current < today)):
        ctx.record["next_birthday"] = next_birthday(ctx, ctx.record.get("birthday"), today)


def member_values(ctx: Any, member: dict[str, Any], cards: list[dict[str, Any]], visits_12m: int,
                  spend_12m: Decimal, last_visit: datetime | None, rules: dict[str, dict[str, Any]],
                  settings: dict[str, Any], today: date) -> dict[str, Any]:
    """What a member's derived fields should be, from its cards and consumptions."""
    live = [c for c in cards if c.get("status") != "cancelled"]
    issued = sorted((c for c in cards if c.get("issued_on")), key=lambda c: (c["issued_on"], c["id"]))
    values: dict[str, Any] = {
        "member_since": issued[0]["issued_on"] if issued else None,
        "member_level": max((c["level"] for c in live if c.get("level")), key=lambda lv: level_rank(ctx, rules, lv),
                            default=None),
        "last_visit_at": last_visit,
        "visits_12m": visits_12m if cards else None,
        "spend_12m": spend_12m.quantize(Decimal("0.01")) if cards else None,
    }
    if member.get("home_store") is None and issued and issued[0].get("store"):
        values["home_store"] = issued[0]["store"]
    segment = segment_of(values["member_since"] if live else None, last_visit.date() if last_visit else None,
                         visits_12m, spend_12m, today, settings)
    values["segment"] = segment
    if segment != member.get("segment"):
        values["segment_at"] = ctx.records.runtime.now() if segment else None
    return values


def refresh_member(ctx: Any, member_id: int | None) -> None:
    """Recompute one member's level, dates, 12-month figures and segment (after a card or a
    consumption changed)."""
    if member_id is None:
        return
    try:
        member = ctx.records.get("customer", member_id)
    except NotFound:
        return  # in the recycle bin
    cards = rows(ctx, "member_card", [f"member eq {member_id}"])
    window = ctx.records.summarize("card_consumption", ListQuery(filters=[
        f"member eq {member_id}", "status eq valid", "consumed_at gte last_n_days:365"]), "member", ["amount_due"])
    stats = window.get(member_id) or {"count": 0, "sums": {"amount_due": ZERO}}
    latest = rows(ctx, "card_consumption", [f"member eq {member_id}", "status eq valid"],
                  sort=["-consumed_at", "-id"], limit=1)
    values = member_values(ctx, member, cards, int(stats["count"]), dec(stats["sums"].get("amount_due")),
                           latest[0]["consumed_at"] if latest else None, level_rules(ctx), segment_settings(ctx),
                           today_of(ctx))
    update_if_changed(ctx, "customer", member, values)


@hook("member_card", "before_validate")
def card_rules(ctx: HookContext) -> None:
    """A new card gets the issuing clerk's store when none is given; level, status and issue date
    (filled by their defaults on creation) cannot be emptied."""
    if ctx.is_new:
        fill_store(ctx)
        return
    for name in ("level", "status", "issued_on"):
        if ctx.record.get(name) is None:
            ctx.reject(ctx.message("field_required"), field=name)


@hook("member_card", "after_save")
def card_updates_member(ctx: HookContext) -> None:
    """Issuing, upgrading, cancelling or moving a card updates its member (level, member since,
    home store, segment). Cancelling a card that still holds stored value is warned about."""
    watched = ("member", "level", "status", "issued_on", "store")
    if not ctx.is_new and not any(ctx.changed(name) for name in watched):
        return
    refresh_member(ctx, ctx.record.get("member"))
    if ctx.old is not None and ctx.old.get("member") not in (None, ctx.record.get("member")):
        refresh_member(ctx, ctx.old["member"])
    if ctx.changed("status") and ctx.record.get("status") == "cancelled" and (ctx.record.get("balance") or 0) > 0:
        ctx.warn(ctx.message("cancelled_with_balance", card=ctx.record["card_no"], balance=ctx.record["balance"]))


# -- stored value: recharges -----------------------------------------------------------------------------


@hook("card_recharge", "before_validate")
def recharge_rules(ctx: HookContext) -> None:
    """A recharge goes onto an active card; it gets the card's member, the clerk's store and the
    bonus of the recharge bonus rules (unless a store manager typed one)."""
    if not ctx.is_new:
        keep_recorded(ctx, RECHARGE_FIXED, "entry_fixed_void")
        return
    record = ctx.record
    card = usable_card(ctx, record.get("card"))
    if card is None:
        return
    ctx.extra["card"] = card
    record["member"] = card["member"]
    fill_store(ctx)
    if record.get("bonus") is None and record.get("amount") is not None:
        record["bonus"] = bonus_for(record["amount"], ctx.setting("recharge_bonus_rules"))


@hook("card_recharge", "before_save")
def recharge_balance_after(ctx: HookContext) -> None:
    if ctx.is_new and "card" in ctx.extra:
        credit = (ctx.record.get("amount") or ZERO) + (ctx.record.get("bonus") or ZERO)
        ctx.record["balance_after"] = (ctx.extra["card"].get("balance") or ZERO) + credit


@hook("card_recharge", "after_save")
def recharge_upgrades_card(ctx: HookContext) -> None:
    """A single recharge of a level's 'upgrade at a single recharge of' raises the card to it."""
    if not ctx.is_new:
        return
    amount = ctx.record.get("amount") or ZERO
    reached = [level for level, rule in level_rules(ctx).items()
               if rule.get("upgrade_recharge") is not None and amount >= rule["upgrade_recharge"]]
    if reached:
        upgrade_card(ctx, ctx.records.get("member_card", ctx.record["card"]), reached)


@action("card_recharge", "void")
def void_recharge(ctx: ActionContext) -> None:
    """Void a recharge recorded by mistake; refused when the card no longer holds its credit."""
    recharge = ctx.record
    card = lock_card(ctx, recharge["card"])
    credit = recharge.get("total_credit") or ZERO
    if (card.get("balance") or ZERO) < credit:
        ctx.reject(ctx.message("void_recharge_spent", credit=credit, balance=card.get("balance") or ZERO))
    ctx.records.update("card_recharge", recharge["id"], {"status": "voided", "void_reason": ctx.inputs["reason"]},
                       recharge["version"])
    ctx.done(ctx.message("recharge_voided", code=recharge["code"], credit=credit))


# -- stored value: consumptions and the points they earn --------------------------------------------------


@hook("card_consumption", "before_validate")
def consumption_rules(ctx: HookContext) -> None:
    """A consumption on an active card: the card's member, the clerk's store, the level's discount,
    the part paid from stored value by the payment method, and never more than the card holds."""
    if not ctx.is_new:
        keep_recorded(ctx, CONSUMPTION_FIXED, "entry_fixed_void")
        return
    record = ctx.record
    card = usable_card(ctx, record.get("card"))
    if card is None:
        return
    ctx.extra["card"] = card
    record["member"] = card["member"]
    fill_store(ctx)
    rule = level_rules(ctx).get(card.get("level") or "")
    ctx.extra["rule"] = rule
    if record.get("discount_percent") is None and rule and rule.get("discount_percent"):
        record["discount_percent"] = rule["discount_percent"]
    consumed_at = record.get("consumed_at")
    if consumed_at is not None and consumed_at > ctx.records.runtime.now() + timedelta(minutes=10):
        ctx.reject(ctx.message("consumption_in_future"), field="consumed_at")
    due = amount_due(record.get("amount"), record.get("discount_percent"))
    if due is None:
        return  # validation reports the missing amount
    method = record.get("payment_method")
    if method == "stored_value":
        record["stored_value_paid"] = due
        record["other_channel"] = None
    elif method == "mixed":
        paid = record.get("stored_value_paid")
        if paid is None or paid <= 0:
            ctx.reject(ctx.message("mixed_needs_stored_part"), field="stored_value_paid")
        if paid > due:
            ctx.reject(ctx.message("stored_part_exceeds_due", paid=paid, due=due), field="stored_value_paid")
        if paid < due and not record.get("other_channel"):
            ctx.reject(ctx.message("mixed_needs_channel", rest=due - paid), field="other_channel")
    else:
        record["stored_value_paid"] = ZERO
        record["other_channel"] = None
    paid = record.get("stored_value_paid") or ZERO
    balance = card.get("balance") or ZERO
    if paid > balance:
        ctx.reject(ctx.message("stored_value_insufficient", card=card["card_no"], balance=balance, needed=paid),
                   field="stored_value_paid" if method == "mixed" else "payment_method")


@hook("card_consumption", "before_save")
def consumption_points_and_balance(ctx: HookContext) -> None:
    """The card's balance after paying, and the points earned (points per yuan x the level's
    multiplier, x the birthday multiplier in the member's birthday month)."""
    if not ctx.is_new or "card" not in ctx.extra:
        return
    record, card, rule = ctx.record, ctx.extra["card"], ctx.extra.get("rule")
    record["balance_after"] = (card.get("balance") or ZERO) - (record.get("stored_value_paid") or ZERO)
    member = ctx.records.get("customer", card["member"])
    day = (record.get("consumed_at") or ctx.records.runtime.now()).date()
    multiplier = dec(rule.get("points_multiplier") if rule else None, Decimal("1"))
    record["points_earned"] = points_for(amount_due(record.get("amount"), record.get("discount_percent")),
                                         dec(ctx.setting("points_per_yuan")), multiplier,
                                         dec(ctx.setting("birthday_points_multiplier"), Decimal("1")),
                                         member.get("birthday"), day)


@hook("card_consumption", "after_save")
def consumption_follow_up(ctx: HookContext) -> None:
    """The points go onto the card (an 'earn' entry), the card may reach a higher level by its
    total spend, and the member's last visit, figures and segment follow at once."""
    if not ctx.is_new:
        if ctx.changed("member") and ctx.old is not None:  # moved by a merge of two customers
            refresh_member(ctx, ctx.old.get("member"))
            refresh_member(ctx, ctx.record.get("member"))
        return
    record = ctx.record
    if record.get("points_earned"):
        ctx.records.create("points_entry", {
            "card": record["card"], "kind": "earn", "points": record["points_earned"], "consumption": record["id"],
            "reason": (record.get("items") or "")[:300], "owner": record.get("owner")})
    card = ctx.records.get("member_card", record["card"])
    spent = card.get("total_spent") or ZERO
    reached = [level for level, rule in level_rules(ctx).items()
               if rule.get("upgrade_spend") is not None and spent >= rule["upgrade_spend"]]
    if reached:
        upgrade_card(ctx, card, reached)
    refresh_member(ctx, record.get("member"))


@action("card_consumption", "void")
def void_consumption(ctx: ActionContext) -> None:
    """Void a consumption recorded by mistake: its stored value goes back onto the card and the
    points it earned are taken back (refused when they have been used already)."""
    consumption = ctx.record
    card = lock_card(ctx, consumption["card"])
    earned = consumption.get("points_earned") or 0
    if earned > (card.get("points_balance") or 0):
        ctx.reject(ctx.message("void_points_used", points=earned, balance=card.get("points_balance") or 0))
    ctx.records.update("card_consumption", consumption["id"],
                       {"status": "voided", "void_reason": ctx.inputs["reason"]}, consumption["version"])
    if earned:
        ctx.records.create("points_entry", {
            "card": card["id"], "kind": "adjust", "points": -earned, "consumption": consumption["id"],
            "reason": text(ctx, "points_reason_void", code=consumption["code"]), "owner": consumption.get("owner")})
    refresh_member(ctx, consumption.get("member"))
    ctx.done(ctx.message("consumption_voided", code=consumption["code"], amount=consumption.get("stored_value_paid")
                         or ZERO, points=earned))


# -- the points ledger ------------------------------------------------------------------------------------


@hook("points_entry", "before_validate")
def points_rules(ctx: HookContext) -> None:
    """Points move only by entries, and the balance never goes below zero.

    earn (from consumptions) and expire (the job) are the pack's own; redemptions need an active
    card; adjustments and gifts need the right to edit the card (store managers). The sign follows
    the type: redeem and expire take points off whatever sign was typed, earn and gift add them."""
    if not ctx.is_new:
        keep_recorded(ctx, POINTS_FIXED, "entry_fixed_adjust")
        return
    record = ctx.record
    if record.get("card") is None:
        return
    try:
        card = lock_card(ctx, record["card"])
    except NotFound:
        return  # validation reports the missing card
    record["member"] = card["member"]
    kind, points = record.get("kind"), record.get("points")
    if points is None or kind is None:
        return  # validation reports what is missing
    if not ctx.actor.is_system:
        if kind in ("earn", "expire"):
            ctx.reject(ctx.message("points_kind_automatic"), field="kind")
        if kind in ("adjust", "gift") and not ctx.may("member_card", "edit", card):
            ctx.reject(ctx.message("points_adjust_needs_manager"), field="kind")
        if kind == "redeem" and card.get("status") != "active":
            ctx.reject(card_not_active(ctx, card), field="card")
    if points == 0:
        ctx.reject(ctx.message("points_zero"), field="points")
    if kind in ("earn", "gift"):
        points = abs(points)
    elif kind in ("redeem", "expire"):
        points = -abs(points)
    record["points"] = points
    balance = card.get("points_balance") or 0
    if balance + points < 0:
        ctx.reject(ctx.message("points_insufficient", card=card["card_no"], balance=balance, needed=-points),
                   field="points")
    record["balance_after"] = balance + points


# -- entries are never deleted ------------------------------------------------------------------------------


@hook("card_recharge", "before_delete")
@hook("card_consumption", "before_delete")
def ledger_entries_stay(ctx: HookContext) -> None:
    """A recharge or consumption is voided, never deleted (the balance would change without a trace)."""
    ctx.reject(ctx.message("entry_not_deletable_void"))


@hook("points_entry", "before_delete")
def points_entries_stay(ctx: HookContext) -> None:
    ctx.reject(ctx.message("entry_not_deletable_adjust"))


# -- scheduled jobs --------------------------------------------------------------------------------------------


@job("expire_points")
def expire_points(ctx: JobContext) -> None:
    """Points earned more than points_expiry_months ago and not used yet expire (daily).

    Points are used oldest first: what expires on a card is what it earned (or was given) before
    the cut-off less everything it has used or lost since it exists, never more than its balance."""
    months = int(ctx.setting("points_expiry_months") or 0)
    if months <= 0:
        ctx.report.append("points_expiry_months is 0: points never expire")
        return
    cutoff = months_before(today_of(ctx), months)
    old = ctx.records.summarize("points_entry", ListQuery(filters=["points gt 0", f"entry_at lt {cutoff.isoformat()}"]),
                                "card", ["points"])
    used = ctx.records.summarize("points_entry", ListQuery(filters=["points lt 0"]), "card", ["points"])
    expired = total = 0
    for card_id, earned in sorted(old.items()):
        spent = (used.get(card_id) or {"sums": {"points": 0}})["sums"]["points"] or 0
        lapsing = int(earned["sums"]["points"] or 0) + int(spent)
        if lapsing <= 0:
            continue
        card = ctx.records.get("member_card", card_id)
        lapsing = min(lapsing, int(card.get("points_balance") or 0))
        if lapsing <= 0:
            continue
        ctx.records.create("points_entry", {"card": card_id, "kind": "expire", "points": -lapsing,
                                            "reason": text(ctx, "points_reason_expired", day=cutoff.isoformat()),
                                            "owner": card.get("owner")})
        expired += 1
        total += lapsing
    ctx.report.append(f"{total} point(s) expired on {expired} card(s) (earned before {cutoff.isoformat()})")


@job("refresh_member_segments")
def refresh_member_segments(ctx: JobContext) -> None:
    """Every member's figures, level and segment: new, active, VIP, sleeping, lost (nightly).

    Level, member since, last visit, 12-month visits and spend, and the segment they give. A
    member's record is written only when something changed, so the history shows when a member
    moved from one segment to another."""
    today = today_of(ctx)
    settings, rules = segment_settings(ctx), level_rules(ctx)
    cards_of: dict[int, list[dict[str, Any]]] = {}
    for card in rows(ctx, "member_card", []):
        cards_of.setdefault(int(card["member"]), []).append(card)
    window = ctx.records.summarize("card_consumption", ListQuery(filters=[
        "status eq valid", "consumed_at gte last_n_days:365"]), "member", ["amount_due"])
    members = {int(m["id"]): m for m in rows(ctx, "customer", ["card_count gt 0"])}
    members.update({int(m["id"]): m for m in rows(ctx, "customer", ["segment is_not_empty"])})  # left the club
    changed = 0
    counts: dict[str, int] = {}
    year_ago = datetime.combine(today - timedelta(days=364), time())
    for member_id, member in sorted(members.items()):
        stats = window.get(member_id) or {"count": 0, "sums": {"amount_due": ZERO}}
        last_visit = member.get("last_visit_at")
        if stats["count"] and (last_visit is None or last_visit < year_ago):  # loaded in bulk, or voided
            latest = rows(ctx, "card_consumption", [f"member eq {member_id}", "status eq valid"],
                          sort=["-consumed_at", "-id"], limit=1)
            last_visit = latest[0]["consumed_at"] if latest else None
        values = member_values(ctx, member, cards_of.get(member_id, []), int(stats["count"]),
                               dec(stats["sums"].get("amount_due")), last_visit, rules, settings, today)
        counts[values["segment"] or "-"] = counts.get(values["segment"] or "-", 0) + 1
        try:
            if update_if_changed(ctx, "customer", member, values) is not member:
                changed += 1
        except RecordError as exc:
            ctx.report.append(f"customer {member_id}: {exc.message.text('en')}")
    ctx.report.append(f"{len(members)} member(s), {changed} updated; segments: "
                      + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@job("member_birthday_care")
def member_birthday_care(ctx: JobContext) -> None:
    """Birthday care for members whose birthday is coming; past next birthdays move on (daily).

    Members whose birthday is within birthday_care_days get a birthday care activity on their
    owner's list (once per birthday), and the birthday gift points when that setting is above 0."""
    today = today_of(ctx)
    stale = rows(ctx, "customer", ["next_birthday lt today"]) + \
        rows(ctx, "customer", ["birthday is_not_empty", "next_birthday is_empty"])
    for customer in stale:
        ctx.records.update("customer", customer["id"], {}, customer["version"])  # the hook moves it on
    ctx.report.append(f"{len(stale)} next birthday(s) moved on")
    days = int(ctx.setting("birthday_care_days") or 0)
    if days <= 0:
        ctx.report.append("birthday_care_days is 0: no birthday care planned")
        return
    gift = int(ctx.setting("birthday_gift_points") or 0)
    planned = gifts = 0
    for member in rows(ctx, "customer", ["card_count gt 0", f"next_birthday eq next_n_days:{days}"],
                       sort=["next_birthday", "id"]):
        birthday = member["next_birthday"]
        if member.get("last_birthday_care_on") == birthday:
            continue
        owner = member.get("owner") or store_manager_of(ctx, member.get("home_store"))
        ctx.records.create("activity", {
            "activity_type": "wechat", "status": "planned", "customer": member["id"], "owner": owner,
            "planned_start": datetime.combine(today, CARE_HOUR),
            "subject": text(ctx, "birthday_care_subject", name=member["name"], day=f"{birthday.month}-{birthday.day}")[:200],
            "description": text(ctx, "birthday_care_description", name=member["name"],
                                 day=f"{birthday.month}-{birthday.day}", points=gift)})
        planned += 1
        card = primary_card(ctx, member["id"]) if gift > 0 else None
        if card is not None:
            ctx.records.create("points_entry", {"card": card["id"], "kind": "gift", "points": gift, "owner": owner,
                                                "reason": text(ctx, "points_reason_birthday", year=birthday.year)})
            gifts += 1
        fresh = ctx.records.get("customer", member["id"])
        ctx.records.update("customer", member["id"], {"last_birthday_care_on": birthday}, fresh["version"])
    ctx.report.append(f"{planned} birthday care activit(y/ies) planned, {gifts} birthday gift(s) of {gift} points")


def store_manager_of(ctx: Any, store_id: int | None) -> int | None:
    if store_id is None:
        return None
    try:
        return ctx.records.get("store", store_id).get("manager")  # type: ignore[no-any-return]
    except NotFound:
        return None


# -- campaigns for segments ------------------------------------------------------------------------------------


def campaign_filters(campaign: dict[str, Any]) -> list[str]:
    """The members a campaign targets, as list filters."""
    filters = ["card_count gt 0", "marketing_opt_in eq true"]
    if campaign.get("target_segments"):
        filters.append("segment in " + ",".join(campaign["target_segments"]))
    if campaign.get("target_levels"):
        filters.append("member_level in " + ",".join(campaign["target_levels"]))
    if campaign.get("target_store"):
        filters.append(f"home_store eq {campaign['target_store']}")
    return filters


@action("campaign", "reach_members")
def reach_members(ctx: ActionContext) -> None:
    """One planned activity per targeted member (not reached by this campaign before), owned by
    the member's owner, and optionally gift points on the member's newest active card."""
    campaign = ctx.record
    reached = {a["customer"] for a in rows(ctx, "activity", [f"campaign eq {campaign['id']}", "customer is_not_empty"])}
    targets = [m for m in rows(ctx, "customer", campaign_filters(campaign)) if m["id"] not in reached]
    day = ctx.inputs.get("planned_on") or today_of(ctx)
    subject = (ctx.inputs.get("subject") or campaign["name"])[:200]
    gift = int(ctx.inputs.get("gift_points") or 0)
    gifts = 0
    for member in targets:
        owner = member.get("owner") or store_manager_of(ctx, member.get("home_store")) or campaign.get("owner")
        ctx.records.create("activity", {
            "activity_type": ctx.inputs.get("activity_type") or "sms", "status": "planned", "subject": subject,
            "planned_start": datetime.combine(day, CARE_HOUR), "customer": member["id"], "campaign": campaign["id"],
            "owner": owner, "description": campaign.get("description")})
        card = primary_card(ctx, member["id"]) if gift > 0 else None
        if card is not None:
            ctx.records.create("points_entry", {"card": card["id"], "kind": "gift", "points": gift, "owner": owner,
                                                "campaign": campaign["id"], "reason": campaign["name"][:300]})
            gifts += 1
    ctx.done(ctx.message("campaign_reached", count=len(targets), skipped=len(reached), gifts=gifts, points=gift))
