"""The standard CRM pack's behaviours through the runtime (packs/standard_crm/hooks.py): mnemonic
codes, follow-ups, lead conversion, the customer pool, duplicate check and merge, the list views,
birthdays, quote approval and orders, sharing and transfer, and who may do what."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.runtime.errors import Forbidden, NotFound, ValidationFailed
from engine.runtime.query import ListQuery
from tests.packs.conftest import CRM, STANDARD


def hooks_module():  # type: ignore[no-untyped-def]
    """The pack's hooks.py as a module (its pure helpers are part of what we test)."""
    from engine.runtime.hooks import _import_file

    return _import_file("crm_pack_hooks.standard_crm", str(STANDARD / "hooks.py"))


# -- 1. mnemonic ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "code"), [
    ("重庆长安汽车股份有限公司", "CQCAQCGFYXGS"),
    ("ABC科技（上海）有限公司", "ABCKJSHYXGS"),
    ("中国银行", "ZGYH"),
    ("Ｈｅｌｌｏ 世界 2024", "HELLOSJ2024"),
    ("", None),
])
def test_mnemonic_is_the_pinyin_initials(name: str, code: str | None) -> None:
    assert hooks_module().mnemonic(name) == code


def test_mnemonic_is_maintained_and_searchable(crm: CRM) -> None:
    sales1 = crm.as_("sales1")
    created = sales1.create("customer", {"name": "上海华信电子有限公司"})
    assert created["mnemonic"] == "SHHXDZYXGS"
    found = sales1.query("customer", ListQuery(search="shhx"))
    assert [r["id"] for r in found.rows] == [created["id"]]
    renamed = sales1.update("customer", created["id"], {"name": "苏州博远科技"}, created["version"])
    assert renamed["mnemonic"] == "SZBYKJ"
    assert not sales1.query("customer", ListQuery(search="SHHX")).rows
    with pytest.raises(ValidationFailed) as caught:  # read-only: only the hook sets it
        sales1.update("customer", created["id"], {"mnemonic": "XX"}, renamed["version"])
    assert "mnemonic" in caught.value.errors


# -- 2. follow-ups --------------------------------------------------------------------------------------

def test_a_follow_up_updates_the_customers_last_next_and_maturity(crm: CRM) -> None:
    sales1 = crm.as_("sales1")
    customer = sales1.create("customer", {"name": "苏州博远电子", "next_follow_up_at": "2020-01-05 10:00"})
    first = sales1.create("follow_up", {"customer": customer["id"], "subject": "电话", "followed_up_at": "2020-01-06 09:00",
                                        "maturity": "interested"})
    after = crm.get("customer", customer["id"])
    assert str(after["last_follow_up_at"]) == "2020-01-06 09:00:00" and after["maturity"] == "interested"
    assert after["next_follow_up_at"] is None  # the follow-up that was due has happened
    second = sales1.create("follow_up", {"customer": customer["id"], "subject": "拜访", "followed_up_at": "2020-02-01 15:00",
                                         "maturity": "evaluating", "next_follow_up_at": "2020-02-10 09:00"})
    after = crm.get("customer", customer["id"])
    assert (str(after["last_follow_up_at"]), after["maturity"], str(after["next_follow_up_at"])) == \
        ("2020-02-01 15:00:00", "evaluating", "2020-02-10 09:00:00")
    # a back-dated follow-up does not move the customer backwards
    sales1.create("follow_up", {"customer": customer["id"], "subject": "补录", "followed_up_at": "2019-12-01 09:00",
                                "maturity": "first_contact", "next_follow_up_at": "2019-12-05 09:00"})
    assert crm.get("customer", customer["id"])["maturity"] == "evaluating"
    # deleting the newest one brings the last time back to the one before
    sales1.delete("follow_up", second["id"])
    assert str(crm.get("customer", customer["id"])["last_follow_up_at"]) == "2020-01-06 09:00:00"
    # editing a follow-up's time moves the last time with it; history names the salesperson
    first = sales1.get("follow_up", first["id"])
    sales1.update("follow_up", first["id"], {"followed_up_at": "2020-01-07 09:00"}, first["version"])
    assert str(crm.get("customer", customer["id"])["last_follow_up_at"]) == "2020-01-07 09:00:00"
    changes = [h for h in crm.system.history("customer", customer["id"]) if h["field"] == "last_follow_up_at"]
    assert changes and all(h["user_id"] == crm.id("sales1") for h in changes)


def test_follow_ups_only_on_customers_one_may_read(crm: CRM) -> None:
    theirs = crm.customer("北方重工", "sales2")
    with pytest.raises(ValidationFailed) as caught:
        crm.as_("sales1").create("follow_up", {"customer": theirs["id"], "subject": "x"})
    assert "customer" in caught.value.errors
    mine = crm.as_("sales1").create("customer", {"name": "自己的客户"})
    with pytest.raises(ValidationFailed):  # the customer's last follow-up is not for hands
        crm.as_("sales1").update("customer", mine["id"], {"last_follow_up_at": "2020-01-01"}, mine["version"])


# -- 3. lead conversion ---------------------------------------------------------------------------------

def lead_of(crm: CRM, owner: str, **values: Any) -> dict[str, Any]:
    return crm.system.create("lead", {"company": "无锡新锐自动化有限公司", "contact_name": "周强", "contact_title": "采购经理",
                                      "mobile": "13912345678", "email": "zhouqiang@xinrui.cn", "province": "jiangsu",
                                      "city": "无锡", "source_channel": "web_form", "status": "qualified",
                                      "owner": crm.id(owner), **values})


