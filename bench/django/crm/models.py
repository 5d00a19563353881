"""The standard CRM's tables as Django models over the engine's own tables (managed = False:
Django reads and writes them but never creates or alters them), with the pick-lists' labels as
choices. The indexes are the engine's (declared here for the record; the tables already have them)."""

from pathlib import Path

import yaml
from django.db import models

PICKLISTS = Path(__file__).resolve().parents[3] / "packs" / "standard_crm" / "picklists"


def _load():
    out = {}
    for path in PICKLISTS.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out[doc["picklist"]] = [(o["key"], o["label"]["zh"]) for o in doc.get("options", [])]
    return out


CHOICES = _load()


def choice(picklist, verbose):
    return models.CharField(verbose, max_length=64, choices=CHOICES[picklist], null=True, blank=True, db_index=True)


class CrmUser(models.Model):
    username = models.CharField(max_length=64, unique=True)
    display_name = models.CharField(max_length=100)
    is_active = models.BooleanField()

    class Meta:
        managed = False
        db_table = "crm_user"

    def __str__(self):
        return self.display_name


class Record(models.Model):
    created_at = models.DateTimeField("创建时间")
    updated_at = models.DateTimeField("修改时间")
    created_by = models.ForeignKey(CrmUser, models.DO_NOTHING, db_column="created_by", null=True, related_name="+",
                                   verbose_name="创建人")
    updated_by = models.ForeignKey(CrmUser, models.DO_NOTHING, db_column="updated_by", null=True, related_name="+",
                                   verbose_name="修改人")
    owner = models.ForeignKey(CrmUser, models.DO_NOTHING, db_column="owner", null=True, blank=True, related_name="+",
                              verbose_name="负责人")
    version = models.IntegerField(default=1)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class Customer(Record):
    name = models.CharField("客户名称", max_length=200, db_index=True)
    mnemonic = models.CharField("助记码", max_length=50, null=True, blank=True, db_index=True)
    code = models.CharField("客户编号", max_length=64, null=True, blank=True, unique=True)
    customer_type = choice("customer_type", "客户类型")
    category = choice("customer_category", "客户类别")
    source = choice("customer_source", "客户来源")
    industry = choice("industry", "所属行业")
    company_size = choice("company_size", "企业规模")
    annual_revenue = models.DecimalField("年营业额", max_digits=18, decimal_places=2, null=True, blank=True)
    parent = models.ForeignKey("self", models.DO_NOTHING, db_column="parent", null=True, blank=True,
                               related_name="branches", verbose_name="上级客户")
    country = choice("country", "国家/地区")
    province = choice("province", "省份")
    city = models.CharField("城市", max_length=50, null=True, blank=True, db_index=True)
    address = models.CharField("详细地址", max_length=300, null=True, blank=True)
    phone = models.CharField("电话", max_length=40, null=True, blank=True, db_index=True)
    fax = models.CharField("传真", max_length=40, null=True, blank=True)
    email = models.EmailField("邮箱", max_length=254, null=True, blank=True)
    website = models.URLField("网址", max_length=500, null=True, blank=True)
    maturity = choice("customer_maturity", "客户成熟度")
    status = choice("customer_status", "客户状态")
    value_grade = choice("value_grade", "价值等级")
    hot = models.BooleanField("热点客户", default=False, db_index=True)
    in_pool = models.BooleanField("在公海中", default=False, db_index=True)
    pool_reason = choice("pool_reason", "进入公海原因")
    pooled_at = models.DateTimeField("进入公海时间", null=True, blank=True)
    last_follow_up_at = models.DateTimeField("最近跟进时间", null=True, blank=True, db_index=True)
    next_follow_up_at = models.DateTimeField("下次跟进时间", null=True, blank=True, db_index=True)
    last_deal_at = models.DateTimeField("最近成交时间", null=True, blank=True, db_index=True)
    remarks = models.TextField("备注", null=True, blank=True)

    class Meta:
        managed = False
        db_table = "customer"
        verbose_name = verbose_name_plural = "客户"
        # The engine's composite indexes (ix_customer_updated_at_id, ix_customer_owner_updated_at_id,
        # ix_customer_in_pool_next_follow_up_at, ix_customer_customer_type_status), under names
        # Django accepts (30 characters at most); managed = False, so never created from here.
        indexes = [models.Index(fields=["updated_at", "id"], name="cust_updated_id"),
                   models.Index(fields=["owner", "updated_at", "id"], name="cust_owner_updated_id"),
                   models.Index(fields=["in_pool", "next_follow_up_at"], name="cust_pool_next"),
                   models.Index(fields=["customer_type", "status"], name="cust_type_status")]

    def __str__(self):
        return self.name


class Contact(Record):
    customer = models.ForeignKey(Customer, models.DO_NOTHING, db_column="customer", related_name="contacts",
                                 verbose_name="所属客户")
    name = models.CharField("姓名", max_length=50, db_index=True)
    title = models.CharField("职务", max_length=100, null=True, blank=True)
    decision_role = choice("contact_role", "采购决策角色")
    mobile = models.CharField("手机", max_length=40, null=True, blank=True, db_index=True)
    email = models.EmailField("邮箱", max_length=254, null=True, blank=True)

    class Meta:
        managed = False
        db_table = "contact"
        verbose_name = verbose_name_plural = "联系人"


class Opportunity(Record):
    name = models.CharField("商机名称", max_length=200, db_index=True)
    customer = models.ForeignKey(Customer, models.DO_NOTHING, db_column="customer", related_name="opportunities",
                                 verbose_name="客户")
    amount = models.DecimalField("预计金额", max_digits=18, decimal_places=2, null=True, blank=True)
    stage = models.CharField("销售阶段", max_length=64, db_index=True)
    expected_close_date = models.DateField("预计成交日期", null=True, blank=True, db_index=True)

    class Meta:
        managed = False
        db_table = "opportunity"
        verbose_name = verbose_name_plural = "商机"


class Activity(Record):
    subject = models.CharField("主题", max_length=200)
    activity_type = choice("activity_type", "行动类型")
    planned_start = models.DateTimeField("计划开始时间", db_index=True)
    status = choice("activity_status", "状态")
    customer = models.ForeignKey(Customer, models.DO_NOTHING, db_column="customer", null=True,
                                 related_name="activities", verbose_name="相关客户")

    class Meta:
        managed = False
        db_table = "activity"
        verbose_name = verbose_name_plural = "行动"
