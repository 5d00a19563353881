"""The membership retail industry pack (packs/industry_templates/membership_retail): stores, member
cards and levels, stored value (recharges, consumptions), the points ledger, segments, birthday
care, campaigns for segments and the store roles, on SQLite and PostgreSQL; the balances under
concurrent writes on PostgreSQL; installing the pack onto a running standard CRM, and its demo."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from engine.metadata import load_registry
from engine.runtime.db import make_engine
from engine.runtime.errors import Forbidden, NotFound, Rejected, ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import User, create_user
from tests.conftest import ROOT, empty_database, make_runtime, postgres_available
from tests.packs.conftest import STANDARD

PACK = ROOT / "packs" / "industry_templates" / "membership_retail"

# user name -> (roles, department); S1 and S2 are the teams of two stores below store operations.
PEOPLE: dict[str, tuple[tuple[str, ...], str | None]] = {
    "admin": (("admin",), "HQ"),
    "ops": (("store_manager",), "OPS"),
    "mgr1": (("store_manager",), "S1"),
    "clerk1": (("store_clerk",), "S1"),
    "clerk1b": (("store_clerk",), "S1"),
    "mgr2": (("store_manager",), "S2"),
    "clerk2": (("store_clerk",), "S2"),
    "marketing1": (("marketing",), "MKT"),
    "sales1": (("salesperson",), "SALES"),
    "service1": (("service_agent",), "SVC"),
    "drifter": (("store_clerk",), None),  # works in no store's team
}
DEPARTMENTS = {"HQ": None, "OPS": "HQ", "S1": "OPS", "S2": "OPS", "MKT": "HQ", "SALES": "HQ", "SVC": "HQ"}
LEVELS = [  # level, rank, upgrade at spend, upgrade at one recharge, discount %, points multiplier
    ("normal", 0, None, None, "0", "1"),
    ("silver", 1, "3000", "2000", "5", "1.2"),
    ("gold", 2, "10000", "5000", "10", "1.5"),
]


def hooks_module() -> ModuleType:
    from engine.runtime.hooks import _import_file

    return _import_file("crm_pack_hooks.membership_retail", str(PACK / "hooks.py"))


@dataclass
class Retail:
    runtime: Runtime
    users: dict[str, User]
    stores: dict[str, int]

    @property
    def system(self) -> RecordService:
        return self.runtime.records()

    def as_(self, name: str) -> RecordService:
        return self.runtime.records(self.users[name].actor())

    def id(self, name: str) -> int:
        return self.users[name].id

    def get(self, entity: str, record_id: int) -> dict[str, Any]:
        return self.system.get(entity, record_id)

    def find(self, entity: str, *filters: str, actor: str | None = None) -> list[dict[str, Any]]:
        records = self.as_(actor) if actor else self.system
        return records.query(entity, ListQuery(filters=list(filters), limit=500)).rows

    def member(self, name: str, by: str = "clerk1", **values: Any) -> dict[str, Any]:
        return self.as_(by).create("customer", {"name": name, "category": "individual", **values})

    def card(self, name: str = "王芳", by: str = "clerk1", recharge: str | None = None, **member: Any) -> dict[str, Any]:
        """A member with a card (and a first recharge) -> the card."""
        card = self.as_(by).create("member_card", {"member": self.member(name, by, **member)["id"]})
        if recharge:
            self.as_(by).create("card_recharge", {"card": card["id"], "amount": recharge, "payment_channel": "cash"})
        return self.get("member_card", card["id"])

    def consume(self, card: dict[str, Any], amount: str, by: str = "clerk1", **values: Any) -> dict[str, Any]:
        return self.as_(by).create("card_consumption", {"card": card["id"], "amount": amount, "items": "面部护理",
                                                        "payment_method": "stored_value", **values})

    def points(self, card: dict[str, Any], kind: str, points: int, by: str = "clerk1") -> dict[str, Any]:
        return self.as_(by).create("points_entry", {"card": card["id"], "kind": kind, "points": points})


def build(url: str, files: Path) -> Retail:
    runtime = make_runtime(url, STANDARD, PACK)
    runtime.files_dir = str(files)
    system = runtime.records()
    people = {name: create_user(runtime, name, f"demo-{name}", display_name=name.title(), roles=roles,
                                is_admin=name == "admin") for name, (roles, _) in PEOPLE.items()}
    units: dict[str, int] = {}
    for unit, parent in DEPARTMENTS.items():
        units[unit] = system.create("department", {"name": unit, "code": unit,
                                                   "parent": units[parent] if parent else None})["id"]
    for name, (_, unit) in PEOPLE.items():
        system.create("employee", {"name": name.title(), "user": people[name].id,
                                   "department": units[unit] if unit else None})
    stores = {unit: system.create("store", {"code": unit, "name": f"Store {unit}", "department": units[unit],
                                            "manager": people[manager].id, "owner": people[manager].id})["id"]
              for unit, manager in (("S1", "mgr1"), ("S2", "mgr2"))}
    for level, rank, spend, recharge, discount, multiplier in LEVELS:
        system.create("card_level", {"level": level, "name": level.title(), "rank": rank, "upgrade_spend": spend,
                                     "upgrade_recharge": recharge, "discount_percent": discount,
                                     "points_multiplier": multiplier})
    return Retail(runtime, people, stores)


@pytest.fixture
def retail(db_url: str, tmp_path: Path) -> Iterator[Retail]:
    shop = build(db_url, tmp_path / "files")
    yield shop
    shop.runtime.engine.dispose()


def errors_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    """The refusal's messages per field, in English."""
    return {name: " ".join(m.text("en") for m in messages) for name, messages in exc.value.errors.items()}


# -- the pack as data -----------------------------------------------------------------------------------