def test_converting_a_lead_creates_customer_contact_and_opportunity(crm: CRM) -> None:
    lead = lead_of(crm, "sales1")
    sales1 = crm.as_("sales1")
    outcome = sales1.run_action("lead", lead["id"], "convert",
                                {"create_opportunity": True, "opportunity_name": "产线改造", "amount": "120000"})
    assert outcome["message"].text("en") == \
        "Lead converted: customer 无锡新锐自动化有限公司, contact 周强, opportunity 产线改造."
    assert outcome["open"][0] == "customer"
    done = crm.get("lead", lead["id"])
    assert done["status"] == "converted" and done["converted_at"] is not None
    customer = crm.get("customer", done["converted_customer"])
    contact = crm.get("contact", done["converted_contact"])
    opportunity = crm.get("opportunity", done["converted_opportunity"])
    assert outcome["open"][1] == customer["id"]
    assert (customer["name"], customer["city"], customer["source"], customer["owner"], customer["mnemonic"]) == \
        ("无锡新锐自动化有限公司", "无锡", "website", crm.id("sales1"), "WXXRZDHYXGS")
    assert (contact["customer"], contact["name"], contact["title"], contact["mobile"]) == \
        (customer["id"], "周强", "采购经理", "13912345678")
    assert (opportunity["customer"], opportunity["contact"], str(opportunity["amount"]), opportunity["owner"]) == \
        (customer["id"], contact["id"], "120000.00", crm.id("sales1"))
    # converting twice is refused: the action no longer applies
    with pytest.raises(ValidationFailed) as caught:
        sales1.run_action("lead", lead["id"], "convert", {})
    assert "does not apply" in caught.value.errors[""][0].text("en")
    assert len(crm.find("customer")) == 1


def test_conversion_without_opportunity_into_an_existing_customer(crm: CRM) -> None:
    existing = crm.customer("常州宏远机械", "sales1")
    lead = lead_of(crm, "sales1", company="常州宏远机械厂", status="working")
    outcome = crm.as_("sales1").run_action("lead", lead["id"], "convert",
                                           {"customer": existing["id"], "create_opportunity": "false"})
    assert outcome["message"].text("zh") == "线索已转化：客户 常州宏远机械，联系人 周强。"
    done = crm.get("lead", lead["id"])
    assert done["converted_customer"] == existing["id"] and done["converted_opportunity"] is None
    assert not crm.find("opportunity") and len(crm.find("customer")) == 1
    # a customer the user cannot see cannot be chosen
    theirs = crm.customer("别人的客户", "sales2")
    other = lead_of(crm, "sales1", company="另一家")
    with pytest.raises(ValidationFailed) as caught:
        crm.as_("sales1").run_action("lead", other["id"], "convert", {"customer": theirs["id"]})
    assert "customer" in caught.value.errors
    assert crm.get("lead", other["id"])["status"] == "qualified"


def test_conversion_is_one_transaction(crm: CRM) -> None:
    lead = lead_of(crm, "sales1")

    def broken(ctx: Any) -> None:
        raise RuntimeError("the opportunity could not be saved")

    crm.runtime.hooks.add("opportunity", "before_save", broken)
    with pytest.raises(RuntimeError):
        crm.as_("sales1").run_action("lead", lead["id"], "convert", {"create_opportunity": True})
    assert not crm.find("customer") and not crm.find("contact")
    assert crm.get("lead", lead["id"])["status"] == "qualified"


def test_who_may_convert_which_leads(crm: CRM) -> None:
    mine = lead_of(crm, "sales1")
    for name in ("sales2", "service1"):  # cannot even see it
        with pytest.raises(NotFound):
            crm.as_(name).run_action("lead", mine["id"], "convert", {})
    disqualified = lead_of(crm, "sales1", status="disqualified")
    with pytest.raises(ValidationFailed):
        crm.as_("sales1").run_action("lead", disqualified["id"], "convert", {})
    # marketing works every lead; the records go to the lead's owner
    crm.as_("marketing1").run_action("lead", mine["id"], "convert", {"create_opportunity": False})
    customer = crm.get("customer", crm.get("lead", mine["id"])["converted_customer"])
    assert customer["owner"] == crm.id("sales1")
    # the manager converts the team's leads
    team = lead_of(crm, "east1", company="团队的线索")
    crm.as_("manager").run_action("lead", team["id"], "convert", {"create_opportunity": False})
    assert crm.get("lead", team["id"])["status"] == "converted"


# -- 4. the customer pool -------------------------------------------------------------------------------

def backdate(crm: CRM, entity: str, record_id: int, **values: Any) -> None:
    """Set system or hook-kept columns directly, as if time had passed."""
    table = crm.runtime.table(entity)
    with crm.runtime.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == record_id).values(**values))


def test_release_claim_and_the_limit(crm: CRM) -> None:
    sales1, sales2 = crm.as_("sales1"), crm.as_("sales2")
    customer = sales1.create("customer", {"name": "温州鼎盛鞋业"})
    assert customer["assigned_at"] is not None and customer["owner"] == crm.id("sales1")
    outcome = sales1.run_action("customer", customer["id"], "to_pool", {"reason": "no_intent"})
    assert outcome["message"].text("en") == "Customer 温州鼎盛鞋业 has been released to the pool."
    pooled = crm.get("customer", customer["id"])
    assert (pooled["in_pool"], pooled["owner"], pooled["pool_reason"], pooled["previous_owner"]) == \
        (True, None, "no_intent", crm.id("sales1"))
    assert pooled["pooled_at"] is not None and pooled["assigned_at"] is None
    # everyone in sales sees the pool; sales2 claims it
    assert [c["id"] for c in crm.find("customer", view_filters(crm, "customer", "pool")[0], actor="sales2")] == \
        [customer["id"]]
    with pytest.raises(ValidationFailed):  # the action applies to customers in the pool only
        sales2.run_action("customer", customer["id"], "to_pool", {})
    claimed = sales2.run_action("customer", customer["id"], "claim")
    assert claimed["open"] == ("customer", customer["id"])
    after = crm.get("customer", customer["id"])
    assert (after["in_pool"], after["owner"], after["pool_reason"], after["pooled_at"]) == \
        (False, crm.id("sales2"), None, None)
    assert after["assigned_at"] is not None
    with pytest.raises(NotFound):  # gone from sales1, who released it: no longer in the pool
        sales1.run_action("customer", customer["id"], "claim")
    with pytest.raises(ValidationFailed):  # claimed already
        crm.as_("admin").run_action("customer", customer["id"], "claim")
    # the limit: sales2 owns one customer and may own one
    crm.runtime.set_setting("max_customers_per_salesperson", 1)
    other = crm.customer("另一家公海客户", None)
    crm.system.run_action("customer", other["id"], "to_pool", {"reason": "released"})
    with pytest.raises(ValidationFailed) as caught:
        sales2.run_action("customer", other["id"], "claim")
    assert caught.value.errors[""][0].text("en") == \
        "You already own 1 customers; the limit is 1. Release some customers to the pool first."
    assert crm.get("customer", other["id"])["in_pool"] is True
    sales1.run_action("customer", other["id"], "claim")  # sales1 owns none now
    crm.runtime.set_setting("max_customers_per_salesperson", 0)  # 0: no limit


