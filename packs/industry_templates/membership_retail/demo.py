"""Demo data of the membership retail pack (`crm demo --pack membership_retail`).

丽颜美容, a beauty and skin-care chain with four stores in Shanghai, Hangzhou and Suzhou: its store
team (an operations director, two store managers, four clerks), the level rules, a few hundred
members with their cards, and eighteen months of recharges, consumptions and points, simulated
card by card so that no balance ever goes below zero. A few members have a birthday this week
and a few cards run low, and clerk1 has served members today, so the store's home page and lists
have something in them. The segment and birthday care jobs run at the end, and one campaign for
sleeping members has reached its members.

The volume goes through bulk inserts (no hooks): the values the hooks keep (members, stores,
balances after, points earned, next birthdays, duplicate-check keys) are computed here with the
same functions the hooks use.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.demo import DemoContext
from engine.plugins import JobContext

MEMBERS = 240
HISTORY_DAYS = 540  # eighteen months of consumptions

# (code, name, department code, region, province, city, address, phone, opened)
STORES = (
    ("SH01", "丽颜美容·上海静安店", "STORE-SH01", "east", "shanghai", "上海", "静安区南京西路1266号恒隆广场二期5楼",
     "021-62881266", "2019-05-18"),
    ("SH02", "丽颜美容·上海徐汇店", "STORE-SH02", "east", "shanghai", "上海", "徐汇区衡山路890号2楼", "021-64318890",
     "2020-09-01"),
    ("HZ01", "丽颜美容·杭州西湖店", "STORE-HZ01", "east", "zhejiang", "杭州", "上城区湖滨路28号湖滨银泰in77 C区3楼",
     "0571-87061128", "2021-04-16"),
    ("SZ01", "丽颜美容·苏州园区店", "STORE-SZ01", "east", "jiangsu", "苏州", "工业园区星海街200号星海广场1楼",
     "0512-62858200", "2022-10-08"),
)
OPS = ("STORE-OPS", "门店运营部")

# (username, name, roles, department code, position, store code or None)
STAFF = (
    ("opsdirector", "赵敏", ("store_manager",), "STORE-OPS", "门店运营总监", None),
    ("storemgr1", "周婷", ("store_manager",), "STORE-SH01", "店长", "SH01"),
    ("storemgr2", "孙悦", ("store_manager",), "STORE-HZ01", "店长", "HZ01"),
    ("clerk1", "林小雨", ("store_clerk",), "STORE-SH01", "前台收银", "SH01"),
    ("clerk2", "何佳", ("store_clerk",), "STORE-SH02", "前台收银", "SH02"),
    ("clerk3", "郑晓", ("store_clerk",), "STORE-HZ01", "美容顾问", "HZ01"),
    ("clerk4", "宋琪", ("store_clerk",), "STORE-SZ01", "美容顾问", "SZ01"),
)
STORE_MANAGER = {"SH01": "storemgr1", "SH02": "opsdirector", "HZ01": "storemgr2", "SZ01": "opsdirector"}
STORE_WEIGHTS = {"SH01": 35, "SH02": 25, "HZ01": 25, "SZ01": 15}

# (level, name, rank, upgrade at total spend, upgrade at one recharge, discount %, points multiplier, benefits)
LEVELS = (
    ("normal", "普通会员", 0, None, None, "0", "1", "开卡即享会员价项目、生日当月消费双倍积分。"),
    ("silver", "银卡会员", 1, "3000", "2000", "5", "1.2", "全场9.5折，积分1.2倍，每年2次免费肩颈护理。"),
    ("gold", "金卡会员", 2, "10000", "5000", "10", "1.5", "全场9折，积分1.5倍，专属美容顾问，每季度1次免费皮肤检测。"),
    ("diamond", "钻石会员", 3, "30000", "20000", "15", "2", "全场8.5折，积分2倍，优先预约，生日礼遇套餐。"),
)

# (items, category, list price)
SERVICES = (
    ("面部深层清洁", "service", "198"), ("补水保湿护理", "service", "298"), ("肩颈舒缓SPA", "service", "358"),
    ("眼部抗皱护理", "service", "268"), ("头皮养护", "service", "238"), ("精油全身护理", "service", "458"),
    ("手部护理", "service", "128"), ("小气泡清洁+冷喷", "service", "168"), ("光子嫩肤（单次）", "service", "880"),
    ("美白焕肤疗程（6次）", "package", "1980"), ("抗衰紧致疗程（10次）", "package", "3680"),
    ("玻尿酸精华液", "product", "580"), ("修护面霜", "product", "420"), ("防晒隔离乳", "product", "198"),
    ("氨基酸洁面乳", "product", "128"),
)
GIFTS = (("品牌面膜一盒", 300), ("护手霜", 200), ("免费肩颈护理一次", 500), ("定制化妆包", 400))
RECHARGES = (("1000", 30), ("2000", 25), ("3000", 20), ("5000", 15), ("10000", 6), ("20000", 4))
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏"
FEMALE = "芳娜敏静丽艳娟霞秀婷雪琳玲洁颖倩慧梅燕丹萍红晶欣怡佳悦蕾薇琴云莉月岚思雨梦瑶诗涵"
MALE = "伟强磊军勇杰涛明超刚平辉鹏华飞宇浩凯健俊帆旭宁峰毅"
MOBILE = ("135", "136", "137", "138", "139", "150", "151", "158", "159", "186", "187", "188", "189", "177", "180")
NOTES = ("对果酸类产品敏感", "偏好周末上午预约", "指定美容顾问服务", "孕期，避免精油类项目", "皮肤偏干，注重补水",
         "不喜推销，服务时少打扰", "对芒果过敏")
# Visit behaviour: (weight, mean days between visits, days since the last visit: low, high)
PROFILES = {"vip": (8, 12, 0, 20), "regular": (35, 30, 0, 60), "occasional": (27, 60, 10, 85),
            "sleeping": (16, 45, 95, 175), "lost": (14, 50, 185, 400)}


@dataclass
class Card:
    """A card as the simulation goes: what the hooks would keep, entry by entry (its rows get the
    card's and the member's ids once they are inserted)."""

    store: int
    owner: int | None
    status: str
    level: str
    birthday: date | None
    balance: Decimal = Decimal("0")
    points: int = 0
    spent: Decimal = Decimal("0")
    recharges: list[dict[str, Any]] = field(default_factory=list)
    consumptions: list[dict[str, Any]] = field(default_factory=list)
    points_entries: list[dict[str, Any]] = field(default_factory=list)
    last_visit: datetime | None = None


Rules = dict[str, tuple[int, Decimal | None, Decimal | None, Decimal, Decimal]]


def _upgrade(card: Card, reached: list[str], rules: Rules) -> None:
    """Cards only move up, as the hooks do."""
    best = max(reached, key=lambda level: rules[level][0], default=None)
    if best is not None and rules[best][0] > rules[card.level][0]:
        card.level = best


def _recharge(demo: DemoContext, card: Card, at: datetime, staff: list[int], rules: Rules, bonus_rules: str) -> None:
    rng = demo.rng
    amount = Decimal(rng.choices([a for a, _ in RECHARGES], [w for _, w in RECHARGES])[0])
    bonus = _hooks(demo).bonus_for(amount, bonus_rules)
    card.balance += amount + bonus
    card.recharges.append({"store": card.store, "recharged_at": at, "amount": amount, "bonus": bonus,
                           "balance_after": card.balance, "status": "valid", "owner": rng.choice(staff),
                           "payment_channel": rng.choice(("wechat_pay", "wechat_pay", "alipay", "bank_card"))})
    _upgrade(card, [level for level, rule in rules.items() if rule[2] is not None and amount >= rule[2]], rules)


def _consume(card: Card, row: dict[str, Any]) -> None:
    """A consumption (and the points it earns) on the simulated card."""
    due = (row["amount"] * (100 - (row.get("discount_percent") or 0)) / 100).quantize(Decimal("0.01"))
    card.balance -= row["stored_value_paid"]
    card.spent += due
    card.last_visit = max(card.last_visit or row["consumed_at"], row["consumed_at"])
    row.update(store=card.store, balance_after=card.balance, status="valid", _due=due)  # _keys are not saved
    card.consumptions.append(row)
    if row["points_earned"]:
        card.points += row["points_earned"]
        card.points_entries.append({"kind": "earn", "points": row["points_earned"], "balance_after": card.points,
                                    "entry_at": row["consumed_at"], "reason": row["items"], "owner": row["owner"],
                                    "_consumption": row})


class _Settings:
    """The pack's settings, as hooks.segment_settings reads them."""

    def __init__(self, demo: DemoContext) -> None:
        self.demo = demo

    def setting(self, key: str) -> Any:
        return self.demo.runtime.setting(key)


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _hooks(demo: DemoContext) -> ModuleType:
    """This pack's hooks.py (the same module the runtime loaded, when it did)."""
    return _load("crm_pack_hooks.membership_retail", Path(__file__).with_name("hooks.py"))