def test_the_pack_validates_with_the_standard_pack(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    assert main(["pack", "validate", str(STANDARD), str(PACK)]) == 0
    assert capsys.readouterr().out.startswith("OK: 2 pack(s)")
    registry = load_registry([STANDARD, PACK])
    pack = next(p for p in registry.packs if p.name == "membership_retail")
    assert pack.version == "1.0.0" and pack.depends == ("standard_crm",)
    for name in ("store", "card_level", "member_card", "card_recharge", "card_consumption", "points_entry"):
        assert registry.entities[name].label["zh"] and registry.entities[name].label["en"]
    # standard entities are extended, never copied
    for path in (PACK / "entities").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "entity" in doc:
            assert not (STANDARD / "entities" / path.name).exists(), path
    assert {"gender", "birthday", "segment", "member_level", "home_store"} <= set(registry.entities["customer"].fields)
    assert {"target_segments", "target_levels", "target_store"} <= set(registry.entities["campaign"].fields)


def test_the_three_industry_packs_can_be_active_together() -> None:
    others = [ROOT / "packs" / "industry_templates" / name for name in ("project_sales", "field_service")]
    present = [p for p in others if (p / "pack.yaml").exists()]
    if not present:
        pytest.skip("the other industry packs are not in this tree yet")
    load_registry([STANDARD, PACK, *present])  # raises MetadataError on any clash


def test_locales_match_and_cover_every_message_the_hooks_use() -> None:
    en = yaml.safe_load((PACK / "locales" / "en.yaml").read_text(encoding="utf-8"))
    zh = yaml.safe_load((PACK / "locales" / "zh.yaml").read_text(encoding="utf-8"))
    assert set(en) == set(zh)
    for key in en:
        assert set(re.findall(r"{(\w+)(?::[^}]*)?}", en[key])) == set(re.findall(r"{(\w+)(?::[^}]*)?}", zh[key])), key
    code = (PACK / "hooks.py").read_text(encoding="utf-8")
    used = set(re.findall(r'(?:message|say|text)\(ctx, "([a-z_]+)"', code))
    assert used and used <= set(en), used - set(en)


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 5, 31), 3, date(2026, 2, 28)),
    (date(2024, 5, 31), 3, date(2024, 2, 29)),
    (date(2026, 1, 15), 24, date(2024, 1, 15)),
    (date(2026, 3, 1), 14, date(2025, 1, 1)),
])
def test_months_before(day: date, months: int, expected: date) -> None:
    assert hooks_module().months_before(day, months) == expected


SEGMENT_SETTINGS = {"new_days": 30, "sleeping_days": 90, "lost_days": 180, "vip_spend": Decimal(10000),
                    "vip_visits": 12}


@pytest.mark.parametrize(("since", "last", "visits", "spend", "segment"), [
    (None, None, 0, 0, None),                 # no card: no member
    (10, None, 0, 0, "new"),
    (10, 2, 1, 300, "new"),
    (10, 2, 1, 12000, "vip"),                 # a big spender is a VIP at once
    (400, 5, 3, 900, "active"),
    (400, 5, 12, 900, "vip"),                 # or a frequent visitor
    (400, 91, 3, 900, "sleeping"),
    (400, 200, 1, 300, "lost"),
    (100, None, 0, 0, "sleeping"),            # never came back after joining
    (300, None, 0, 0, "lost"),
    (400, 95, 20, 50000, "sleeping"),         # not seen for 95 days: a VIP no more
])
def test_segment_of(since: int | None, last: int | None, visits: int, spend: int, segment: str | None) -> None:
    today = date(2026, 6, 1)
    assert hooks_module().segment_of(today - timedelta(days=since) if since is not None else None,
                                     today - timedelta(days=last) if last is not None else None,
                                     visits, Decimal(spend), today, SEGMENT_SETTINGS) == segment


def test_bonus_rules() -> None:
    hooks = hooks_module()
    rules = "1000:100, 3000：400，5000:1000, nonsense, 200:"
    assert [hooks.bonus_for(Decimal(a), rules) for a in ("999.99", "1000", "2999", "3000", "9000")] == \
        [Decimal("0"), Decimal("100.00"), Decimal("100.00"), Decimal("400.00"), Decimal("1000.00")]
    assert hooks.bonus_for(Decimal("5000"), "") == 0


# -- cards, stored value and points ------------------------------------------------------------------------


def test_a_clerk_issues_a_card_in_their_store_and_the_member_follows(retail: Retail) -> None:
    card = retail.card("王芳", birthday="1990-03-05", gender="female", phone="13800000001")
    assert card["store"] == retail.stores["S1"] and card["level"] == "normal" and card["status"] == "active"
    assert re.fullmatch(r"HY\d{4}\d{5}", card["card_no"])
    assert card["balance"] == 0 and card["points_balance"] == 0
    member = retail.get("customer", card["member"])
    assert member["home_store"] == retail.stores["S1"] and member["member_level"] == "normal"
    assert member["segment"] == "new" and member["member_since"] == card["issued_on"] and member["card_count"] == 1
    assert member["next_birthday"] is not None and member["next_birthday"].month == 3

    with pytest.raises(Rejected) as refused:  # a clerk of no store must say which store
        retail.card("流浪", by="drifter")
    assert "store" in refused.value.errors
    given = retail.as_("drifter").create("member_card", {"member": retail.member("李四", by="drifter")["id"],
                                                         "store": retail.stores["S2"]})
    assert given["store"] == retail.stores["S2"]


def test_recharges_get_the_bonus_of_the_rules_and_a_big_one_upgrades_the_card(retail: Retail) -> None:
    card = retail.card()
    clerk = retail.as_("clerk1")
    small = clerk.create("card_recharge", {"card": card["id"], "amount": "500", "payment_channel": "cash"})
    assert small["bonus"] == 0 and small["balance_after"] == Decimal("500.00")
    assert small["member"] == card["member"] and small["store"] == retail.stores["S1"]
    first = clerk.create("card_recharge", {"card": card["id"], "amount": "1000", "payment_channel": "wechat_pay"})
    assert first["bonus"] == Decimal("100.00") and first["total_credit"] == Decimal("1100.00")
    assert first["balance_after"] == Decimal("1600.00")
    assert retail.get("member_card", card["id"])["level"] == "normal"
    big = clerk.create("card_recharge", {"card": card["id"], "amount": "5000", "payment_channel": "bank_card"})
    assert big["bonus"] == Decimal("1000.00")
    card = retail.get("member_card", card["id"])
    assert card["balance"] == Decimal("7600.00") and card["recharged_total"] == Decimal("7600.00")
    assert card["level"] == "gold"  # a single recharge of 5,000 makes a gold card
    assert retail.get("customer", card["member"])["member_level"] == "gold"
    assert retail.get("customer", card["member"])["stored_value_balance"] == Decimal("7600.00")

    with pytest.raises(ValidationFailed) as refused:  # the bonus is the rules' or a manager's
        clerk.create("card_recharge", {"card": card["id"], "amount": "100", "bonus": "900", "payment_channel": "cash"})
    assert "bonus" in refused.value.errors
    typed = retail.as_("mgr1").create("card_recharge", {"card": card["id"], "amount": "100", "bonus": "20",
                                                        "payment_channel": "cash"})
    assert typed["bonus"] == Decimal("20.00")
    retail.runtime.set_setting("recharge_bonus_rules", "")
    assert clerk.create("card_recharge", {"card": card["id"], "amount": "1000",
                                          "payment_channel": "cash"})["bonus"] == 0