def view_filters(crm: CRM, entity: str, key: str) -> list[str]:
    view = next(v for v in crm.runtime.registry.entity(entity).list.views if v.key == key)
    return list(view.filter)


def test_who_may_release_claim_and_assign(crm: CRM) -> None:
    theirs = crm.customer("华北客户", "sales2")
    shared = crm.customer("共享给 sales1 的客户", "sales2")
    crm.as_("sales2").share("customer", shared["id"], crm.id("sales1"), "edit")
    with pytest.raises(NotFound):
        crm.as_("sales1").run_action("customer", theirs["id"], "to_pool", {})
    with pytest.raises(ValidationFailed) as caught:  # an edit share is not ownership
        crm.as_("sales1").run_action("customer", shared["id"], "to_pool", {})
    assert "owner or a manager" in caught.value.errors[""][0].text("en")
    team = crm.customer("east1 的客户", "east1")
    crm.as_("manager").run_action("customer", team["id"], "to_pool", {"reason": "owner_left"})  # the manager's team
    assert crm.get("customer", team["id"])["pool_reason"] == "owner_left"
    with pytest.raises(NotFound):  # not the manager's team
        crm.as_("manager").run_action("customer", theirs["id"], "to_pool", {})
    with pytest.raises(Forbidden):  # salespeople do not assign
        crm.as_("sales1").run_action("customer", team["id"], "assign_from_pool", {"user": crm.id("sales1")})
    with pytest.raises(ValidationFailed) as caught:  # sales2 is not in the manager's team
        crm.as_("manager").run_action("customer", team["id"], "assign_from_pool", {"user": crm.id("sales2")})
    assert caught.value.errors["user"][0].text("en") == "You may not assign customers to Sales2."
    done = crm.as_("manager").run_action("customer", team["id"], "assign_from_pool", {"user": crm.id("sales1")})
    assert done["message"].text("zh") == "客户 east1 的客户 已分配给 Sales1。"
    assert crm.get("customer", team["id"])["owner"] == crm.id("sales1")
    crm.system.run_action("customer", team["id"], "to_pool", {})
    for name in ("marketing1", "service1"):  # they read customers, but do not work the pool
        with pytest.raises(Forbidden):
            crm.as_(name).run_action("customer", team["id"], "claim")
    mine = crm.as_("sales1").create("customer", {"name": "直接改公海标志"})
    with pytest.raises(ValidationFailed) as caught:  # the pool flag changes through the actions only
        crm.as_("sales1").update("customer", mine["id"], {"in_pool": True}, mine["version"])
    assert "in_pool" in caught.value.errors


def test_a_manager_moving_pool_customers_by_owner_takes_them_out_of_the_pool(crm: CRM) -> None:
    pooled = crm.customer("公海客户", None)
    crm.system.run_action("customer", pooled["id"], "to_pool", {})
    record = crm.get("customer", pooled["id"])
    moved = crm.as_("manager").update("customer", pooled["id"], {"owner": crm.id("east1")}, record["version"])
    assert (moved["in_pool"], moved["owner"], moved["pool_reason"]) == (False, crm.id("east1"), None)


def test_idle_customers_return_to_the_pool(crm: CRM) -> None:
    crm.runtime.set_setting("pool_return_days", 30)
    long_ago = crm.runtime.now() - timedelta(days=45)
    idle = crm.customer("45 天没跟进", "sales1")
    crm.system.create("follow_up", {"customer": idle["id"], "subject": "上次", "followed_up_at": long_ago})
    backdate(crm, "customer", idle["id"], assigned_at=long_ago - timedelta(days=10))
    never = crm.customer("从没跟进", "sales2")
    backdate(crm, "customer", never["id"], assigned_at=None, created_at=long_ago)
    fresh = crm.customer("新领的客户", "sales1")  # old follow-ups, but its owner got it today
    crm.system.create("follow_up", {"customer": fresh["id"], "subject": "上上任", "followed_up_at": long_ago})
    recent = crm.customer("最近跟进过", "sales1")
    crm.system.create("follow_up", {"customer": recent["id"], "subject": "昨天",
                                    "followed_up_at": crm.runtime.now() - timedelta(days=1)})
    report = crm.system.run_job("return_idle_customers")
    assert report == ["Customer 45 天没跟进 was returned to the pool: no follow-up for 30 days.",
                      "Customer 从没跟进 was returned to the pool: no follow-up for 30 days.",
                      "2 customer(s) returned to the pool"]
    for customer, pooled in ((idle, True), (never, True), (fresh, False), (recent, False)):
        record = crm.get("customer", customer["id"])
        assert record["in_pool"] is pooled, record["name"]
    assert crm.get("customer", idle["id"])["pool_reason"] == "no_follow_up"
    assert crm.get("customer", idle["id"])["previous_owner"] == crm.id("sales1")
    assert crm.system.run_job("return_idle_customers") == ["0 customer(s) returned to the pool"]
    crm.runtime.set_setting("pool_return_days", 0)
    assert crm.system.run_job("return_idle_customers") == ["pool_return_days is 0: nothing returned"]