def generate(demo: DemoContext) -> None:
    hooks = _hooks(demo)
    standard = _load("crm_pack_hooks.standard_crm", Path(next(p.hooks for p in demo.runtime.registry.packs
                                                              if p.name == "standard_crm")))
    rng, today = demo.rng, demo.today
    now = demo.runtime.now()

    # -- the organisation: an operations department above one department per store
    hq = demo.ids("department", "code eq HQ", limit=1)
    ops = demo.create("department", {"name": OPS[1], "code": OPS[0], "parent": hq[0] if hq else None})["id"]
    departments = {code: demo.create("department", {"name": name.split("·")[-1], "code": dept, "parent": ops})["id"]
                   for code, name, dept, *_ in STORES}
    users = {username: demo.user(username, name, roles, department, position)
             for username, name, roles, department, position, _ in STAFF}
    stores: dict[str, int] = {}
    for code, name, _dept, region, province, city, address, phone, opened in STORES:
        stores[code] = demo.create("store", {
            "code": code, "name": name, "department": departments[code], "region": region, "province": province,
            "city": city, "address": address, "phone": phone, "opened_on": opened, "business_hours": "10:00-21:00",
            "manager": users[STORE_MANAGER[code]], "active": True, "owner": users[STORE_MANAGER[code]]})["id"]
    for username, *_, store in STAFF:
        employee = demo.ids("employee", f"user eq {users[username]}", limit=1)
        if store and STORE_MANAGER[store] == username and employee:
            demo.records.update("department", departments[store], {"manager": employee[0]},
                                demo.records.get("department", departments[store])["version"])
    for level, name, rank, spend, recharge, discount, multiplier, benefits in LEVELS:
        demo.create("card_level", {"level": level, "name": name, "rank": rank, "upgrade_spend": spend,
                                   "upgrade_recharge": recharge, "discount_percent": discount,
                                   "points_multiplier": multiplier, "description": benefits})
    rules = {level: (rank, Decimal(spend) if spend else None, Decimal(recharge) if recharge else None,
                     Decimal(discount), Decimal(multiplier)) for level, _, rank, spend, recharge, discount, multiplier, _
             in LEVELS}
    staff_of = {code: [users[u] for u, *_, store in STAFF if store == code] or [users[STORE_MANAGER[code]]]
                for code in stores}

    # -- members (customers of category "individual"), a sixth of them referred by an earlier one
    codes = list(STORE_WEIGHTS)
    people: list[dict[str, Any]] = []
    taken: set[str] = set()
    for i in range(MEMBERS):
        female = rng.random() < 0.82
        while True:
            name = rng.choice(SURNAMES) + "".join(rng.choice(FEMALE if female else MALE)
                                                  for _ in range(rng.choice((1, 2, 2))))
            if name not in taken:
                taken.add(name)
                break
        store = rng.choices(codes, [STORE_WEIGHTS[c] for c in codes])[0]
        profile = rng.choices(list(PROFILES), [p[0] for p in PROFILES.values()])[0]
        birthday = date(today.year - rng.randint(20, 58), rng.randint(1, 12), rng.randint(1, 28))
        if i < 12:  # birthdays this week (some of clerk1's members among them) for the home page
            store, day = ("SH01" if i < 6 else store), today + timedelta(days=i % 6)
            birthday = date(today.year - rng.randint(22, 50), day.month, day.day) if not (day.month == 2 and day.day == 29) \
                else date(1992, 2, 28)
        owner = rng.choice(staff_of[store]) if i >= 6 else users["clerk1"]
        joined = today - timedelta(days=rng.randint(0, 25) if rng.random() < 0.07 else rng.randint(35, HISTORY_DAYS))
        phone = rng.choice(MOBILE) + f"{rng.randint(0, 99_999_999):08d}"
        people.append({"name": name, "female": female, "store": store, "profile": profile, "birthday": birthday,
                       "owner": owner, "joined": joined, "phone": phone, "referred": i > 20 and rng.random() < 0.16})
    # -- one card per member (a few frozen or reported lost); its history is simulated first, so
    # that the member and the card are inserted with what the hooks would have made of it
    cards = []
    for person in people:
        status = "active" if rng.random() > 0.03 else rng.choice(("frozen", "reported_lost"))
        cards.append(Card(stores[person["store"]], person["owner"], status, "normal", person["birthday"]))
    per_yuan = hooks.dec(demo.runtime.setting("points_per_yuan"))
    birthday_times = hooks.dec(demo.runtime.setting("birthday_points_multiplier"), Decimal("1"))
    bonus_rules = demo.runtime.setting("recharge_bonus_rules")
    clerk1_today = 0
    for i, (person, card) in enumerate(zip(people, cards, strict=True)):
        staff = staff_of[person["store"]]
        start = datetime.combine(person["joined"], time(rng.randint(10, 19), rng.choice((0, 15, 30, 45))))
        if rng.random() < 0.65:
            _recharge(demo, card, start, staff, rules, bonus_rules)
        _, gap, last_low, last_high = PROFILES[person["profile"]]
        last_day = today - timedelta(days=rng.randint(last_low, last_high))
        if person["joined"] > today - timedelta(days=30):
            last_day = today - timedelta(days=rng.randint(0, (today - person["joined"]).days))
        at = start
        visits: list[datetime] = []
        while at.date() <= last_day:
            visits.append(at)
            at += timedelta(days=max(3, int(rng.gauss(gap, gap / 3))), hours=rng.randint(-3, 3))
        if person["owner"] == users["clerk1"] and clerk1_today < 4 and i % 2 == 0:  # served today
            visits.append(datetime.combine(today, time(10, 0)) + timedelta(minutes=37 * clerk1_today))
            clerk1_today += 1
        for visit in visits:
            visit = min(visit, now)
            if card.balance < 300 and card.recharges and rng.random() < 0.45:
                _recharge(demo, card, visit, staff, rules, bonus_rules)
            items, category, price = rng.choice(SERVICES)
            discount, multiplier = rules[card.level][3], rules[card.level][4]
            due = hooks.amount_due(Decimal(price), discount)
            if card.balance >= due and rng.random() < 0.85:
                method, from_card, channel = "stored_value", due, None
            elif Decimal("0") < card.balance < due and rng.random() < 0.7:
                method, from_card, channel = "mixed", card.balance, rng.choice(("wechat_pay", "alipay", "cash"))
            else:
                method, from_card, channel = rng.choice(("wechat_pay", "alipay", "cash", "bank_card")), Decimal("0"), None
            points = hooks.points_for(due, per_yuan, multiplier, birthday_times, card.birthday, visit.date())
            clerk = users["clerk1"] if visit.date() == today and person["owner"] == users["clerk1"] else rng.choice(staff)
            _consume(card, {"consumed_at": visit, "category": category, "items": items,
                            "service_staff": rng.choice(staff), "amount": Decimal(price),
                            "discount_percent": discount or None, "payment_method": method,
                            "stored_value_paid": from_card, "other_channel": channel, "points_earned": points,
                            "owner": clerk})
            if card.points >= 600 and rng.random() < 0.25:
                gift, cost = rng.choice(GIFTS)
                card.points -= cost
                card.points_entries.append({"kind": "redeem", "points": -cost, "balance_after": card.points,
                                            "entry_at": visit + timedelta(minutes=5), "reason": gift, "owner": clerk})
            _upgrade(card, [lv for lv, r in rules.items() if r[1] is not None and card.spent >= r[1]], rules)
        if i in (2, 4) and card.balance > 80:  # running low: reminders on clerk1's home page
            low = card.balance - Decimal(rng.randint(20, 80))
            _consume(card, {"consumed_at": datetime.combine(today - timedelta(days=1), time(16, 30)),
                            "category": "package", "items": "抗衰紧致疗程（10次）", "amount": low,
                            "payment_method": "stored_value", "stored_value_paid": low, "points_earned": 0,
                            "owner": users["clerk1"]})

    # -- the members (customers of category "individual"), a sixth of them referred by an earlier one,
    # with the figures and the segment the nightly job computes
    settings = hooks.segment_settings(_Settings(demo))
    window = datetime.combine(today - timedelta(days=364), time())
    rows = []
    for person, card in zip(people, cards, strict=True):
        store = next(s for s in STORES if s[0] == person["store"])
        recent = [x for x in card.consumptions if x["consumed_at"] >= window]
        visits_12m, spend_12m = len(recent), sum((x["_due"] for x in recent), Decimal("0"))
        rows.append({
            "name": person["name"], "category": "individual", "customer_type": "transacting",
            "source": "referral" if person["referred"] else rng.choice(("wechat", "advertising", "other", "campaign")),
            "phone": person["phone"], "province": store[4], "city": store[5], "country": "cn",
            "gender": "female" if person["female"] else "male", "birthday": person["birthday"],
            "next_birthday": standard.next_birthday(person["birthday"], today), "home_store": stores[person["store"]],
            "marketing_opt_in": rng.random() < 0.9, "status": "active", "owner": person["owner"],
            "assigned_at": datetime.combine(person["joined"], time(11, 0)),
            "care_notes": rng.choice(NOTES) if rng.random() < 0.25 else None,
            "mnemonic": standard.mnemonic(person["name"]), "name_key": standard.name_key(person["name"]),
            "phone_key": standard.phone_key(person["phone"]),
            "member_since": person["joined"], "member_level": card.level, "last_visit_at": card.last_visit,
            "visits_12m": visits_12m, "spend_12m": spend_12m, "segment_at": now,
            "segment": hooks.segment_of(person["joined"], card.last_visit.date() if card.last_visit else None,
                                        visits_12m, spend_12m, today, settings),
        })
    first = [i for i, p in enumerate(people) if not p["referred"]]
    ids: dict[int, int] = dict(zip(first, demo.bulk("customer", [rows[i] for i in first]), strict=True))
    later = [i for i, p in enumerate(people) if p["referred"]]
    for i in later:
        rows[i]["referred_by"] = ids[rng.choice([j for j in first if j < i] or first)]
    ids.update(zip(later, demo.bulk("customer", [rows[i] for i in later]), strict=True))
    card_ids = demo.bulk("member_card", [
        {"member": ids[i], "store": card.store, "level": card.level, "status": card.status,
         "issued_on": person["joined"], "owner": card.owner} for i, (person, card) in enumerate(zip(people, cards,
                                                                                                   strict=True))])
    for i, card in enumerate(cards):
        for row in card.recharges + card.consumptions + card.points_entries:
            row.update(card=card_ids[i], member=ids[i])
    demo.bulk("card_recharge", [r for c in cards for r in c.recharges])
    consumptions = [x for c in cards for x in c.consumptions]
    consumption_ids = dict(zip((id(x) for x in consumptions), demo.bulk("card_consumption", consumptions),
                               strict=True))
    for card in cards:
        for entry in card.points_entries:
            source = entry.pop("_consumption", None)
            if source is not None:
                entry["consumption"] = consumption_ids[id(source)]
    demo.bulk("points_entry", [e for c in cards for e in c.points_entries])

    # -- what the nightly jobs keep: segments and figures, birthday care
    hooks.refresh_member_segments(JobContext("refresh_member_segments", demo.records))
    hooks.member_birthday_care(JobContext("member_birthday_care", demo.records))

    # -- campaigns for segments
    owner = demo.user_id("marketing1") or users["opsdirector"]
    wake = demo.create("campaign", {
        "name": "沉睡会员唤醒计划（静安店）", "campaign_type": "sms", "stage": "plan", "owner": owner,
        "start_date": today - timedelta(days=3), "end_date": today + timedelta(days=27), "budget": "3000",
        "target_segments": ["sleeping", "lost"], "target_store": stores["SH01"],
        "target_audience": "静安店 90 天以上未到店的会员",
        "description": "短信邀约回店体验：到店即送肩颈舒缓护理一次，储值满1000再送100。"})
    demo.records.run_action("campaign", wake["id"], "reach_members",
                            {"activity_type": "sms", "planned_on": today.isoformat(), "gift_points": 200})
    demo.create("campaign", {
        "name": "金卡及以上会员专享·春季焕肤季", "campaign_type": "field_event", "stage": "plan", "owner": owner,
        "start_date": today + timedelta(days=14), "end_date": today + timedelta(days=44), "budget": "8000",
        "target_segments": ["vip", "active"], "target_levels": ["gold", "diamond"],
        "target_audience": "金卡、钻石会员中的活跃与高价值会员",
        "description": "会员专享焕肤护理体验与新品试用，限额 60 人。"})