def test_a_consumption_pays_from_stored_value_with_the_level_discount_and_earns_points(retail: Retail) -> None:
    card = retail.card(recharge="3000")  # 3,000 + 400 bonus, and silver (a recharge of 2,000 or more)
    assert card["balance"] == Decimal("3400.00") and card["level"] == "silver"
    spent = retail.consume(card, "1000", service_staff=retail.id("clerk1b"))
    assert spent["discount_percent"] == Decimal("5.00") and spent["amount_due"] == Decimal("950.00")
    assert spent["stored_value_paid"] == Decimal("950.00") and spent["other_paid"] == 0
    assert spent["balance_after"] == Decimal("2450.00")
    assert spent["points_earned"] == 1140  # 950 x 1 point per yuan x 1.2 for silver
    assert spent["member"] == card["member"] and spent["store"] == retail.stores["S1"]
    card = retail.get("member_card", card["id"])
    assert card["balance"] == Decimal("2450.00") and card["points_balance"] == 1140
    assert card["total_spent"] == Decimal("950.00") and card["visit_count"] == 1
    [earned] = retail.find("points_entry", f"card eq {card['id']}")
    assert (earned["kind"], earned["points"], earned["consumption"], earned["balance_after"]) == \
        ("earn", 1140, spent["id"], 1140)
    member = retail.get("customer", card["member"])
    assert member["last_visit_at"] == spent["consumed_at"] and member["visits_12m"] == 1
    assert member["spend_12m"] == Decimal("950.00") and member["points_balance"] == 1140

    cash = retail.consume(card, "200", payment_method="wechat_pay")  # paid otherwise: the balance stays
    assert cash["stored_value_paid"] == 0 and cash["other_paid"] == Decimal("190.00")
    assert cash["points_earned"] == 228
    assert retail.get("member_card", card["id"])["balance"] == Decimal("2450.00")

    retail.runtime.set_setting("points_per_yuan", "0")
    assert retail.consume(card, "100", payment_method="cash")["points_earned"] == 0
    assert len(retail.find("points_entry", f"card eq {card['id']}")) == 2  # no entry for 0 points


def test_points_are_multiplied_in_the_birthday_month(retail: Retail) -> None:
    today = retail.runtime.now().date()
    card = retail.card(recharge="500", birthday=date(1990, today.month, 1).isoformat())
    assert retail.consume(card, "100")["points_earned"] == 200  # setting birthday_points_multiplier: 2
    other = retail.card("张敏", recharge="500", birthday=date(1990, today.month % 12 + 1, 1).isoformat())
    assert retail.consume(other, "100")["points_earned"] == 100


def test_spending_more_than_the_card_holds_is_refused(retail: Retail) -> None:
    card = retail.card(recharge="500")
    with pytest.raises(Rejected) as refused:
        retail.consume(card, "600")
    assert "holds ¥500.00 of stored value, less than the ¥600.00" in errors_of(refused)["payment_method"]
    zh = refused.value.errors["payment_method"][0].text("zh")
    assert "储值余额 ¥500.00" in zh
    with pytest.raises(Rejected) as refused:
        retail.consume(card, "800", payment_method="mixed", stored_value_paid="501", other_channel="cash")
    assert "stored_value_paid" in refused.value.errors
    assert retail.get("member_card", card["id"])["balance"] == Decimal("500.00")
    assert not retail.find("card_consumption", f"card eq {card['id']}")  # nothing was saved

    exact = retail.consume(card, "500")  # all of it is fine
    assert exact["balance_after"] == 0
    with pytest.raises(Rejected):
        retail.consume(card, "0.01")
    assert retail.get("member_card", card["id"])["balance"] == 0


def test_a_mixed_payment_takes_a_part_from_the_card(retail: Retail) -> None:
    card = retail.card(recharge="300")
    with pytest.raises(Rejected) as refused:
        retail.consume(card, "500", payment_method="mixed")
    assert "stored_value_paid" in refused.value.errors
    with pytest.raises(Rejected) as refused:
        retail.consume(card, "500", payment_method="mixed", stored_value_paid="300")
    assert "other_channel" in refused.value.errors and "200.00" in errors_of(refused)["other_channel"]
    with pytest.raises(Rejected) as refused:
        retail.consume(card, "200", payment_method="mixed", stored_value_paid="250", other_channel="cash")
    assert "more than the amount due" in errors_of(refused)["stored_value_paid"]
    mixed = retail.consume(card, "500", payment_method="mixed", stored_value_paid="300", other_channel="alipay")
    assert (mixed["stored_value_paid"], mixed["other_paid"], mixed["balance_after"]) == \
        (Decimal("300.00"), Decimal("200.00"), Decimal("0.00"))


def test_spend_upgrades_the_card(retail: Retail) -> None:
    card = retail.card(recharge="1000")
    retail.consume(card, "2000", payment_method="cash")
    assert retail.get("member_card", card["id"])["level"] == "normal"
    retail.consume(card, "1000", payment_method="cash")  # 3,000 in all: silver
    card = retail.get("member_card", card["id"])
    assert card["level"] == "silver" and retail.get("customer", card["member"])["member_level"] == "silver"
    # a manager may also set a level by hand; a later, lower threshold never downgrades it
    retail.as_("mgr1").update("member_card", card["id"], {"level": "gold"}, card["version"])
    retail.consume(card, "100", payment_method="cash")
    assert retail.get("member_card", card["id"])["level"] == "gold"