# -- 5. duplicate check -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("one", "other"), [
    ("上海华信科技有限公司", "上海华信科技股份有限公司"),
    ("上海华信科技（集团）有限公司", "上海 华信科技"),
    ("上海华信科技有限责任公司", "上海华信科技集团"),
    ("ＡＣＭＥ Trading Co., Ltd.", "acme trading inc"),
    ("Acme Trading LLC", "ACME TRADING LIMITED"),
    ("【华信】电子", "华信电子"),
])
def test_names_that_are_the_same_company(one: str, other: str) -> None:
    assert hooks_module().name_key(one) == hooks_module().name_key(other)


def test_names_that_are_different_companies() -> None:
    key = hooks_module().name_key
    assert key("华信电子") != key("华信电器") and key("Acme Co") != key("Acme Trading")
    assert key("有限公司") == "有限公司"  # nothing but a company form: kept


@pytest.mark.parametrize("phone", ["021-5555-1234", "+86 21 5555 1234", "(021) 5555 1234 转 12", "0086 21 55551234"])
def test_phone_numbers_that_are_the_same(phone: str) -> None:
    assert hooks_module().phone_key(phone) == "02155551234"


def test_duplicates_warn_by_default_and_can_be_refused(crm: CRM) -> None:
    first = crm.customer("上海华信科技有限公司", "sales2", phone="021-5555-1234", email="info@huaxin.cn")
    assert first["name_key"] == "上海华信科技" and first["phone_key"] == "02155551234"
    assert "_warnings" not in first
    sales1 = crm.as_("sales1")
    second = sales1.create("customer", {"name": "上海华信科技（集团）股份有限公司", "phone": "+86 21 5555 1234",
                                        "email": "INFO@huaxin.cn"})
    assert [w.text("en") for w in second["_warnings"]] == [
        f'A customer named "上海华信科技有限公司" already exists ({first["code"]}, owner Sales2).',
        "Another customer (上海华信科技有限公司) already uses the phone number +86 21 5555 1234.",
        "Another customer (上海华信科技有限公司) already uses the e-mail address info@huaxin.cn."]
    # an update that does not touch name, phone or e-mail says nothing
    updated = sales1.update("customer", second["id"], {"remarks": "同一家？"}, second["version"])
    assert "_warnings" not in updated
    crm.runtime.set_setting("duplicate_name_policy", "refuse")
    with pytest.raises(ValidationFailed) as caught:
        sales1.create("customer", {"name": "上海 华信科技"})
    assert caught.value.errors["name"][0].text("zh") == "已存在名为“上海华信科技有限公司”的客户，不允许客户重名。"
    with pytest.raises(ValidationFailed):  # renaming into a duplicate is refused too
        other = sales1.create("customer", {"name": "苏州华信"})
        sales1.update("customer", other["id"], {"name": "上海华信科技有限公司"}, other["version"])
    assert len(crm.find("customer", "name_key eq 上海华信科技")) == 2
    # customers in the recycle bin do not count
    crm.system.delete("customer", second["id"])
    crm.system.delete("customer", first["id"])
    assert crm.customer("上海华信科技有限公司", "sales1")["name_key"] == "上海华信科技"


def test_converting_a_lead_of_an_existing_company_joins_it(crm: CRM) -> None:
    existing = crm.customer("杭州宏达电气有限公司", "sales1")
    lead = crm.system.create("lead", {"company": "杭州宏达电气股份有限公司", "contact_name": "钱伟", "status": "qualified",
                                      "owner": crm.id("sales1")})
    outcome = crm.as_("sales1").run_action("lead", lead["id"], "convert", {"create_opportunity": False})
    assert [w.text("en") for w in outcome["warnings"]] == [
        'A customer named "杭州宏达电气有限公司" already exists; the lead was linked to it instead of creating a new one.']
    assert crm.get("lead", lead["id"])["converted_customer"] == existing["id"]
    assert len(crm.find("customer")) == 1


def test_refresh_customer_keys_fills_what_bulk_inserts_left_empty(crm: CRM) -> None:
    ids = crm.system.bulk_create("customer", [{"name": "成都天瑞软件有限公司", "phone": "028-8888 1234"}])
    assert crm.get("customer", ids[0])["name_key"] is None
    assert crm.system.run_job("refresh_customer_keys") == ["1 customer(s) updated"]
    record = crm.get("customer", ids[0])
    assert (record["mnemonic"], record["name_key"], record["phone_key"]) == ("CDTRRJYXGS", "成都天瑞软件", "02888881234")
    assert crm.system.run_job("refresh_customer_keys") == ["0 customer(s) updated"]


# -- 6. merge ---------------------------------------------------------------------------------------------

def a_product(crm: CRM) -> int:
    return int(crm.system.create("product", {"code": "P-001", "name": "PLC 控制器", "standard_price": "1000"})["id"])


def everything_around(crm: CRM, customer: int, owner: str) -> dict[str, int]:
    """One record of each kind that refers to a customer."""
    rec, me = crm.system, crm.id(owner)
    contact = rec.create("contact", {"customer": customer, "name": "赵敏", "owner": me})["id"]
    opportunity = rec.create("opportunity", {"customer": customer, "name": "扩产项目", "owner": me})["id"]
    quote = rec.create("quote", {"customer": customer, "subject": "报价", "owner": me})["id"]
    rec.create("quote_line", {"quote": quote, "product": a_product(crm), "quantity": 2, "unit_price": "1000"})
    return {
        "contact": contact, "opportunity": opportunity, "quote": quote,
        "follow_up": rec.create("follow_up", {"customer": customer, "subject": "回访", "owner": me,
                                              "followed_up_at": "2024-05-01 10:00"})["id"],
        "activity": rec.create("activity", {"customer": customer, "subject": "拜访", "activity_type": "visit",
                                            "planned_start": "2024-05-02 10:00", "owner": me})["id"],
        "order": rec.create("order", {"customer": customer, "owner": me})["id"],
        "service_request": rec.create("service_request", {"customer": customer, "subject": "维修", "service_type": "repair",
                                                          "owner": me})["id"],
        "customer": rec.create("customer", {"name": "华信南京分公司", "parent": customer, "owner": me})["id"],
        "lead": rec.create("lead", {"company": "华信", "converted_customer": customer, "status": "converted",
                                    "owner": me})["id"],
    }