def test_blocked_or_expired_cards_take_nothing(retail: Retail) -> None:
    card = retail.card(recharge="1000")
    mgr = retail.as_("mgr1")
    frozen = mgr.update("member_card", card["id"], {"status": "frozen"}, card["version"])
    for attempt in (lambda: retail.consume(card, "10"),
                    lambda: retail.as_("clerk1").create("card_recharge", {"card": card["id"], "amount": "100",
                                                                          "payment_channel": "cash"}),
                    lambda: retail.points(card, "redeem", 1)):
        with pytest.raises(Rejected) as refused:
            attempt()
        assert "is Frozen" in errors_of(refused)["card"]
    expired = mgr.update("member_card", card["id"], {"status": "active", "expires_on": "2020-01-01"},
                         frozen["version"])
    with pytest.raises(Rejected) as refused:
        retail.consume(card, "10")
    assert "expired on 2020-01-01" in errors_of(refused)["card"]
    cancelled = mgr.update("member_card", card["id"], {"status": "cancelled", "expires_on": None}, expired["version"])
    assert any("still holds ¥1,100.00" in w.text("en") for w in cancelled["_warnings"])
    assert retail.get("customer", card["member"])["card_count"] == 0  # no live card: no member any more


def test_points_never_go_below_zero(retail: Retail) -> None:
    card = retail.card(recharge="1000")
    retail.consume(card, "300")  # 300 points
    with pytest.raises(Rejected) as refused:
        retail.points(card, "redeem", 301)
    assert errors_of(refused)["points"] == "Card {} has 300 points, not enough to take off 301.".format(card["card_no"])
    redeemed = retail.points(card, "redeem", 100)  # the sign follows the type
    assert (redeemed["points"], redeemed["balance_after"], redeemed["member"]) == (-100, 200, card["member"])
    assert retail.points(card, "redeem", -50)["points"] == -50
    with pytest.raises(Rejected) as refused:
        retail.points(card, "redeem", 0)
    assert "points" in refused.value.errors
    # managers adjust (either way) and give, within the balance
    assert retail.points(card, "adjust", -150, by="mgr1")["balance_after"] == 0
    with pytest.raises(Rejected):
        retail.points(card, "adjust", -1, by="mgr1")
    assert retail.points(card, "gift", 80, by="mgr1")["points"] == 80
    assert retail.get("member_card", card["id"])["points_balance"] == 80
    assert retail.get("customer", card["member"])["points_balance"] == 80


def test_who_may_record_which_points(retail: Retail) -> None:
    card = retail.card(recharge="1000")
    retail.consume(card, "300")
    for kind in ("earn", "expire"):  # only the pack itself
        with pytest.raises(Rejected) as refused:
            retail.points(card, kind, 10, by="mgr1")
        assert "recorded automatically" in errors_of(refused)["kind"]
    for kind in ("adjust", "gift"):  # a clerk may not
        with pytest.raises(Rejected) as refused:
            retail.points(card, kind, 10)
        assert "Only a store manager" in errors_of(refused)["kind"]
    with pytest.raises(Rejected):  # nor a manager of another store
        retail.points(card, "gift", 10, by="mgr2")
    assert retail.points(card, "gift", 10, by="ops")["points"] == 10  # their operations director may
    with pytest.raises(Forbidden):  # marketing reads points but records none
        retail.points(card, "redeem", 10, by="marketing1")


def test_balances_and_levels_are_not_typed_in(retail: Retail) -> None:
    card = retail.card(recharge="1000")
    clerk = retail.as_("clerk1")
    with pytest.raises(ValidationFailed) as refused:  # the payment is chosen, never assumed
        clerk.create("card_consumption", {"card": card["id"], "amount": "10", "items": "x"})
    assert "payment_method" in refused.value.errors
    with pytest.raises(Rejected) as refused:  # a level, status and issue date are always there
        retail.as_("mgr1").update("member_card", card["id"], {"level": None}, card["version"])
    assert "level" in refused.value.errors
    with pytest.raises(ValidationFailed) as refused:
        clerk.create("member_card", {"member": card["member"], "balance": "5000", "points_balance": 100,
                                     "level": "gold"})
    assert {"balance", "points_balance", "level"} <= set(refused.value.errors)
    with pytest.raises(ValidationFailed) as refused:  # derived for everybody, administrators included
        retail.as_("admin").update("member_card", card["id"], {"balance": "99999"}, card["version"])
    assert "balance" in refused.value.errors
    with pytest.raises(ValidationFailed) as refused:
        clerk.create("card_consumption", {"card": card["id"], "amount": "10", "items": "x", "payment_method": "cash",
                                          "points_earned": 999,
                                          "balance_after": "1", "discount_percent": "90", "status": "voided"})
    assert {"points_earned", "balance_after", "discount_percent", "status"} <= set(refused.value.errors)
    with pytest.raises(Forbidden):  # clerks do not edit cards at all
        clerk.update("member_card", card["id"], {"remarks": "x"}, card["version"])
    member = retail.get("customer", card["member"])
    with pytest.raises(ValidationFailed) as refused:
        clerk.update("customer", member["id"], {"segment": "vip", "member_level": "gold"}, member["version"])
    assert {"segment", "member_level"} <= set(refused.value.errors)


def test_recorded_entries_stay_as_recorded(retail: Retail) -> None:
    card = retail.card(recharge="1000")
    spent = retail.consume(card, "100")
    mgr = retail.as_("mgr1")
    with pytest.raises(Rejected) as refused:
        mgr.update("card_consumption", spent["id"], {"amount": "1"}, spent["version"])
    assert "void it and record it again" in errors_of(refused)["amount"]
    noted = mgr.update("card_consumption", spent["id"], {"remarks": "顾客满意", "items": "面部护理+眼部护理"},
                       spent["version"])
    assert noted["remarks"] == "顾客满意"
    with pytest.raises(Forbidden):  # clerks record, they do not edit
        retail.as_("clerk1").update("card_consumption", spent["id"], {"remarks": "x"}, noted["version"])
    [recharge] = retail.find("card_recharge", f"card eq {card['id']}")
    with pytest.raises(Rejected):
        mgr.update("card_recharge", recharge["id"], {"amount": "99999"}, recharge["version"])
    [entry] = retail.find("points_entry", f"card eq {card['id']}")
    with pytest.raises(Rejected):
        retail.as_("admin").update("points_entry", entry["id"], {"points": 99999}, entry["version"])
    admin = retail.as_("admin")
    for entity, record in (("card_consumption", spent), ("card_recharge", recharge), ("points_entry", entry)):
        with pytest.raises(Rejected):
            admin.delete(entity, record["id"])
    with pytest.raises(ValidationFailed):  # a card with entries stays too
        admin.delete("member_card", card["id"])
    assert retail.get("member_card", card["id"])["balance"] == Decimal("1000.00")


def test_voiding_a_consumption_gives_back_the_stored_value_and_takes_back_the_points(retail: Retail) -> None:
    card = retail.card(recharge="1000")
    spent = retail.consume(card, "400")
    with pytest.raises(Forbidden):  # a clerk cannot void
        retail.as_("clerk1").run_action("card_consumption", spent["id"], "void", {"reason": "录错"})
    with pytest.raises(ValidationFailed) as refused:
        retail.as_("mgr1").run_action("card_consumption", spent["id"], "void", {})
    assert "reason" in refused.value.errors
    outcome = retail.as_("mgr1").run_action("card_consumption", spent["id"], "void", {"reason": "录错了金额"})
    assert "¥400.00 back on the card, 400 points taken back" in outcome["message"].text("en")
    voided = retail.get("card_consumption", spent["id"])
    assert (voided["status"], voided["void_reason"]) == ("voided", "录错了金额")
    card = retail.get("member_card", card["id"])
    assert card["balance"] == Decimal("1100.00") and card["points_balance"] == 0 and card["visit_count"] == 0
    member = retail.get("customer", card["member"])
    assert member["last_visit_at"] is None and member["visits_12m"] == 0
    with pytest.raises(ValidationFailed):  # once only
        retail.as_("mgr1").run_action("card_consumption", spent["id"], "void", {"reason": "again"})

    second = retail.consume(card, "300")
    retail.points(card, "redeem", 200)
    with pytest.raises(Rejected) as refused:  # its points have been used
        retail.as_("mgr1").run_action("card_consumption", second["id"], "void", {"reason": "x"})
    assert "earned 300 points, but the card has only 100 left" in errors_of(refused)[""]
    assert retail.get("card_consumption", second["id"])["status"] == "valid"


def test_voiding_a_recharge_needs_its_credit_on_the_card(retail: Retail) -> None:
    card = retail.card(recharge="1000")
    [recharge] = retail.find("card_recharge", f"card eq {card['id']}")
    retail.consume(card, "200")
    with pytest.raises(Rejected) as refused:
        retail.as_("mgr1").run_action("card_recharge", recharge["id"], "void", {"reason": "x"})
    assert "credited ¥1,100.00, but the card holds only ¥900.00" in errors_of(refused)[""]
    again = retail.as_("clerk1").create("card_recharge", {"card": card["id"], "amount": "500",
                                                          "payment_channel": "cash"})
    retail.as_("mgr1").run_action("card_recharge", again["id"], "void", {"reason": "重复录入"})
    assert retail.get("member_card", card["id"])["balance"] == Decimal("900.00")


def test_a_csv_import_of_consumptions_is_checked_row_by_row(retail: Retail) -> None:
    from engine.runtime.importer import import_csv

    card = retail.card(recharge="1000")  # 1,100 with the bonus
    data = ("card,store,items,amount,payment_method\n"  # the administrator works in no store: named
            f"{card['card_no']},Store S1,面部护理,600,stored_value\n"
            f"{card['card_no']},Store S1,眼部护理,600,储值卡余额\n").encode()
    refused = import_csv(retail.as_("admin"), "card_consumption", data)
    assert not refused.ok and refused.created == 0
    [problem] = refused.problems
    assert problem.line == 3 and problem.message.text("en").startswith(f"Card {card['card_no']} holds ¥500.00 of")
    assert retail.get("member_card", card["id"])["balance"] == Decimal("1100.00")  # all or nothing
    fine = import_csv(retail.as_("admin"), "card_consumption", data.replace(b",600,", b",500,"))
    assert fine.ok and fine.created == 2
    card = retail.get("member_card", card["id"])
    assert card["balance"] == Decimal("100.00") and card["points_balance"] == 1000


# -- roles -----------------------------------------------------------------------------------------------------


def test_store_roles_see_their_stores_records(retail: Retail) -> None:
    one = retail.card("会员甲", recharge="1000")
    two = retail.card("会员乙", by="clerk2", recharge="1000")
    retail.consume(one, "100")
    retail.consume(two, "100", by="clerk2")
    retail.consume(one, "50", by="clerk2")  # a member of store 1 served in store 2

    def consumptions(user: str) -> set[tuple[int, int]]:
        return {(r["card"], r["store"]) for r in retail.find("card_consumption", actor=user)}

    s1, s2 = retail.stores["S1"], retail.stores["S2"]
    assert consumptions("clerk1") == consumptions("clerk1b") == consumptions("mgr1") == {(one["id"], s1)}
    assert consumptions("clerk2") == consumptions("mgr2") == {(two["id"], s2), (one["id"], s2)}
    assert len(retail.find("card_consumption", actor="ops")) == 3  # the operations director: every store
    # every clerk serves every member: members and cards are readable chain-wide
    assert {c["id"] for c in retail.find("member_card", actor="clerk2")} == {one["id"], two["id"]}
    assert len(retail.find("customer", "card_count gt 0", actor="clerk1")) == 2
    # a store edits its own members only
    member_two = retail.get("customer", two["member"])
    with pytest.raises(Forbidden):
        retail.as_("clerk1").update("customer", member_two["id"], {"care_notes": "x"}, member_two["version"])
    retail.as_("mgr2").update("customer", member_two["id"], {"care_notes": "对芒果过敏"}, member_two["version"])
    # marketing and the service desk read cards and consumptions; sales does not
    assert len(retail.find("card_consumption", actor="marketing1")) == 3
    assert len(retail.find("member_card", actor="service1")) == 2
    with pytest.raises(NotFound):
        retail.as_("sales1").get("member_card", one["id"])
    assert retail.find("store", actor="sales1")  # stores are reference data for everybody
    # store views: "my store"
    view = next(v for v in retail.runtime.registry.entities["card_consumption"].list.views if v.key == "my_store_today")
    assert len(retail.find("card_consumption", *view.filter, actor="clerk1b")) == 1