def test_merge_moves_everything_keeps_history_and_bins_the_duplicate(crm: CRM) -> None:
    sales1 = crm.as_("sales1")
    survivor = sales1.create("customer", {"name": "上海华信科技有限公司", "industry": "electronics"})
    duplicate = sales1.create("customer", {"name": "上海华信科技", "phone": "021-5555-1234", "website": "huaxin.cn",
                                           "industry": "machinery", "hot": True})
    related = everything_around(crm, duplicate["id"], "sales1")
    crm.as_("sales1").share("customer", duplicate["id"], crm.id("sales2"), "edit")
    outcome = sales1.run_action("customer", survivor["id"], "merge", {"duplicate": duplicate["id"]})
    assert outcome["message"].text("en") == ("上海华信科技 was merged into 上海华信科技有限公司: 9 related record(s) moved; "
                                            "the duplicate is in the recycle bin.")
    references = {"contact": "customer", "opportunity": "customer", "quote": "customer", "follow_up": "customer",
                  "activity": "customer", "order": "customer", "service_request": "customer", "customer": "parent",
                  "lead": "converted_customer"}
    for entity, record_id in related.items():
        record = crm.get(entity, record_id)
        assert record[references[entity]] == survivor["id"], entity
        moves = [h for h in crm.system.history(entity, record_id) if h["field"] == references[entity]
                 and h["action"] == "update"]
        assert moves and moves[0]["user_id"] == crm.id("sales1"), entity  # in the record's history, by the user
    merged = crm.get("customer", survivor["id"])
    assert (merged["phone"], merged["website"], merged["industry"], merged["hot"]) == \
        ("021-5555-1234", "https://huaxin.cn", "electronics", True)  # empty fields filled, others kept
    assert str(merged["last_follow_up_at"]) == "2024-05-01 10:00:00"
    binned = crm.system.get("customer", duplicate["id"], include_deleted=True)
    assert binned["deleted_at"] is not None and binned["merged_into"] == survivor["id"]
    assert [s["user_id"] for s in crm.system.shares("customer", survivor["id"])] == [crm.id("sales2")]
    assert crm.as_("sales2").get("customer", survivor["id"])["id"] == survivor["id"]  # the share came along
    with pytest.raises(ValidationFailed) as caught:  # a customer cannot swallow itself
        sales1.run_action("customer", survivor["id"], "merge", {"duplicate": survivor["id"]})
    assert "duplicate" in caught.value.errors


def test_merge_needs_edit_on_both(crm: CRM) -> None:
    mine = crm.customer("我的客户", "sales1")
    theirs = crm.customer("sales2 的客户", "sales2")
    read_only = crm.customer("只读共享的客户", "sales2")
    crm.as_("sales2").share("customer", read_only["id"], crm.id("sales1"), "read")
    with pytest.raises(ValidationFailed) as caught:  # cannot even see it
        crm.as_("sales1").run_action("customer", mine["id"], "merge", {"duplicate": theirs["id"]})
    assert caught.value.errors["duplicate"][0].text("en") == "You cannot merge this customer."
    with pytest.raises(ValidationFailed) as caught:
        crm.as_("sales1").run_action("customer", mine["id"], "merge", {"duplicate": read_only["id"]})
    assert caught.value.errors["duplicate"][0].text("en") == "You need edit rights on 只读共享的客户 to merge it."
    with pytest.raises(Forbidden):  # edit on the survivor too
        crm.as_("sales1").run_action("customer", read_only["id"], "merge", {"duplicate": mine["id"]})
    with pytest.raises(Forbidden):  # marketing reads customers but edits none
        crm.as_("marketing1").run_action("customer", mine["id"], "merge", {"duplicate": theirs["id"]})
    team = crm.customer("east1 的客户", "east1")
    crm.as_("manager").run_action("customer", mine["id"], "merge", {"duplicate": team["id"]})  # the manager's team
    assert crm.system.get("customer", team["id"], include_deleted=True)["merged_into"] == mine["id"]
    assert crm.get("customer", theirs["id"])["deleted_at"] is None and crm.get("customer", read_only["id"])


# -- 7. lists, birthdays and reminders -------------------------------------------------------------------

def view(crm: CRM, actor: str, entity: str, key: str) -> list[str]:
    """The titles a named view shows `actor`."""
    e = crm.runtime.registry.entity(entity)
    spec = next(v for v in e.list.views if v.key == key)
    rows = crm.as_(actor).query(entity, ListQuery(filters=list(spec.filter), sort=list(spec.sort), limit=500)).rows
    return [str(r[e.title]) for r in rows]


def test_customer_views_shared_team_newly_assigned_and_not_followed_up(crm: CRM) -> None:
    for name in ("sales1", "east1", "sales2", "manager"):
        crm.customer(f"{name} 的客户", name)
    shared = crm.customer("共享来的客户", "sales2")
    crm.as_("sales2").share("customer", shared["id"], crm.id("sales1"), "read")
    assert view(crm, "sales1", "customer", "shared") == ["共享来的客户"]
    assert sorted(view(crm, "manager", "customer", "team")) == ["east1 的客户", "manager 的客户", "sales1 的客户"]
    assert sorted(view(crm, "sales1", "customer", "all")) == ["sales1 的客户", "共享来的客户"]
    # newly assigned: got in the last 7 days (created, claimed, assigned)
    old = crm.customer("早就分配的", "sales1")
    backdate(crm, "customer", old["id"], assigned_at=crm.runtime.now() - timedelta(days=8))
    assert "早就分配的" not in view(crm, "sales1", "customer", "newly_assigned")
    assert "sales1 的客户" in view(crm, "sales1", "customer", "newly_assigned")
    # not followed up for N days
    now = crm.runtime.now()
    for days in (3, 10, 20, 40, 70):
        customer = crm.customer(f"{days} 天前跟进", "sales1")
        crm.system.create("follow_up", {"customer": customer["id"], "subject": "x",
                                        "followed_up_at": now - timedelta(days=days)})
    assert view(crm, "sales1", "customer", "not_followed_up_7") == \
        ["70 天前跟进", "40 天前跟进", "20 天前跟进", "10 天前跟进"]
    assert view(crm, "sales1", "customer", "not_followed_up_15") == ["70 天前跟进", "40 天前跟进", "20 天前跟进"]
    assert view(crm, "sales1", "customer", "not_followed_up_30") == ["70 天前跟进", "40 天前跟进"]
    assert view(crm, "sales1", "customer", "not_followed_up_60") == ["70 天前跟进"]
    assert crm.runtime.registry.entity("customer").list.highlight == ("hot eq true",)


@pytest.mark.parametrize(("birthday", "today", "expected"), [
    ("1980-05-20", "2025-05-19", "2025-05-20"),
    ("1980-05-20", "2025-05-20", "2025-05-20"),
    ("1980-05-20", "2025-05-21", "2026-05-20"),
    ("1980-02-29", "2025-01-10", "2025-02-28"),
    ("1980-02-29", "2028-01-10", "2028-02-29"),
    ("1980-12-31", "2025-12-31", "2025-12-31"),
])
def test_next_birthday(birthday: str, today: str, expected: str) -> None:
    assert str(hooks_module().next_birthday(date.fromisoformat(birthday), date.fromisoformat(today))) == expected


def test_birthdays_this_week_and_the_daily_roll(crm: CRM) -> None:
    today = crm.runtime.now().date()
    customer = crm.customer("生日客户", "sales1")
    sales1 = crm.as_("sales1")
    soon = sales1.create("contact", {"customer": customer["id"], "name": "今天生日",
                                     "birthday": today.replace(year=1980)})  # a leap year: any day exists
    assert soon["next_birthday"] == today
    later = sales1.create("contact", {"customer": customer["id"], "name": "十天后生日",
                                      "birthday": (today + timedelta(days=10)).replace(year=1984)})
    assert later["next_birthday"] == today + timedelta(days=10)
    crm.system.create("contact", {"customer": customer["id"], "name": "别人的联系人", "birthday": today.replace(year=1980),
                                  "owner": crm.id("sales2")})
    assert view(crm, "sales1", "contact", "birthdays_this_week") == ["今天生日"]
    assert view(crm, "sales1", "contact", "birthdays_next_30_days") == ["今天生日", "十天后生日"]
    # a day later, the birthday has passed: the job moves it to next year
    backdate(crm, "contact", soon["id"], next_birthday=today - timedelta(days=1))
    assert crm.system.run_job("roll_birthdays") == ["1 contact(s) updated"]
    assert crm.get("contact", soon["id"])["next_birthday"] == \
        hooks_module().next_birthday(crm.get("contact", soon["id"])["birthday"], today)
    bulk = crm.system.bulk_create("contact", [{"customer": customer["id"], "name": "导入的", "birthday": "1990-01-01"}])
    assert crm.system.run_job("roll_birthdays") == ["1 contact(s) updated"]
    assert crm.get("contact", bulk[0])["next_birthday"] is not None
    assert crm.system.run_job("roll_birthdays") == ["0 contact(s) updated"]


def test_stale_customers_are_put_on_todays_follow_up_list(crm: CRM) -> None:
    now = crm.runtime.now()
    stale = crm.customer("10 天没跟进", "sales1")
    crm.system.create("follow_up", {"customer": stale["id"], "subject": "x", "followed_up_at": now - timedelta(days=10)})
    backdate(crm, "customer", stale["id"], assigned_at=now - timedelta(days=30))
    planned = crm.customer("已安排跟进", "sales1", next_follow_up_at=now + timedelta(days=2))
    backdate(crm, "customer", planned["id"], assigned_at=now - timedelta(days=30))
    recent = crm.customer("昨天跟进", "sales1")
    crm.system.create("follow_up", {"customer": recent["id"], "subject": "x", "followed_up_at": now - timedelta(days=1)})
    assert crm.system.run_job("remind_stale_customers") == ["1 customer(s) put on today's follow-up list"]
    assert view(crm, "sales1", "customer", "follow_up_today") == ["10 天没跟进"]
    assert crm.system.run_job("remind_stale_customers") == ["0 customer(s) put on today's follow-up list"]
    crm.runtime.set_setting("followup_stale_days", 0)
    assert crm.system.run_job("remind_stale_customers") == ["followup_stale_days is 0: no reminders"]


def test_demo_data_fills_what_the_hooks_keep(db_url: str) -> None:
    """Bulk inserts run no hooks: the demo fills the keys, dates and birthdays the same way."""
    from engine.demo import generate
    from tests.conftest import make_runtime

    runtime = make_runtime(db_url, STANDARD)
    try:
        generate(runtime, customers=20, seed=5)
        helpers, rec = hooks_module(), runtime.records()
        customers = rec.query("customer", ListQuery(limit=500)).rows
        assert all(c["name_key"] == helpers.name_key(c["name"]) for c in customers)
        assert all(c["phone_key"] == helpers.phone_key(c["phone"]) for c in customers)
        assert all((c["assigned_at"] is None) == c["in_pool"] for c in customers)
        today = runtime.now().date()
        contacts = rec.query("contact", ListQuery(filters=["birthday is_not_empty"], limit=500)).rows
        assert contacts and all(c["next_birthday"] == helpers.next_birthday(c["birthday"], today) for c in contacts)
        assert rec.query("contact", ListQuery(filters=["next_birthday eq today"])).total
        assert rec.run_job("refresh_customer_keys") == ["0 customer(s) updated"]
    finally:
        runtime.engine.dispose()


# -- 8. quote approval and orders ------------------------------------------------------------------------

def quote_for(crm: CRM, owner: str, lines: int = 2) -> dict[str, Any]:
    customer = crm.customer(f"{owner} 的报价客户", owner)
    quote = crm.as_(owner).create("quote", {"customer": customer["id"], "subject": "PLC 升级", "payment_terms": "预付30%"})
    product = crm.system.create("product", {"code": f"P-{quote['id']}", "name": "PLC 控制器", "standard_price": "1000"})
    for n in range(lines):
        crm.as_(owner).create("quote_line", {"quote": quote["id"], "product": product["id"], "quantity": n + 1,
                                             "unit_price": "1000", "discount_percent": "10"})
    return crm.as_(owner).get("quote", quote["id"])