# -- jobs ----------------------------------------------------------------------------------------------------------


def test_expire_points_uses_the_oldest_points_first(retail: Retail) -> None:
    card = retail.card(recharge="100")
    now = retail.runtime.now()
    system = retail.system
    old, recent = now - timedelta(days=800), now - timedelta(days=30)
    system.bulk_create("points_entry", [
        {"card": card["id"], "member": card["member"], "kind": "earn", "points": 500, "entry_at": old},
        {"card": card["id"], "member": card["member"], "kind": "earn", "points": 400, "entry_at": recent},
        {"card": card["id"], "member": card["member"], "kind": "redeem", "points": -200, "entry_at": recent},
    ])
    assert retail.get("member_card", card["id"])["points_balance"] == 700
    report = system.run_job("expire_points")
    assert "300 point(s) expired on 1 card(s)" in report[-1]
    [expired] = retail.find("points_entry", f"card eq {card['id']}", "kind eq expire")
    assert expired["points"] == -300 and expired["balance_after"] == 400
    assert retail.get("member_card", card["id"])["points_balance"] == 400
    assert "300 point(s)" not in system.run_job("expire_points")[-1]  # nothing twice
    retail.runtime.set_setting("points_expiry_months", "0")
    assert system.run_job("expire_points") == ["points_expiry_months is 0: points never expire"]


def test_the_nightly_job_segments_the_members(retail: Retail) -> None:
    now = retail.runtime.now()
    system = retail.system
    people = {}
    for name, joined, visits in (
            ("新会员", 5, [2]), ("活跃", 300, [20, 60, 100]), ("大客户", 300, [3] * 4), ("常客", 300, [5] * 12),
            ("沉睡", 300, [120, 200]), ("流失", 500, [250, 400]), ("不来", 200, [])):
        card = retail.card(name)
        system.update("member_card", card["id"], {"issued_on": (now - timedelta(days=joined)).date()},
                      card["version"])
        amount = "4000" if name == "大客户" else "100"
        system.bulk_create("card_consumption", [
            {"card": card["id"], "member": card["member"], "store": card["store"], "items": "护理", "amount": amount,
             "payment_method": "cash", "stored_value_paid": 0, "consumed_at": now - timedelta(days=d)}
            for d in visits])
        people[name] = card["member"]
    report = system.run_job("refresh_member_segments")
    assert report[-1].startswith("7 member(s)")
    segments = {name: retail.get("customer", member)["segment"] for name, member in people.items()}
    assert segments == {"新会员": "new", "活跃": "active", "大客户": "vip", "常客": "vip", "沉睡": "sleeping",
                        "流失": "lost", "不来": "lost"}
    big = retail.get("customer", people["大客户"])
    assert big["visits_12m"] == 4 and big["spend_12m"] == Decimal("16000.00")
    assert big["last_visit_at"] == (now - timedelta(days=3)) and big["segment_at"] is not None
    # list views per segment
    view = next(v for v in retail.runtime.registry.entities["customer"].list.views if v.key == "segment_sleeping")
    assert [r["id"] for r in retail.find("customer", *view.filter)] == [people["沉睡"]]
    # a second run changes nothing; a visit wakes a sleeping member up at once
    assert ", 0 updated" in system.run_job("refresh_member_segments")[-1]
    sleeping = retail.find("member_card", f"member eq {people['沉睡']}")[0]
    retail.consume(sleeping, "100", payment_method="cash")
    assert retail.get("customer", people["沉睡"])["segment"] == "active"
    history = [h for h in system.history("customer", people["沉睡"]) if h["field"] == "segment"]
    assert [h["new_value"] for h in history[:2]] == ['"active"', '"sleeping"']


def test_birthday_lists_and_care(retail: Retail) -> None:
    today = retail.runtime.now().date()
    soon = today + timedelta(days=3)
    later = today + timedelta(days=40)
    card = retail.card("寿星", birthday=date(1991, soon.month, min(soon.day, 28)).isoformat(), by="clerk1")
    retail.card("远期", birthday=date(1991, later.month, min(later.day, 28)).isoformat(), by="clerk1")
    member = retail.get("customer", card["member"])
    retail.runtime.set_setting("birthday_gift_points", "88")
    report = retail.system.run_job("member_birthday_care")
    assert "1 birthday care activit(y/ies) planned, 1 birthday gift(s) of 88 points" in report[-1]
    [care] = retail.find("activity", f"customer eq {member['id']}")
    assert care["owner"] == retail.id("clerk1") and care["status"] == "planned"
    assert care["subject"].startswith("生日关怀：寿星") and care["planned_start"].date() == today
    assert retail.get("member_card", card["id"])["points_balance"] == 88
    assert retail.get("customer", member["id"])["last_birthday_care_on"] == member["next_birthday"]
    assert "0 birthday care" in retail.system.run_job("member_birthday_care")[-1]  # once per birthday
    assert len(retail.find("activity", f"customer eq {member['id']}")) == 1
    # the list views and the home card
    views = {v.key: v for v in retail.runtime.registry.entities["customer"].list.views}
    month = [r["name"] for r in retail.find("customer", *views["member_birthdays_this_month"].filter)]
    assert ("寿星" in month) == (soon.month == today.month)
    week = [r["name"] for r in retail.find("customer", *views["member_birthdays_this_week"].filter, "owner eq $me",
                                           actor="clerk1")]
    assert ("寿星" in week) == (soon.isocalendar()[1] == today.isocalendar()[1])
    home = [(c.entity, c.view) for c in retail.runtime.registry.home]
    assert ("customer", "member_birthdays_this_week") in home
    # past birthdays move on
    fresh = retail.get("customer", member["id"])
    past = retail.system.update("customer", member["id"], {"birthday": "1991-01-01"}, fresh["version"])
    retail.system.bulk_create("customer", [{"name": "旧生日", "birthday": "1980-02-29"}])
    retail.system.run_job("member_birthday_care")
    assert retail.get("customer", past["id"])["next_birthday"] >= today
    [leap] = retail.find("customer", "name eq 旧生日")
    assert leap["next_birthday"] is not None and leap["next_birthday"] >= today