def test_quote_approval_then_order(crm: CRM) -> None:
    sales1, manager = crm.as_("sales1"), crm.as_("manager")
    empty = quote_for(crm, "sales1", lines=0)
    with pytest.raises(ValidationFailed) as caught:
        sales1.run_action("quote", empty["id"], "submit")
    assert caught.value.errors["status"][0].text("en") == "Add at least one quote line before submitting the quote."
    quote = quote_for(crm, "sales1")
    assert str(quote["total"]) == "2700.00"
    assert sales1.run_action("quote", quote["id"], "submit")["message"].text("en") == \
        f"Quote {quote['code']} has been submitted for approval."
    quote = sales1.get("quote", quote["id"])
    # frozen while submitted: no edits, no new lines, no approving it oneself
    with pytest.raises(ValidationFailed) as caught:
        sales1.update("quote", quote["id"], {"subject": "改一下"}, quote["version"])
    assert caught.value.errors[""][0].text("zh") == f"报价单 {quote['code']} 当前状态为待审批，不能再修改。"
    with pytest.raises(ValidationFailed):
        sales1.create("quote_line", {"quote": quote["id"], "product": crm.find("product")[0]["id"], "unit_price": "1"})
    with pytest.raises(ValidationFailed) as caught:
        sales1.update("quote", quote["id"], {"status": "approved"}, quote["version"])
    assert "Approve / Reject" in caught.value.errors["status"][0].text("en")
    with pytest.raises(ValidationFailed):  # the action does not apply to one's own quote
        sales1.run_action("quote", quote["id"], "approve", {})
    with pytest.raises(NotFound):  # another department's manager
        crm.as_("boss2").run_action("quote", quote["id"], "approve", {})
    with pytest.raises(ValidationFailed) as caught:  # rejecting needs a comment
        manager.run_action("quote", quote["id"], "reject", {})
    assert "comment" in caught.value.errors
    manager.run_action("quote", quote["id"], "reject", {"comment": "折扣太大"})
    rejected = sales1.get("quote", quote["id"])
    assert (rejected["status"], rejected["approval_comment"], rejected["approved_by"]) == \
        ("rejected", "折扣太大", crm.id("manager"))
    # rejected: editable again, back to draft and submitted anew
    edited = sales1.update("quote", quote["id"], {"discount_amount": "100", "status": "draft"}, rejected["version"])
    sales1.run_action("quote", edited["id"], "submit")
    outcome = manager.run_action("quote", quote["id"], "approve", {"comment": "同意"})
    assert outcome["message"].text("en") == f"Quote {quote['code']} has been approved."
    comments = [(h["new_value"], h["user_id"]) for h in crm.system.history("quote", quote["id"])
                if h["field"] == "approval_comment"]
    assert comments[:2] == [('"同意"', crm.id("manager")), (None, crm.id("sales1"))]  # the submit cleared the old one
    assert ('"折扣太大"', crm.id("manager")) in comments
    with pytest.raises(ValidationFailed) as caught:  # sending needs a validity date
        sales1.run_action("quote", quote["id"], "send", {})
    assert "valid_until" in caught.value.errors
    sales1.run_action("quote", quote["id"], "send", {"valid_until": "2030-12-31"})
    sales1.run_action("quote", quote["id"], "accept")
    done = sales1.run_action("quote", quote["id"], "create_order")
    order_id = done["open"][1]
    order = crm.get("order", order_id)
    assert done["message"].text("en") == f"Order {order['code']} created from quote {quote['code']}."
    assert [w.text("en") for w in done["warnings"]] == [
        "The quote's overall discount (100.00) is not an order line: adjust the order if needed."]
    assert (order["customer"], order["quote"], order["owner"], order["payment_terms"], str(order["total"])) == \
        (quote["customer"], quote["id"], crm.id("sales1"), "预付30%", "2700.00")
    lines = crm.find("order_line", f"order eq {order_id}", sort=["id"])
    assert [(str(line["quantity"]), str(line["line_amount"])) for line in lines] == \
        [("1.0000", "900.00"), ("2.0000", "1800.00")]
    assert crm.get("quote", quote["id"])["created_order"] == order_id
    customer = crm.get("customer", quote["customer"])
    assert customer["customer_type"] == "transacting" and customer["last_deal_at"] is not None
    # one order per quote: the action no longer applies, and even without the link it is refused
    with pytest.raises(ValidationFailed):
        sales1.run_action("quote", quote["id"], "create_order")
    backdate(crm, "quote", quote["id"], created_order=None)
    with pytest.raises(ValidationFailed) as caught:
        sales1.run_action("quote", quote["id"], "create_order")
    assert caught.value.errors[""][0].text("en") == f"Quote {quote['code']} already has an order ({order['code']})."


def test_who_may_approve(crm: CRM) -> None:
    own = quote_for(crm, "manager")
    crm.as_("manager").run_action("quote", own["id"], "submit")
    with pytest.raises(ValidationFailed):  # nobody approves their own quote
        crm.as_("manager").run_action("quote", own["id"], "approve", {})
    crm.as_("admin").run_action("quote", own["id"], "approve", {})  # the administrator may
    team = quote_for(crm, "east1")
    crm.as_("east1").run_action("quote", team["id"], "submit")
    crm.as_("manager").share("quote", team["id"], crm.id("sales1"), "edit")
    with pytest.raises(ValidationFailed) as caught:  # an edit share does not make a salesperson an approver
        crm.as_("sales1").run_action("quote", team["id"], "approve", {})
    assert "Only a sales manager" in caught.value.errors[""][0].text("en")
    crm.as_("manager").run_action("quote", team["id"], "approve", {})  # a sub-department's quote
    assert crm.get("quote", team["id"])["status"] == "approved"
    for name in ("service1", "marketing1", "sales2"):
        with pytest.raises(NotFound):
            crm.as_(name).run_action("quote", team["id"], "send", {"valid_until": "2030-01-01"})