def test_a_campaign_reaches_the_members_of_its_segments(retail: Retail) -> None:
    system = retail.system
    cards = {name: retail.card(name, by=by) for name, by in
             (("甲", "clerk1"), ("乙", "clerk1"), ("丙", "clerk2"), ("丁", "clerk1"), ("戊", "clerk1"))}
    members = {name: card["member"] for name, card in cards.items()}

    def set_member(name: str, **values: Any) -> None:
        record = retail.get("customer", members[name])
        system.update("customer", record["id"], values, record["version"])

    set_member("甲", segment="sleeping")
    set_member("乙", segment="lost")
    set_member("丙", segment="sleeping")  # another store
    set_member("丁", segment="sleeping", marketing_opt_in=False)  # said no to marketing
    set_member("戊", segment="active")
    campaign = retail.as_("marketing1").create("campaign", {
        "name": "沉睡唤醒", "campaign_type": "sms", "target_segments": ["sleeping", "lost"],
        "target_store": retail.stores["S1"]})
    outcome = retail.as_("marketing1").run_action("campaign", campaign["id"], "reach_members",
                                                  {"activity_type": "sms", "gift_points": 50})
    assert outcome["message"].text("en").startswith("2 member(s) reached")
    planned = retail.find("activity", f"campaign eq {campaign['id']}")
    assert {a["customer"] for a in planned} == {members["甲"], members["乙"]}
    assert {a["owner"] for a in planned} == {retail.id("clerk1")}  # on the store staff's lists
    assert all(a["subject"] == "沉睡唤醒" and a["activity_type"] == "sms" for a in planned)
    assert retail.get("member_card", cards["甲"]["id"])["points_balance"] == 50
    assert retail.get("campaign", campaign["id"])["members_reached"] == 2
    # reached members are not reached twice; new ones are
    set_member("戊", segment="sleeping")
    again = retail.as_("marketing1").run_action("campaign", campaign["id"], "reach_members", {"activity_type": "call"})
    assert again["message"].text("en").startswith("1 member(s) reached")
    assert len(retail.find("activity", f"campaign eq {campaign['id']}")) == 3
    # the campaign's member sales
    retail.as_("clerk1").create("card_recharge", {"card": cards["甲"]["id"], "amount": "1000", "payment_channel": "cash",
                                                  "campaign": campaign["id"]})
    retail.consume(cards["甲"], "200", campaign=campaign["id"])
    result = retail.get("campaign", campaign["id"])
    assert result["member_sales"] == Decimal("200.00") and result["member_recharges"] == Decimal("1000.00")
    with pytest.raises(Forbidden):  # a store clerk reads campaigns but does not run them
        retail.as_("clerk1").run_action("campaign", campaign["id"], "reach_members", {"activity_type": "sms"})


def test_merging_two_members_moves_the_cards_and_their_history(retail: Retail) -> None:
    one = retail.card("王芳", recharge="1000", phone="13800000001")
    two = retail.card("王芳（重复）", recharge="500")
    retail.consume(two, "100")
    outcome = retail.as_("mgr1").run_action("customer", one["member"], "merge", {"duplicate": two["member"]})
    assert outcome["message"]
    assert {c["id"] for c in retail.find("member_card", f"member eq {one['member']}")} == {one["id"], two["id"]}
    assert len(retail.find("card_consumption", f"member eq {one['member']}")) == 1
    survivor = retail.get("customer", one["member"])
    assert survivor["stored_value_balance"] == Decimal("1500.00") and survivor["card_count"] == 2


# -- concurrency (PostgreSQL) --------------------------------------------------------------------------------------

needs_postgres = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not running")


@pytest.fixture
def pg_retail(tmp_path: Path) -> Iterator[Retail]:
    with empty_database("postgresql", tmp_path) as url:
        shop = build(url, tmp_path / "files")
        yield shop
        shop.runtime.engine.dispose()


def race(retail: Retail, writes: list[tuple[str, str, dict[str, Any]]], hold: float = 0.0) -> list[str]:
    """Run the writes (user, entity, values) in threads that start together; the first one keeps
    its transaction open `hold` seconds after writing. -> 'ok' or 'refused' per write."""
    results = [""] * len(writes)
    barrier = threading.Barrier(len(writes))
    written = threading.Event()

    def run(i: int, user: str, entity: str, values: dict[str, Any]) -> None:
        barrier.wait()
        if hold and i > 0:
            written.wait(5)
        try:
            with retail.runtime.engine.begin() as conn:
                retail.runtime.records(retail.users[user].actor(), conn).create(entity, values)
                if i == 0:
                    written.set()
                    time.sleep(hold)
            results[i] = "ok"
        except Rejected:
            results[i] = "refused"
        finally:
            written.set()

    threads = [threading.Thread(target=run, args=(i, *w)) for i, w in enumerate(writes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@needs_postgres
def test_two_clerks_redeeming_the_same_points_at_once(pg_retail: Retail) -> None:
    retail = pg_retail
    card = retail.card(recharge="1000")
    retail.consume(card, "500")  # 500 points
    redeem = {"card": card["id"], "kind": "redeem", "points": 300}
    # the second waits for the first's transaction (locked card), then sees what it left
    started = time.monotonic()
    assert race(retail, [("clerk1", "points_entry", redeem), ("clerk1b", "points_entry", redeem)], hold=1.0) == \
        ["ok", "refused"]
    assert time.monotonic() - started >= 1.0
    assert retail.get("member_card", card["id"])["points_balance"] == 200
    # and when they really start at the same instant, exactly one gets the points, round after round
    for _ in range(4):
        retail.points(retail.get("member_card", card["id"]), "gift", 100, by="mgr1")  # 300 again
        outcome = race(retail, [("clerk1", "points_entry", {**redeem, "points": 200}),
                                ("clerk1b", "points_entry", {**redeem, "points": 200})])
        assert sorted(outcome) == ["ok", "refused"]
        assert retail.get("member_card", card["id"])["points_balance"] == 100
        retail.points(retail.get("member_card", card["id"]), "adjust", -100, by="mgr1")
        retail.points(retail.get("member_card", card["id"]), "gift", 200, by="mgr1")
    entries = retail.find("points_entry", f"card eq {card['id']}")
    assert sum(e["points"] for e in entries) == retail.get("member_card", card["id"])["points_balance"] >= 0


@needs_postgres
def test_two_payments_from_the_same_stored_value_at_once(pg_retail: Retail) -> None:
    retail = pg_retail
    card = retail.card(recharge="500")  # 500, no bonus
    pay = {"card": card["id"], "amount": "300", "items": "护理", "payment_method": "stored_value"}
    assert race(retail, [("clerk1", "card_consumption", pay), ("clerk2", "card_consumption", pay)], hold=0.5) == \
        ["ok", "refused"]
    for _ in range(3):
        retail.as_("clerk1").create("card_recharge", {"card": card["id"], "amount": "400", "payment_channel": "cash"})
        balance = retail.get("member_card", card["id"])["balance"]
        outcome = race(retail, [("clerk1", "card_consumption", pay), ("clerk2", "card_consumption", pay),
                                ("clerk1b", "card_consumption", pay)])
        assert outcome.count("ok") == min(3, int(balance // 300)), (balance, outcome)
        assert retail.get("member_card", card["id"])["balance"] == balance - 300 * outcome.count("ok")
    card = retail.get("member_card", card["id"])
    assert card["balance"] >= 0
    spent = sum(c["stored_value_paid"] for c in retail.find("card_consumption", f"card eq {card['id']}"))
    assert card["balance"] == Decimal("1700.00") - spent


# -- installing onto a running standard CRM, and the demo -----------------------------------------------------------


def table_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        names = [n for n in sa.inspect(engine).get_table_names()]
        with engine.connect() as conn:
            return {n: conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names}
    finally:
        engine.dispose()


def test_installing_onto_a_running_standard_crm_keeps_every_row_and_the_demo_adds_a_store_chain(
        db_url: str, tmp_path: Path) -> None:
    from engine.demo import generate, generate_pack
    from engine.runtime.installer import install, installed

    standard = make_runtime(db_url, STANDARD)
    generate(standard, customers=20, seed=3)
    standard.engine.dispose()
    before = table_counts(db_url)
    report = install([STANDARD], PACK, make_engine(db_url), timezone="Asia/Shanghai", files_dir=str(tmp_path))
    assert report.name == "membership_retail" and report.version == "1.0.0"
    after = table_counts(db_url)
    kept = {name: count for name, count in after.items() if name in before and name != "crm_pack"}
    assert kept == {name: count for name, count in before.items() if name != "crm_pack"}
    assert installed(make_engine(db_url))["membership_retail"][0] == "1.0.0"
    assert after["member_card"] == 0 and after["store"] == 0

    runtime = Runtime(load_registry([STANDARD, PACK]), make_engine(db_url))
    try:
        system = runtime.records()
        old = system.query("customer", ListQuery(limit=1)).rows[0]  # an existing customer becomes a member
        store = system.create("store", {"code": "X1", "name": "试点门店"})
        card = system.create("member_card", {"member": old["id"], "store": store["id"]})
        assert system.get("customer", old["id"])["card_count"] == 1 and card["balance"] == 0

        demo = generate_pack(runtime, "membership_retail", seed=7)
        assert demo is not None and demo.counts["member_card"] == 240 and demo.counts["store"] == 4
        assert generate_pack(runtime, "membership_retail") is None  # once per database
        with runtime.engine.connect() as conn:
            def one(sql: str) -> Any:
                return conn.execute(sa.text(sql)).scalar_one()

            assert one("SELECT count(*) FROM member_card WHERE balance < 0 OR points_balance < 0") == 0
            assert one("""SELECT count(*) FROM member_card c WHERE abs(c.balance - (
                           coalesce((SELECT sum(total_credit) FROM card_recharge r WHERE r.card = c.id AND r.status = 'valid'), 0)
                         - coalesce((SELECT sum(stored_value_paid) FROM card_consumption x WHERE x.card = c.id AND x.status = 'valid'), 0)
                         )) > 0.001""") == 0
            assert one("""SELECT count(*) FROM member_card c WHERE c.points_balance <>
                          coalesce((SELECT sum(points) FROM points_entry p WHERE p.card = c.id), 0)""") == 0
            assert one("SELECT min(balance_after) FROM card_consumption") >= 0
            assert one("SELECT min(balance_after) FROM points_entry") >= 0
            assert one("SELECT count(DISTINCT segment) FROM customer WHERE card_count > 0") == 5
            assert one("SELECT count(*) FROM customer WHERE card_count > 0 AND birthday IS NOT NULL AND next_birthday IS NULL") == 0
        users = {u.username for u in demo.users}
        assert {"clerk1", "storemgr1", "opsdirector"} <= users
        clerk = next(u for u in demo.users if u.username == "clerk1")
        assert clerk.password == "demo-clerk1"
        from engine.runtime.users import check_password

        signed_in = check_password(runtime, "clerk1", "demo-clerk1")
        assert signed_in is not None and signed_in.roles == ("store_clerk",)
        clerk_records = runtime.records(signed_in.actor())
        home_store = clerk_records.query("customer", ListQuery(filters=["card_count gt 0", "owner in $department"],
                                                               limit=1))
        assert home_store.total and home_store.total > 20
        today = clerk_records.query("card_consumption", ListQuery(filters=["consumed_at eq today", "owner eq $me"]))
        assert today.total
    finally:
        runtime.engine.dispose()