# -- 9. share, transfer and the recycle bin ---------------------------------------------------------------

def test_sharing_read_or_edit_and_who_may_share(crm: CRM) -> None:
    mine = crm.as_("sales1").create("customer", {"name": "共享测试客户"})
    sales2 = crm.as_("sales2")
    crm.as_("sales1").share("customer", mine["id"], crm.id("sales2"), "read")
    assert sales2.get("customer", mine["id"])["name"] == "共享测试客户"
    with pytest.raises(Forbidden):
        sales2.update("customer", mine["id"], {"remarks": "x"}, mine["version"])
    crm.as_("sales1").share("customer", mine["id"], crm.id("sales2"), "edit")
    sales2.update("customer", mine["id"], {"remarks": "x"}, mine["version"])
    with pytest.raises(Forbidden):  # a share is not ownership: sales2 may not share it further
        sales2.share("customer", mine["id"], crm.id("east1"), "read")
    theirs = crm.customer("别人的", "sales2")
    with pytest.raises(NotFound):
        crm.as_("sales1").share("customer", theirs["id"], crm.id("east1"), "read")
    with pytest.raises(Forbidden):  # marketing reads every customer but shares none
        crm.as_("marketing1").share("customer", mine["id"], crm.id("east1"), "read")
    crm.as_("manager").share("customer", mine["id"], crm.id("boss2"), "read")  # the manager shares the team's
    contact = crm.as_("sales1").create("contact", {"customer": mine["id"], "name": "联系人"})
    crm.as_("sales1").share("contact", contact["id"], crm.id("sales2"), "read")  # and salespeople their contacts
    assert sales2.get("contact", contact["id"])["name"] == "联系人"


def test_transfer_moves_contacts_and_open_deals_and_access(crm: CRM) -> None:
    customer = crm.as_("sales1").create("customer", {"name": "转移测试客户"})
    contact = crm.as_("sales1").create("contact", {"customer": customer["id"], "name": "采购"})
    open_deal = crm.as_("sales1").create("opportunity", {"customer": customer["id"], "name": "在谈"})
    won = crm.as_("sales1").create("opportunity", {"customer": customer["id"], "name": "已赢", "amount": "1",
                                                   "stage": "won"})
    with pytest.raises(Forbidden):  # salespeople do not transfer
        crm.as_("sales1").update("customer", customer["id"], {"owner": crm.id("east1")},
                                 crm.get("customer", customer["id"])["version"])
    record = crm.get("customer", customer["id"])
    moved = crm.as_("manager").update("customer", customer["id"], {"owner": crm.id("east1")}, record["version"])
    assert (moved["owner"], moved["previous_owner"]) == (crm.id("east1"), crm.id("sales1"))
    assert crm.get("contact", contact["id"])["owner"] == crm.id("east1")
    assert crm.get("opportunity", open_deal["id"])["owner"] == crm.id("east1")
    assert crm.get("opportunity", won["id"])["owner"] == crm.id("sales1")
    with pytest.raises(NotFound):  # access moved with the customer
        crm.as_("sales1").get("customer", customer["id"])
    assert crm.as_("east1").get("contact", contact["id"])
    history = [h for h in crm.system.history("contact", contact["id"]) if h["field"] == "owner"]
    assert history[0]["user_id"] == crm.id("manager")
    with pytest.raises((Forbidden, NotFound)):  # not to someone outside the manager's team
        crm.as_("manager").update("customer", customer["id"], {"owner": crm.id("sales2")}, moved["version"])
    # released and claimed: the new owner gets the contacts and the open deal
    crm.as_("east1").run_action("customer", customer["id"], "to_pool", {})
    crm.as_("sales2").run_action("customer", customer["id"], "claim")
    assert crm.get("contact", contact["id"])["owner"] == crm.id("sales2")
    assert crm.get("opportunity", open_deal["id"])["owner"] == crm.id("sales2")


def test_recycle_bin_rules(crm: CRM) -> None:
    sales1 = crm.as_("sales1")
    customer = sales1.create("customer", {"name": "要删除的客户"})
    sales1.delete("customer", customer["id"])  # into the bin
    assert crm.system.get("customer", customer["id"], include_deleted=True)["deleted_at"] is not None
    for method in ("restore", "purge"):
        with pytest.raises((Forbidden, NotFound)):
            getattr(sales1, method)("customer", customer["id"])
    with pytest.raises(NotFound):  # another team's manager
        crm.as_("boss2").restore("customer", customer["id"])
    crm.as_("manager").restore("customer", customer["id"])
    assert crm.get("customer", customer["id"])["deleted_at"] is None
    sales1.delete("customer", customer["id"])
    crm.as_("manager").purge("customer", customer["id"])
    with pytest.raises(NotFound):
        crm.system.get("customer", customer["id"], include_deleted=True)
    other = crm.customer("别人的", "sales2")
    with pytest.raises(NotFound):
        sales1.delete("customer", other["id"])
    crm.system.delete("customer", other["id"])
    crm.as_("admin").restore("customer", other["id"])
    for name in ("marketing1", "service1"):
        with pytest.raises(Forbidden):
            crm.as_(name).delete("customer", other["id"])


@pytest.mark.parametrize(("role", "entity", "action", "scope"), [
    ("salesperson", "customer", "delete", "own"), ("salesperson", "customer", "restore", "none"),
    ("salesperson", "customer", "purge", "none"), ("salesperson", "customer", "assign", "none"),
    ("salesperson", "customer", "share", "own"), ("salesperson", "contact", "share", "own"),
    ("sales_manager", "customer", "restore", "subtree"), ("sales_manager", "customer", "purge", "subtree"),
    ("sales_manager", "customer", "assign", "subtree"), ("sales_manager", "customer", "share", "subtree"),
    ("admin", "customer", "purge", "all"), ("marketing", "customer", "share", "none"),
    ("service_agent", "service_request", "assign", "all"),
])
def test_role_scopes(crm: CRM, role: str, entity: str, action: str, scope: str) -> None:
    assert crm.runtime.registry.roles[role].scope(entity, action) == scope
