"""Realistic, deterministic demo data for the standard CRM pack (`crm demo`).

A Chinese SME that sells industrial automation products: two sales departments, a marketing and a
service team, the demo users below, and customers with their contacts, follow-ups, activities,
opportunities across the pipeline, quotes, orders, service requests, leads and campaigns.

Every choice comes from one `random.Random(seed)`, drawn in a fixed order, so a seed always gives
the same records; only the dates move, because they are relative to the day it runs (so "today"
on the home page always has something in it). Pick-list and stage values are read from the
registry, and fields or entities the active packs lack are left out, so the generator keeps
working when the pack changes.

The volume entities go through `RecordService.bulk_create` in batches, which runs no per-record
hooks; the fields the pack's hooks maintain (mnemonic, duplicate-check keys, last follow-up, last
deal, pooled at, assigned at, next birthday) are therefore filled in here, consistently with the
generated records, using the pack's own helper functions where it has them (its hooks.py).
"""

from __future__ import annotations

import random
import time as clock
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pypinyin import Style, lazy_pinyin
from sqlalchemy.engine import Connection

from engine.metadata.registry import Stage
from engine.runtime import audit
from engine.runtime import users as user_accounts
from engine.runtime.actor import SYSTEM
from engine.runtime.bulk_load import deferred_indexes
from engine.runtime.hooks import _import_file
from engine.runtime.service import RecordService, Runtime

Row = dict[str, Any]
BATCH = 5000  # customers per bulk insert round; their contacts, deals etc. go in the same round
DEFER_INDEXES_FROM = 20_000  # customers; below this, building the indexes afterwards gains nothing

# -- the organisation and its users ---------------------------------------------------------------


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    roles: tuple[str, ...]
    is_admin: bool
    department: str  # department code, see DEPARTMENTS
    position: str

    @property
    def password(self) -> str:
        return f"demo-{self.username}"


# (code, name, parent code, head: a demo user name or an employee without login from STAFF)
DEPARTMENTS = (
    ("HQ", "总经办", None, "ceo"),
    ("SALES-E", "华东销售部", "HQ", "manager"),
    ("SALES-N", "华北销售部", "HQ", "north_head"),
    ("MKT", "市场部", "HQ", "marketing1"),
    ("SVC", "客户服务部", "HQ", "service1"),
)

DEMO_USERS = (
    DemoUser("admin", "系统管理员", ("admin",), True, "HQ", "IT主管"),
    DemoUser("manager", "王建国", ("sales_manager",), False, "SALES-E", "华东区销售经理"),
    DemoUser("sales1", "李明", ("salesperson",), False, "SALES-E", "销售代表"),
    DemoUser("sales2", "张伟", ("salesperson",), False, "SALES-N", "销售代表"),
    DemoUser("marketing1", "陈静", ("marketing",), False, "MKT", "市场专员"),
    DemoUser("service1", "刘洋", ("service_agent",), False, "SVC", "客服工程师"),
)

# Employees without a login: (key, name, department code, position)
STAFF = (("ceo", "吴志强", "HQ", "总经理"), ("north_head", "孙丽", "SALES-N", "华北区销售经理"))
MANAGERS = {"admin": "ceo", "manager": "ceo", "north_head": "ceo", "sales1": "manager", "sales2": "north_head",
            "marketing1": "ceo", "service1": "ceo"}  # employee key -> superior's key
REGIONS = {"SALES-E": "east", "SALES-N": "north"}  # sales_region keys; also where customers are
USER_REGIONS = {u.username: REGIONS[u.department] for u in DEMO_USERS if u.department in REGIONS}

# Who owns the customers: None is the customer pool (公海).
OWNERS = (("sales1", 38), ("sales2", 32), ("manager", 20), (None, 10))
SALESPEOPLE = ("sales1", "sales2", "manager")
TODAY_ITEMS = 3  # customers per salesperson with a follow-up and a call due today

# -- names, places and phone numbers --------------------------------------------------------------

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严")
MALE_GIVEN = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆旭宁龙峰毅振海志国建文斌亮晨东"
FEMALE_GIVEN = "芳娜敏静丽艳娟霞秀婷雪琳玲洁颖倩慧梅燕丹萍红晶欣怡佳悦蕾薇琴云莉月岚"

# (city, province pick-list key, telephone area code, sales region)
CITIES = (
    ("上海", "shanghai", "021", "east"), ("苏州", "jiangsu", "0512", "east"),
    ("南京", "jiangsu", "025", "east"), ("无锡", "jiangsu", "0510", "east"),
    ("常州", "jiangsu", "0519", "east"), ("杭州", "zhejiang", "0571", "east"),
    ("宁波", "zhejiang", "0574", "east"), ("温州", "zhejiang", "0577", "east"),
    ("合肥", "anhui", "0551", "east"), ("济南", "shandong", "0531", "east"),
    ("青岛", "shandong", "0532", "east"), ("福州", "fujian", "0591", "east"),
    ("厦门", "fujian", "0592", "east"), ("南昌", "jiangxi", "0791", "east"),
    ("北京", "beijing", "010", "north"), ("天津", "tianjin", "022", "north"),
    ("石家庄", "hebei", "0311", "north"), ("唐山", "hebei", "0315", "north"),
    ("保定", "hebei", "0312", "north"), ("太原", "shanxi", "0351", "north"),
    ("呼和浩特", "inner_mongolia", "0471", "north"),
    ("广州", "guangdong", "020", "south"), ("深圳", "guangdong", "0755", "south"),
    ("东莞", "guangdong", "0769", "south"), ("佛山", "guangdong", "0757", "south"),
    ("武汉", "hubei", "027", "central"), ("长沙", "hunan", "0731", "central"),
    ("郑州", "henan", "0371", "central"), ("成都", "sichuan", "028", "west"),
    ("重庆", "chongqing", "023", "west"), ("西安", "shaanxi", "029", "west"),
    ("沈阳", "liaoning", "024", "north"), ("大连", "liaoning", "0411", "north"),
)
DISTRICTS = ("高新区", "经济技术开发区", "工业园区", "新区", "滨江区", "城东区", "城西区", "开发区")
ROADS = ("人民路", "解放路", "中山路", "建设路", "长江路", "黄河路", "科技路", "创业大道", "工业大道",
         "新华路", "和平路", "文化路", "光明路", "学府路", "金桥路", "兴业路", "振兴路", "环城路")
MOBILE_PREFIXES = ("135", "136", "137", "138", "139", "150", "151", "152", "158", "159", "186", "187",
                   "188", "189", "177", "180", "181", "133", "153", "199")

BRANDS = ("华信", "宏达", "恒通", "鑫源", "瑞丰", "中天", "金桥", "东方", "永盛", "博远", "天成", "嘉禾",
          "盛世", "联创", "海纳", "卓越", "凯达", "晨光", "远航", "明德", "启航", "蓝海", "云帆", "锦程",
          "安泰", "德胜", "华美", "百川", "精诚", "鼎盛", "万通", "新锐", "中科", "汇通", "利达", "宏远",
          "天瑞", "同创", "众合", "骏马", "正源", "恒信", "信达", "华瑞", "金鼎", "三禾", "开元", "宝润",
          "鸿运", "伟业", "和谐", "兴隆", "尚品", "优派", "诺德", "爱科", "威宁", "泰和", "润华", "长青")
# The kind of business in the name, with the industry pick-list key it implies.
TRADES = (
    ("机械", "machinery"), ("精密机械", "machinery"), ("重工", "machinery"), ("电子", "electronics"),
    ("电气", "electronics"), ("自动化", "electronics"), ("科技", "it_software"), ("信息技术", "it_software"),
    ("软件", "it_software"), ("网络科技", "internet"), ("电子商务", "internet"), ("汽车零部件", "automotive"),
    ("汽车配件", "automotive"), ("化工", "chemicals"), ("新材料", "chemicals"), ("纺织", "textile_apparel"),
    ("服饰", "textile_apparel"), ("食品", "food_beverage"), ("饮料", "food_beverage"),
    ("医疗器械", "pharma_medical"), ("生物医药", "pharma_medical"), ("建材", "construction"),
    ("建设工程", "construction"), ("置业", "real_estate"), ("通信", "telecom"), ("贸易", "wholesale_trade"),
    ("商贸", "wholesale_trade"), ("进出口", "wholesale_trade"), ("商业连锁", "retail"), ("物流", "logistics"),
    ("供应链", "logistics"), ("新能源", "energy"), ("环保科技", "energy"), ("农业科技", "agriculture"),
    ("教育科技", "education"), ("餐饮管理", "hospitality"), ("企业管理咨询", "professional_services"),
    ("制造", "manufacturing"), ("实业", "manufacturing"), ("包装制品", "manufacturing"),
)
SUFFIXES = (("有限公司", 80), ("股份有限公司", 10), ("有限责任公司", 6), ("集团有限公司", 4))

# Contacts: (job title, department, decision role, influence)
TITLES = (
    ("总经理", "总经办", "decision_maker", "high"), ("副总经理", "总经办", "decision_maker", "high"),
    ("采购经理", "采购部", "purchaser", "medium"), ("采购专员", "采购部", "purchaser", "low"),
    ("技术总监", "技术部", "technical_evaluator", "high"), ("设备工程师", "设备部", "technical_evaluator", "medium"),
    ("生产经理", "生产部", "user", "medium"), ("车间主任", "生产部", "user", "low"),
    ("财务经理", "财务部", "finance", "medium"), ("IT主管", "信息部", "influencer", "medium"),
    ("行政助理", "行政部", "gatekeeper", "low"), ("项目经理", "工程部", "coach", "medium"),
)

# -- what the demo company sells ------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    specification: str
    unit: str  # product_unit key
    category: str  # product_category key
    price: Decimal


def _product(code: str, name: str, spec: str, unit: str, category: str, price: str) -> Product:
    return Product(code, name, spec, unit, category, Decimal(price))


PRODUCTS = (
    _product("P-1001", "工业路由器", "IR-200 双卡4G", "unit", "finished_goods", "1280"),
    _product("P-1002", "工业交换机", "IS-8G 8口千兆", "unit", "finished_goods", "2150"),
    _product("P-1003", "PLC控制器", "PC-1200 24点", "unit", "finished_goods", "3680"),
    _product("P-1004", "触摸屏", "HMI-7 7英寸", "unit", "finished_goods", "1560"),
    _product("P-1005", "变频器", "VF-55 5.5kW", "unit", "finished_goods", "2980"),
    _product("P-1006", "伺服电机", "SM-750 750W", "unit", "finished_goods", "2450"),
    _product("P-1007", "伺服驱动器", "SD-750 750W", "unit", "finished_goods", "1980"),
    _product("P-1008", "光电传感器", "PS-30 漫反射", "pcs", "merchandise", "86"),
    _product("P-1009", "接近开关", "PX-M12 NPN", "pcs", "merchandise", "45"),
    _product("P-1010", "控制电缆", "RVV 3×1.5", "meter", "raw_material", "6.80"),
    _product("P-1011", "低压配电柜", "PB-800 定制", "set", "finished_goods", "18500"),
    _product("P-1012", "数据采集网关", "DG-100", "unit", "finished_goods", "3200"),
    _product("P-2001", "设备管理系统", "标准版 10用户", "license", "software", "38000"),
    _product("P-2002", "MES制造执行系统", "企业版", "license", "software", "168000"),
    _product("P-2003", "移动巡检App", "年度订阅", "year", "software", "12000"),
    _product("P-3001", "安装调试服务", "工程师现场", "day", "service", "1500"),
    _product("P-3002", "年度维保服务", "标准服务包", "year", "service", "8800"),
    _product("P-3003", "操作培训", "现场培训", "day", "service", "3000"),
    _product("P-4001", "电源模块", "PW-24V 10A", "pcs", "spare_part", "320"),
    _product("P-4002", "散热风扇组件", "FN-80", "pcs", "spare_part", "65"),
)

# Opportunity kinds: (name, product codes its quote draws from)
DEALS = (
    ("产线自动化改造项目", ("P-1003", "P-1004", "P-1005", "P-1006", "P-1007", "P-3001")),
    ("设备联网与数据采集项目", ("P-1001", "P-1002", "P-1012", "P-2001")),
    ("MES系统实施项目", ("P-2002", "P-3001", "P-3003")),
    ("年度备品备件采购", ("P-1008", "P-1009", "P-4001", "P-4002", "P-1010")),
    ("新厂房配电工程", ("P-1011", "P-1010", "P-3001")),
    ("设备维保服务续约", ("P-3002",)),
    ("移动巡检系统采购", ("P-2003", "P-1001")),
    ("传感器批量采购", ("P-1008", "P-1009")),
)

COMPETITORS = (
    ("苏州智控自动化有限公司", "PLC、变频器", "价格低，本地服务快", "产品线窄，软件能力弱"),
    ("深圳创为工控科技有限公司", "触摸屏、工业网关", "性价比高，交期短", "品牌知名度低"),
    ("北京华控软件股份有限公司", "MES、设备管理软件", "软件功能全，行业案例多", "实施周期长，价格高"),
    ("杭州联讯网络技术有限公司", "工业交换机、路由器", "通信产品稳定", "没有现场服务团队"),
    ("上海德工电气有限公司", "配电柜、电缆", "大型项目经验丰富", "小单不重视，响应慢"),
)

# (name, campaign_type key, stage key, start in days from today, duration in days, budget)
CAMPAIGNS = (
    ("春季新品发布会", "conference", "completed", -300, 1, 80000),
    ("工业自动化博览会参展", "field_event", "completed", -200, 4, 150000),
    ("618促销短信", "sms", "completed", -120, 7, 8000),
    ("老客户回馈邮件营销", "email", "evaluate", -45, 14, 5000),
    ("搜索引擎推广", "web", "execute", -30, 90, 60000),
    ("智能制造解决方案研讨会（北京站）", "conference", "choose_recipients", 20, 1, 40000),
    ("年终客户答谢直邮", "direct_mail", "design", 45, 10, 12000),
    ("微信公众号内容营销", "web", "plan", 60, 30, 20000),
)

# Service requests: (subject, service type, problem type, description, cause, resolution)
SERVICE_CASES = (
    ("设备无法开机", "repair", "hardware_fault", "客户反映设备通电后无法启动，指示灯不亮。", "电源模块损坏。",
     "更换电源模块，通电测试运行正常。"),
    ("触摸屏显示花屏", "repair", "hardware_fault", "触摸屏画面闪烁、花屏，触摸无响应。", "屏幕排线松动。",
     "重新插紧排线并固定，显示恢复正常。"),
    ("系统登录报错", "repair", "software_fault", "登录设备管理系统时提示数据库连接失败。", "服务器IP变更后配置未更新。",
     "远程修改连接配置，恢复正常使用。"),
    ("通讯频繁掉线", "repair", "quality", "网关与PLC通讯每天掉线数次。", "现场干扰大，屏蔽线未接地。",
     "更换屏蔽电缆并规范接地，连续观察三天未再掉线。"),
    ("新设备安装调试", "installation", "usage", "新购设备已到货，需安排工程师现场安装调试。", "",
     "完成安装调试，客户验收签字。"),
    ("申请年度保养", "maintenance", "other", "按维保合同安排年度巡检保养。", "", "完成巡检保养，出具巡检报告。"),
    ("操作人员培训", "training", "usage", "客户新招操作员，需要安排操作培训。", "", "完成两天现场培训，培训考核通过。"),
    ("发货少件", "return_exchange", "delivery", "收货时发现少一箱配件。", "仓库漏发。", "已补发，客户确认收到。"),
    ("发票信息有误", "other", "billing", "发票抬头与合同不一致，需要重开。", "开票信息录入错误。",
     "作废重开并快递寄出。"),
    ("投诉上门服务响应慢", "complaint", "service_attitude", "客户投诉报修后两天才有人联系。", "当周工程师排班不足。",
     "致歉并安排专人回访，调整排班。"),
)

FOLLOW_UPS = (  # (subject, content)
    ("电话回访", "电话沟通近期设备使用情况，客户反馈良好。"),
    ("上门拜访，介绍产品方案", "拜访客户，介绍公司产品和成功案例，客户对自动化改造有兴趣。"),
    ("微信沟通报价细节", "就报价单中的数量和折扣与客户微信沟通。"),
    ("发送产品资料", "通过邮件发送产品手册和技术参数。"),
    ("技术交流会议", "与客户技术部门交流现场工艺和改造方案。"),
    ("商务谈判", "与采购经理讨论价格、付款方式和交货期。"),
)
INTERESTS = ("交货期", "价格和付款方式", "售后服务响应", "与现有系统的兼容性", "节能效果", "成功案例")
OBJECTIONS = ("价格比竞争对手高", "预算要到下季度才批", "担心实施周期太长", "需要领导审批", "对售后服务有顾虑")
TOPICS = ("产品选型", "报价", "合同条款", "交货期", "付款方式", "技术方案", "验收安排")
PAYMENT_TERMS = ("合同签订后预付30%，发货前付清", "货到付款", "月结30天", "预付50%，验收合格后付50%")
DELIVERY_TERMS = ("合同签订后15个工作日内发货", "现货，3日内发货", "30天交货，含安装调试")
ACTIVITY_MINUTES = {"visit": 120, "meeting": 90, "call": 15, "email": 10, "wechat": 10}
ACTIVITY_SUBJECTS = {"visit": "拜访客户，沟通{}", "call": "电话跟进{}", "email": "发送{}资料", "meeting": "{}评审会议",
                     "wechat": "微信确认{}"}
REVENUE = {"micro": (1, 5), "small": (5, 30), "medium": (30, 200), "large": (200, 1000), "very_large": (1000, 5000)}
SOURCES = {"referral": 15, "website": 12, "search_engine": 10, "exhibition": 15, "cold_call": 10, "b2b_platform": 8,
           "campaign": 10, "wechat": 6, "visit": 6, "partner": 5, "existing_customer": 3}
STAGE_WEIGHTS = {"initial_contact": 20, "needs_analysis": 18, "proposal": 16, "negotiation": 12, "won": 20, "lost": 14}

# Entities of one batch, parents before children (a row may refer to an earlier entity's row).
INSERT_ORDER = ("customer", "contact", "opportunity", "opportunity_member", "lead", "quote", "quote_line",
                "order", "order_line", "service_request", "follow_up", "activity")


@cache
def _initials(text: str) -> str:
    """Upper-case pinyin initials: 上海华信 -> SHHX (how a customer's mnemonic is written)."""
    return "".join(s[0] for s in lazy_pinyin(text, style=Style.FIRST_LETTER) if s).upper()


@cache
def _pinyin(text: str) -> str:
    return "".join(lazy_pinyin(text))


def _money(value: Decimal | float | int) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), ROUND_HALF_UP)


# -- the result -----------------------------------------------------------------------------------


@dataclass
class DemoSummary:
    seed: int
    customers: int
    counts: dict[str, int] = field(default_factory=dict)  # entity -> records created
    users: list[tuple[DemoUser, str]] = field(default_factory=list)  # (user, what happened to it)
    skipped: bool = False  # the database had customers already: nothing was generated
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


# -- generation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    """A row of the current batch that has no id yet: (entity, position in the batch)."""

    entity: str
    index: int


@dataclass(frozen=True)
class _Deal:
    ref: _Ref | None  # the opportunity
    ordered: bool  # won, with an order


class _Batch:
    """The rows of one round of bulk inserts, by entity, inserted parents first."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = runtime.registry
        self.rows: dict[str, list[Row]] = {e: [] for e in INSERT_ORDER if e in self.registry.entities}

    def add(self, entity: str, row: Row) -> _Ref | None:
        rows = self.rows.get(entity)
        if rows is None:
            return None  # the active packs have no such entity
        rows.append(row)
        return _Ref(entity, len(rows) - 1)

    def insert(self, gen: _Generator) -> None:
        ids: dict[str, list[int]] = {}
        for entity, rows in self.rows.items():
            for row in rows:
                for name, value in row.items():
                    if isinstance(value, _Ref):
                        row[name] = ids[value.entity][value.index]
            ids[entity] = gen.bulk(entity, rows)


class _Generator:
    def __init__(self, runtime: Runtime, conn: Connection, seed: int, summary: DemoSummary) -> None:
        self.runtime = runtime
        self.registry = runtime.registry
        self.conn = conn
        self.rec = runtime.records(SYSTEM, conn)
        self.rnd = random.Random(seed)
        self.today = runtime.now().date()
        self.summary = summary
        self.users: dict[str, int] = {}
        self.employees: dict[str, int] = {}
        self.departments: dict[str, int] = {}
        self.products: dict[str, tuple[int, Product]] = {}
        self.campaigns: list[int] = []  # the ones that have started: leads and deals come from them
        self.competitors: list[int] = []
        self.due_today = dict.fromkeys(SALESPEOPLE, TODAY_ITEMS)
        self._options: dict[tuple[str, str], list[str]] = {}
        self.helpers = _pack_helpers(runtime)

    def derived(self, name: str, *args: Any) -> Any:
        """What the pack's helper function `name` (in its hooks.py) computes, or None without it."""
        fn = getattr(self.helpers, name, None)
        return fn(*args) if fn is not None else None

    # -- values the registry allows -------------------------------------------------------------
    def has(self, entity: str, name: str | None = None) -> bool:
        e = self.registry.entities.get(entity)
        return e is not None and (name is None or e.has(name))

    def options(self, entity: str, name: str) -> list[str]:
        """The active option keys of a choice field ([] if the entity has no such choice field)."""
        keys = self._options.get((entity, name))
        if keys is None:
            picklist = self.registry.entities[entity].field(name).picklist if self.has(entity, name) else None
            keys = self._options[(entity, name)] = [o.key for o in picklist.options if o.active] if picklist else []
        return keys

    def pick(self, entity: str, name: str, weights: Mapping[str, int] | None = None) -> str | None:
        """A random valid option, favouring `weights`' keys (options the pack has lost are ignored)."""
        keys = self.options(entity, name)
        if not keys:
            return None
        known = [k for k in keys if weights and weights.get(k)]
        if known and weights:
            return self.rnd.choices(known, [weights[k] for k in known])[0]
        return self.rnd.choice(keys)

    def option(self, entity: str, name: str, key: str) -> str | None:
        """`key` if the field still offers it, else a random valid option."""
        return key if key in self.options(entity, name) else self.pick(entity, name)

    def stages(self, entity: str, name: str) -> tuple[Stage, ...]:
        return self.registry.entities[entity].field(name).stages if self.has(entity, name) else ()

    def stage(self, entity: str, name: str, *wanted: str) -> str | None:
        """The first of `wanted` the pipeline has, else its first stage."""
        keys = [s.key for s in self.stages(entity, name)]
        return next((k for k in wanted if k in keys), keys[0] if keys else None)

    def settle_stage(self, entity: str, name: str, row: Row) -> None:
        """If the row lacks a field its stage requires, fall back to the first stage it can enter."""
        stages = self.stages(entity, name)
        current = next((s for s in stages if s.key == row.get(name)), None)
        if current is None or all(row.get(r) not in (None, "") for r in current.requires):
            return
        row[name] = next((s.key for s in stages if all(row.get(r) not in (None, "") for r in s.requires)), None)

    # -- dates and small things -----------------------------------------------------------------
    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    def at(self, offset: int, hour: int | None = None, minute: int | None = None) -> datetime:
        """A datetime `offset` days from today, in office hours."""
        hour = self.rnd.randint(9, 17) if hour is None else hour
        minute = self.rnd.choice((0, 15, 30, 45)) if minute is None else minute
        return datetime.combine(self.day(offset), time(hour, minute))

    def person(self) -> tuple[str, str, str]:
        """(name, gender key, pinyin for an e-mail address)."""
        surname = self.rnd.choice(SURNAMES)
        male = self.rnd.random() < 0.6
        chars = MALE_GIVEN if male else FEMALE_GIVEN
        given = "".join(self.rnd.choice(chars) for _ in range(1 if self.rnd.random() < 0.3 else 2))
        return surname + given, "male" if male else "female", f"{_pinyin(given)}.{_pinyin(surname)}"

    def mobile(self) -> str:
        return self.rnd.choice(MOBILE_PREFIXES) + f"{self.rnd.randrange(10 ** 8):08d}"

    def landline(self, area: str) -> str:
        return f"{area}-{self.rnd.randint(2, 8)}{self.rnd.randrange(10 ** 7):07d}"

    def company(self, region: str | None = None) -> dict[str, Any]:
        """A company name and where it is: mostly in `region` when one is given."""
        cities = [c for c in CITIES if c[3] == region] if region and self.rnd.random() < 0.8 else CITIES
        city, province, area, _ = self.rnd.choice(cities)
        brand = self.rnd.choice(BRANDS)
        trade, industry = self.rnd.choice(TRADES)
        suffix = self.rnd.choices([s for s, _ in SUFFIXES], [w for _, w in SUFFIXES])[0]
        address = (f"{city}市{self.rnd.choice(DISTRICTS)}{self.rnd.choice(ROADS)}{self.rnd.randint(1, 999)}号"
                   + (f"{self.rnd.choice('ABCD')}座{self.rnd.randint(2, 28)}{self.rnd.randint(1, 20):02d}室"
                      if self.rnd.random() < 0.4 else ""))
        return {
            "name": city + brand + trade + suffix, "short": city + brand + trade, "city": city, "province": province,
            "area": area, "industry": industry, "address": address,
            "mnemonic": _initials(city) + _initials(brand) + _initials(trade) + _initials(suffix),
            "domain": f"{_pinyin(brand)}{_initials(trade).lower()}.com",
        }

    # -- writing --------------------------------------------------------------------------------
    def fit(self, entity: str, row: Mapping[str, Any]) -> Row:
        """The row without the fields the entity lacks and without empty values (so defaults apply)."""
        fields = self.registry.entities[entity].fields
        return {k: v for k, v in row.items() if k in fields and v is not None and v != ""}

    def bulk(self, entity: str, rows: Sequence[Row]) -> list[int]:
        if not rows:
            return []
        ids = self.rec.bulk_create(entity, [self.fit(entity, r) for r in rows])
        self.summary.counts[entity] = self.summary.counts.get(entity, 0) + len(ids)
        return ids

    def ensure(self, entity: str, key: str, row: Row) -> int | None:
        """The id of the live `entity` record whose `key` is row[key]; created from `row` if missing.

        Reference data (departments, products...) is looked up by its natural key, so `--force`
        adds customers without duplicating the organisation.
        """
        if not self.has(entity, key):
            return None
        table = self.runtime.table(entity)
        found = self.conn.execute(sa.select(table.c.id).where(
            table.c[key] == row[key], table.c.deleted_at.is_(None)).limit(1)).scalar()
        if found is not None:
            return int(found)
        self.summary.counts[entity] = self.summary.counts.get(entity, 0) + 1
        return int(self.rec.create(entity, self.fit(entity, row))["id"])

    def set_if_empty(self, entity: str, record_id: int | None, name: str, value: int | None) -> None:
        """Fill one field of an existing record unless someone already has (reruns keep edits)."""
        if record_id is None or value is None or not self.has(entity, name):
            return
        record = self.rec.get(entity, record_id)
        if record.get(name) is None:
            self.rec.update(entity, record_id, {name: value}, record["version"])

    # -- reference data -------------------------------------------------------------------------
    def organisation(self) -> None:
        for code, name, parent, _head in DEPARTMENTS:
            dept_id = self.ensure("department", "code", {"code": code, "name": name,
                                                         "parent": self.departments.get(parent or "")})
            if dept_id is not None:
                self.departments[code] = dept_id
        people = [(u.username, u.display_name, u.department, u.position) for u in DEMO_USERS] + list(STAFF)
        for number, (key, name, dept, position) in enumerate(people, 1):
            employee = self.ensure("employee", "employee_no", {
                "employee_no": f"E{number:04d}", "name": name, "user": self.users.get(key),
                "department": self.departments.get(dept), "position": position, "mobile": self.mobile(),
                "email": f"{key}@demo-crm.cn", "hired_on": self.day(-self.rnd.randint(200, 2500)), "active": True,
                "region": self.option("employee", "region", REGIONS[dept]) if dept in REGIONS else None,
                "owner": self.users.get(key) or self.users.get("admin"),
            })
            if employee is not None:
                self.employees[key] = employee
        # Superiors and heads point at employees, so they are linked once everyone exists.
        for key, manager in MANAGERS.items():
            self.set_if_empty("employee", self.employees.get(key), "manager", self.employees.get(manager))
        for code, _name, _parent, head in DEPARTMENTS:
            self.set_if_empty("department", self.departments.get(code), "manager", self.employees.get(head))

    def catalogue(self) -> None:
        for p in PRODUCTS:
            product = self.ensure("product", "code", {
                "code": p.code, "name": p.name, "specification": p.specification,
                "unit": self.option("product", "unit", p.unit),
                "category": self.option("product", "category", p.category),
                "standard_price": p.price, "cost_price": _money(p.price * Decimal("0.62")),
                "barcode": f"69{int(p.code[2:]) * 7919:011d}", "active": True,
                "description": f"{p.name}（{p.specification}），质保一年。",
            })
            if product is not None:
                self.products[p.code] = (product, p)
        for name, products, strengths, weaknesses in COMPETITORS:
            competitor = self.ensure("competitor", "name", {
                "name": name, "main_products": products, "strengths": strengths, "weaknesses": weaknesses})
            if competitor is not None:
                self.competitors.append(competitor)

    def marketing(self) -> None:
        for name, kind, stage, start, days, budget in CAMPAIGNS:
            row: Row = {
                "name": name, "campaign_type": self.option("campaign", "campaign_type", kind),
                "stage": self.stage("campaign", "stage", stage), "start_date": self.day(start),
                "end_date": self.day(start + days), "budget": Decimal(budget),
                "actual_cost": _money(budget * self.rnd.uniform(0.8, 1.1)) if start <= 0 else None,
                "expected_leads": budget // 400, "expected_opportunities": budget // 2000,
                "expected_revenue": Decimal(budget * 8), "target_audience": "制造业企业的设备与采购负责人",
                "description": f"{name}：向重点行业客户推广公司的自动化产品与解决方案。",
                "owner": self.users.get("marketing1"),
            }
            self.settle_stage("campaign", "stage", row)
            campaign = self.ensure("campaign", "name", row)
            if campaign is not None and start <= 0:
                self.campaigns.append(campaign)

    def targets(self) -> None:
        """Monthly sales targets of this year for each salesperson; achieved so far for past months."""
        year, this_month = self.today.year, self.today.month
        for user in DEMO_USERS:
            if user.username not in SALESPEOPLE:
                continue
            for month in range(1, 13):
                target = Decimal(self.rnd.choice((300000, 400000, 500000, 600000)))
                share = self.rnd.uniform(0.4, 1.3) if month < this_month else self.rnd.uniform(0.1, 0.6)
                self.ensure("sales_target", "name", {
                    "name": f"{year}年{month}月销售定额 - {user.display_name}",
                    "employee": self.employees.get(user.username), "year": year,
                    "period_type": self.option("sales_target", "period_type", "month"), "month": month,
                    "target_amount": target, "achieved": _money(target * Decimal(share)) if month <= this_month else 0,
                    "owner": self.users.get(user.username),
                })

    # -- customers and everything around them ---------------------------------------------------
    def customers(self, count: int, progress: Callable[[int, int], None] | None) -> None:
        names = [u for u, _ in OWNERS]
        weights = [w for _, w in OWNERS]
        batch = _Batch(self.runtime)
        for n in range(count):
            self.customer(batch, self.rnd.choices(names, weights)[0])
            if (n + 1) % BATCH == 0 or n + 1 == count:
                batch.insert(self)
                batch = _Batch(self.runtime)
                if progress:
                    progress(n + 1, count)

    def customer(self, batch: _Batch, username: str | None) -> None:
        """One customer (owned by `username`, or in the pool when None) and all its records."""
        rnd = self.rnd
        owner = self.users.get(username) if username else None
        # The records of a pool customer were made by the salesperson who had it before.
        worker = owner if owner is not None else self.users.get(rnd.choice(SALESPEOPLE))
        co = self.company(USER_REGIONS.get(username or ""))
        since = -rnd.randint(20, 365)  # the customer was acquired this many days ago
        size = self.pick("customer", "company_size", {"micro": 25, "small": 40, "medium": 25, "large": 8, "very_large": 2})
        low, high = REVENUE.get(size or "", (1, 50))  # millions of yuan
        customer: Row = {
            "name": co["name"], "mnemonic": co["mnemonic"],
            "category": self.pick("customer", "category", {"enterprise": 80, "distributor": 10, "government": 4, "education": 4}),
            "source": self.pick("customer", "source", SOURCES), "industry": self.option("customer", "industry", co["industry"]),
            "company_size": size, "annual_revenue": Decimal(rnd.randint(low * 100, high * 100) * 10000),
            "country": self.option("customer", "country", "cn"),
            "province": self.option("customer", "province", co["province"]), "city": co["city"],
            "address": co["address"], "phone": self.landline(co["area"]),
            "fax": self.landline(co["area"]) if rnd.random() < 0.3 else None,
            "email": f"{rnd.choice(('info', 'sales', 'service'))}@{co['domain']}" if rnd.random() < 0.5 else None,
            "website": f"https://www.{co['domain']}" if rnd.random() < 0.6 else None,
            "status": self.pick("customer", "status", {"active": 85, "dormant": 10, "lost": 4, "blacklisted": 1}),
            "value_grade": self.pick("customer", "value_grade", {"a": 15, "b": 45, "c": 40}),
            "customer_type": self.option("customer", "customer_type", "potential"), "hot": False,
            "in_pool": username is None, "owner": owner,
        }
        customer["name_key"] = self.derived("name_key", customer["name"])
        customer["phone_key"] = self.derived("phone_key", customer["phone"])
        customer["assigned_at"] = self.at(since, 9, 0) if owner else None
        if username is None:
            customer["pool_reason"] = self.pick("customer", "pool_reason", {
                "no_follow_up": 40, "released": 25, "no_intent": 15, "owner_left": 10, "invalid_info": 10})
            customer["pooled_at"] = self.at(rnd.randint(since, -1))
            customer["previous_owner"] = worker
        ref = batch.add("customer", customer)
        contacts = self.contacts(batch, ref, co, worker)
        contact = contacts[0][0] if contacts else None
        deal = self.deal(batch, ref, contact, customer, co["short"], worker, since) if owner and rnd.random() < 0.5 else None
        if username in self.due_today and self.due_today[username] > 0:
            # Something on the salesperson's to-do list today: a follow-up due and a call planned.
            self.due_today[username] -= 1
            due = self.at(0, 10 + 2 * self.due_today[username], 0)
            self.activity(batch, ref, contact, None, "call", due, "电话回访，确认需求", "planned", owner)
            upcoming: datetime | None = due
            if contact is not None and self.due_today[username] == 0:  # and a birthday this week
                buyer = batch.rows["contact"][contact.index]
                buyer["birthday"] = self.today.replace(year=1980)  # a leap year: 29 February exists
                buyer["next_birthday"] = self.derived("next_birthday", buyer["birthday"], self.today)
        else:
            upcoming = self.at(rnd.randint(-10, 30)) if owner else None
        self.follow_ups(batch, ref, contact, customer, upcoming, worker, since)
        self.activities(batch, ref, contact, deal, co, owner is None, worker, since)
        if (deal and deal.ordered and rnd.random() < 0.4) or rnd.random() < 0.03:
            self.service_request(batch, ref, contact, worker)
        if rnd.random() < 0.25:
            self.lead(batch)
        if owner and customer["source"] in ("website", "campaign", "exhibition", "search_engine") and rnd.random() < 0.3:
            batch.add("lead", {  # the lead this customer was converted from
                "company": co["name"], "contact_name": contacts[0][1] if contacts else None,
                "province": customer["province"], "city": co["city"], "industry": customer["industry"],
                "source_channel": self.pick("lead", "source_channel", {"web_form": 5, "email": 2, "general": 3}),
                "status": self.option("lead", "status", "converted"), "converted_customer": ref,
                "converted_contact": contact, "converted_opportunity": deal.ref if deal else None,
                "converted_at": self.at(since), "owner": owner,
            })

    def contacts(self, batch: _Batch, customer: _Ref | None, co: Mapping[str, Any],
                 owner: int | None) -> list[tuple[_Ref | None, str]]:
        """One to three contacts, the first one a buyer; returns their (reference, name)."""
        rnd = self.rnd
        made = []
        for n in range(rnd.choices((1, 2, 3), (30, 45, 25))[0]):
            title, dept, role, influence = rnd.choice(TITLES[:4] if n == 0 else TITLES)
            name, gender, pinyin = self.person()
            mobile = self.mobile()
            row: Row = {
                "customer": customer, "name": name, "gender": self.option("contact", "gender", gender),
                "title": title, "department": dept, "decision_role": self.option("contact", "decision_role", role),
                "influence": self.option("contact", "influence", influence),
                "office_phone": f"{self.landline(co['area'])}转{rnd.randint(800, 8999)}" if rnd.random() < 0.5 else None,
                "mobile": mobile, "email": f"{pinyin}@{co['domain']}" if rnd.random() < 0.6 else None,
                "im_account": mobile if rnd.random() < 0.5 else None,  # WeChat ID = mobile number, as usual
                "birthday": date(rnd.randint(1965, 1998), rnd.randint(1, 12), rnd.randint(1, 28)) if rnd.random() < 0.3 else None,
                "owner": owner,
            }
            row["next_birthday"] = self.derived("next_birthday", row["birthday"], self.today)
            made.append((batch.add("contact", row), name))
        return made

    def lines(self, products: Sequence[str]) -> tuple[list[Row], Decimal]:
        """Quote or order lines of a deal's products, and their total."""
        rnd = self.rnd
        available = [self.products[c] for c in products if c in self.products]
        lines, total = [], Decimal(0)
        for product_id, p in rnd.sample(available, min(len(available), rnd.randint(1, 3))):
            if p.category in ("software", "service"):
                quantity = rnd.randint(1, 5)
            elif p.price < 200:
                quantity = rnd.randint(2, 50) * 10
            else:
                quantity = rnd.randint(1, 30)
            discount = rnd.choice((0, 0, 0, 5, 8, 10, 15))
            lines.append({"product": product_id, "description": f"{p.name} {p.specification}",
                          "quantity": Decimal(quantity), "unit": self.option("quote_line", "unit", p.unit),
                          "unit_price": p.price, "discount_percent": Decimal(discount)})
            total += _money(quantity * p.price * (100 - discount) / 100)  # as line_amount computes it
        return lines, total

    def deal(self, batch: _Batch, customer: _Ref | None, contact: _Ref | None, row: Row, short_name: str,
             owner: int | None, since: int) -> _Deal | None:
        """An opportunity, with a quote once it is priced and an order once it is won.

        Sets the customer's maturity, type, hot flag and last deal to match.
        """
        rnd = self.rnd
        stages = self.stages("opportunity", "stage")
        if not stages:
            return None
        stage = rnd.choices(stages, [STAGE_WEIGHTS.get(s.key, 10) for s in stages])[0]
        probability = stage.probability or 0
        title, products = rnd.choice(DEALS)
        lines, amount = self.lines(products)
        closed = stage.outcome is not None
        close = rnd.randint(since, -1) if closed else rnd.randint(7, 120)
        opportunity: Row = {
            "name": short_name + title, "customer": customer, "contact": contact,
            "amount": amount or Decimal(rnd.randint(5, 200) * 1000), "stage": stage.key,
            "expected_close_date": self.day(close), "source": self.option("opportunity", "source", row["source"] or ""),
            "campaign": rnd.choice(self.campaigns) if self.campaigns and row["source"] == "campaign" else None,
            "main_competitor": rnd.choice(self.competitors) if self.competitors and rnd.random() < 0.4 else None,
            "needs": f"客户计划{title.removesuffix('项目')}，关注{rnd.choice(INTERESTS)}。",
            "next_step": None if closed else rnd.choice(("安排技术交流", "提交报价", "约见采购经理", "准备合同")),
            "owner": owner,
        }
        if stage.outcome == "lost":
            opportunity["lost_reason"] = self.pick("opportunity", "lost_reason", {
                "price": 30, "competitor": 25, "no_budget": 15, "timing": 10, "product_fit": 10})
            opportunity["lost_detail"] = rnd.choice(OBJECTIONS)
        self.settle_stage("opportunity", "stage", opportunity)
        deal = _Deal(batch.add("opportunity", opportunity), ordered=stage.outcome == "won" and bool(lines))
        row["maturity"] = self.option("customer", "maturity", _maturity(stage))
        row["hot"] = not closed and probability >= 50 and rnd.random() < 0.5
        manager = self.users.get("manager")
        if probability >= 75 and manager and owner != manager and rnd.random() < 0.5:
            batch.add("opportunity_member", {"opportunity": deal.ref, "user": manager,
                                             "role": self.option("opportunity_member", "role", "manager"), "owner": owner})
        quoted = stage.outcome == "won" or probability >= 50 or (stage.outcome == "lost" and rnd.random() < 0.5)
        if not lines or not quoted:
            return deal
        day = min(close - rnd.randint(7, 40), -1)
        status = ("accepted" if stage.outcome == "won" else "rejected" if stage.outcome == "lost"
                  else "sent" if probability >= 75 else rnd.choice(("draft", "submitted", "approved")))
        quote: Row = {
            "subject": f"{title}报价", "customer": customer, "contact": contact, "opportunity": deal.ref,
            "quote_date": self.day(day), "valid_until": self.day(day + 30), "status": self.stage("quote", "status", status),
            "payment_terms": rnd.choice(PAYMENT_TERMS), "delivery_terms": rnd.choice(DELIVERY_TERMS), "owner": owner,
        }
        self.settle_stage("quote", "status", quote)
        quote_ref = batch.add("quote", quote)
        for line in lines:
            batch.add("quote_line", {**line, "quote": quote_ref, "owner": owner})
        if deal.ordered:
            self.order(batch, row, {"customer": customer, "contact": contact, "quote": quote_ref, "owner": owner},
                       lines, amount, close)
        return deal

    def order(self, batch: _Batch, customer: Row, links: Row, lines: list[Row], total: Decimal, day: int) -> None:
        """The order of a won deal; its status follows from how long ago it was placed."""
        rnd = self.rnd
        delivery = day + rnd.randint(7, 30)
        if delivery > 0:
            status = rnd.choice(("new", "confirmed", "confirmed"))
        else:
            status = rnd.choices(("shipped", "invoiced", "paid", "closed"), (15, 20, 40, 25))[0]
        prepaid = _money(total * Decimal("0.3")) if rnd.random() < 0.4 else Decimal(0)
        order: Row = {
            **links, "order_date": self.day(day), "delivery_date": self.day(delivery),
            "status": self.stage("order", "status", status),
            "customer_po": f"PO{self.day(day):%Y%m}{rnd.randint(1, 9999):04d}" if rnd.random() < 0.4 else None,
            "amount_received": total if status in ("paid", "closed") else prepaid,
            "payment_terms": rnd.choice(PAYMENT_TERMS), "shipping_address": customer["address"],
        }
        self.settle_stage("order", "status", order)
        order_ref = batch.add("order", order)
        for line in lines:
            batch.add("order_line", {**line, "order": order_ref, "owner": links["owner"]})
        customer["customer_type"] = self.option("customer", "customer_type", "transacting")
        customer["last_deal_at"] = self.at(day)

    def follow_ups(self, batch: _Batch, customer: _Ref | None, contact: _Ref | None, row: Row,
                   upcoming: datetime | None, owner: int | None, since: int) -> None:
        """Past follow-ups, each planning the next; the customer keeps the last and the next."""
        rnd = self.rnd
        count = rnd.choices((0, 1, 2, 3, 4), (15, 30, 25, 20, 10))[0]
        times = [self.at(d) for d in sorted(rnd.sample(range(since, 0), count))]
        for n, at in enumerate(times):
            subject, content = rnd.choice(FOLLOW_UPS)
            last = n == len(times) - 1
            batch.add("follow_up", {
                "customer": customer, "contact": contact, "subject": subject, "followed_up_at": at,
                "method": self.pick("follow_up", "method", {"call": 35, "wechat": 25, "visit": 20, "email": 10, "meeting": 10}),
                "content": content, "interest_points": rnd.choice(INTERESTS) if rnd.random() < 0.5 else None,
                "objections": rnd.choice(OBJECTIONS) if rnd.random() < 0.3 else None,
                "maturity": row.get("maturity") if last else None,
                "next_follow_up_at": upcoming if last else times[n + 1],
                "next_follow_up_points": f"确认{rnd.choice(TOPICS)}" if last and upcoming else None, "owner": owner,
            })
        row["last_follow_up_at"] = times[-1] if times else None
        row["next_follow_up_at"] = upcoming
        row.setdefault("maturity", self.option("customer", "maturity", "interested" if times else "first_contact"))

    def activities(self, batch: _Batch, customer: _Ref | None, contact: _Ref | None, deal: _Deal | None,
                   co: Mapping[str, Any], pooled: bool, owner: int | None, since: int) -> None:
        """Zero to three visits, calls, meetings...: done or cancelled in the past, planned ahead."""
        rnd = self.rnd
        for _ in range(rnd.choices((0, 1, 2, 3), (25, 40, 25, 10))[0]):
            kind = self.pick("activity", "activity_type", {"call": 35, "visit": 25, "wechat": 15, "meeting": 15, "email": 10})
            past = pooled or rnd.random() < 0.7
            start = self.at(rnd.randint(since, -1) if past else rnd.randint(1, 21))
            status = rnd.choices(("done", "cancelled"), (85, 15))[0] if past else "planned"
            subject = ACTIVITY_SUBJECTS.get(kind or "", "跟进{}").format(rnd.choice(TOPICS))
            opportunity = deal.ref if deal and rnd.random() < 0.6 else None
            self.activity(batch, customer, contact, opportunity, kind, start, subject, status, owner,
                          co["address"] if kind == "visit" else None)

    def activity(self, batch: _Batch, customer: _Ref | None, contact: _Ref | None, opportunity: _Ref | None,
                 kind: str | None, start: datetime, subject: str, status: str, owner: int | None,
                 location: str | None = None) -> None:
        kind = self.option("activity", "activity_type", kind) if kind else None
        status_key = self.option("activity", "status", status)
        batch.add("activity", {
            "activity_type": kind, "subject": subject, "planned_start": start,
            "duration_minutes": ACTIVITY_MINUTES.get(kind or "", 30), "status": status_key, "location": location,
            "customer": customer, "contact": contact, "opportunity": opportunity,
            "result": {"done": "客户认可，进入下一步。", "cancelled": "客户临时有事，改期。"}.get(status_key or ""),
            "owner": owner,
        })

    def service_request(self, batch: _Batch, customer: _Ref | None, contact: _Ref | None, seller: int | None) -> None:
        """A service case, mostly logged and handled by the service agent."""
        rnd = self.rnd
        subject, kind, problem, description, cause, resolution = rnd.choice(SERVICE_CASES)
        status = self.pick("service_request", "status", {"new": 15, "assigned": 15, "in_progress": 20, "resolved": 20, "closed": 30})
        keys = [s.key for s in self.stages("service_request", "status")]
        done = "resolved" in keys and status in keys[keys.index("resolved"):]
        agent = self.users.get("service1")
        hardware = [(pid, p) for pid, p in self.products.values() if p.category == "finished_goods"]
        product = rnd.choice(hardware) if hardware and problem not in ("billing", "service_attitude") else None
        row: Row = {
            "subject": subject, "customer": customer, "contact": contact, "product": product[0] if product else None,
            "serial_number": f"SN{rnd.randrange(10 ** 8):08d}" if product else None,
            "service_type": self.option("service_request", "service_type", kind),
            "problem_type": self.option("service_request", "problem_type", problem),
            "source": self.pick("service_request", "source", {"phone": 50, "wechat": 25, "email": 10, "web": 10, "visit": 5}),
            "severity": self.pick("service_request", "severity", {"critical": 5, "major": 25, "minor": 55, "trivial": 15}),
            "priority": self.pick("service_request", "priority", {"urgent": 5, "high": 20, "normal": 60, "low": 15}),
            "assigned_to": agent if status != "new" else None, "status": status, "description": description,
            "cause": cause if done else None, "resolution": resolution if done else None,
            "resolved_at": self.at(-rnd.randint(1, 60)) if done else None,
            "service_fee": Decimal(rnd.choice((300, 500, 800))) if kind == "repair" and rnd.random() < 0.3 else None,
            "owner": seller if seller is not None and rnd.random() < 0.3 else agent,
        }
        if status == "closed":
            row["satisfaction_score"] = rnd.choices((3, 4, 5), (10, 40, 50))[0]
            row["satisfaction_comment"] = rnd.choice(("工程师很专业", "响应及时", "问题解决了，希望以后更快一些"))
        self.settle_stage("service_request", "status", row)
        batch.add("service_request", row)

    def lead(self, batch: _Batch) -> None:
        """A lead that is not a customer (yet), mostly worked by marketing."""
        rnd = self.rnd
        co = self.company()
        name, _, pinyin = self.person()
        batch.add("lead", {
            "company": co["name"], "contact_name": name, "contact_title": rnd.choice(TITLES)[0], "mobile": self.mobile(),
            "phone": self.landline(co["area"]) if rnd.random() < 0.4 else None,
            "email": f"{pinyin}@{co['domain']}" if rnd.random() < 0.4 else None,
            "province": self.option("lead", "province", co["province"]), "city": co["city"],
            "industry": self.option("lead", "industry", co["industry"]),
            "source_channel": self.pick("lead", "source_channel", {"web_form": 30, "email": 15, "sms": 10,
                                                                   "direct_mail": 5, "import": 15, "general": 25}),
            "campaign": rnd.choice(self.campaigns) if self.campaigns and rnd.random() < 0.5 else None,
            "status": self.pick("lead", "status", {"new": 30, "working": 30, "qualified": 15, "disqualified": 15}),
            "remarks": f"关注{rnd.choice(INTERESTS)}" if rnd.random() < 0.3 else None,
            "owner": self.users.get(rnd.choices(("marketing1", "sales1", "sales2"), (50, 25, 25))[0]),
        })


def _pack_helpers(runtime: Runtime) -> Any:
    """The standard pack's hooks.py (its pure functions compute what its hooks maintain), if active."""
    for pack in runtime.registry.packs:
        if pack.name == "standard_crm" and pack.hooks:
            return _import_file(f"crm_pack_hooks.{pack.name}", pack.hooks)
    return None


def _maturity(stage: Stage) -> str:
    """The customer maturity (customer_maturity key) that an opportunity in `stage` implies."""
    if stage.outcome:
        return "closed" if stage.outcome == "won" else "no_interest"
    probability = stage.probability or 0
    return ("negotiating" if probability >= 75 else "evaluating" if probability >= 50
            else "needs_confirmed" if probability >= 25 else "interested")


# -- users --------------------------------------------------------------------------------------------


def _users(runtime: Runtime, summary: DemoSummary, create: bool) -> dict[str, int]:
    """The demo users' ids, creating the missing ones when `create`; existing users are kept as they are."""
    table = runtime.table("crm_user")
    ids: dict[str, int] = {}
    for user in DEMO_USERS:
        with runtime.engine.connect() as conn:
            found = conn.execute(sa.select(table.c.id).where(table.c.username == user.username)).scalar()
        if found is not None:
            ids[user.username] = int(found)
            demo_password = user_accounts.check_password(runtime, user.username, user.password) is not None
            summary.users.append((user, "existing" if demo_password else "existing, with its own password"))
            continue
        if not create:
            continue
        created = user_accounts.create_user(
            runtime, user.username, user.password, display_name=user.display_name,
            roles=tuple(r for r in user.roles if r in runtime.registry.roles), is_admin=user.is_admin,
            email=f"{user.username}@demo-crm.cn", language="zh")
        ids[user.username] = created.id
        summary.users.append((user, "created"))
    return ids


# -- entry point ------------------------------------------------------------------------------------


def generate(runtime: Runtime, *, customers: int = 200, seed: int = 42, force: bool = False,
             progress: Callable[[int, int], None] | None = None) -> DemoSummary:
    """Create the demo users and `customers` customers with their records, in one transaction.

    Does nothing (and says so in the summary) when the database has customers already, unless
    `force`: then it adds more, reusing the users and the reference data. The database must be
    migrated.
    """
    started = clock.perf_counter()
    summary = DemoSummary(seed=seed, customers=customers)
    table = runtime.table("customer")
    with runtime.engine.connect() as conn:
        existing = conn.execute(sa.select(table.c.id).limit(1)).first() is not None
    if existing and not force:
        summary.skipped = True
        _users(runtime, summary, create=False)
        return summary
    users = _users(runtime, summary, create=True)
    # The volume tables of a fresh database get their indexes built once, after the load.
    volume = [e for e in INSERT_ORDER if e in runtime.registry.entities]
    with deferred_indexes(runtime, volume if customers >= DEFER_INDEXES_FROM else ()):
        # All records in one transaction: a failure leaves no half-made demo behind.
        with runtime.engine.begin() as conn:
            gen = _Generator(runtime, conn, seed, summary)
            gen.users = users
            gen.organisation()
            gen.catalogue()
            gen.marketing()
            if gen.has("sales_target"):
                gen.targets()
            gen.customers(customers, progress)
    summary.seconds = clock.perf_counter() - started
    return summary


# -- demo data of other packs (`crm demo --pack NAME`) ------------------------------------------------


@dataclass
class DemoContext:
    """What a pack's `demo.py` gets: `def generate(demo: DemoContext) -> None`.

    Everything it writes goes into one transaction with the marker that the pack's demo ran, so
    a failure leaves nothing behind and a second run does nothing. Records are written as the
    system through `records` (hooks run on `create`, not on `bulk`).
    """

    runtime: Runtime
    pack: str
    conn: Connection
    records: RecordService
    rng: random.Random
    today: date
    counts: dict[str, int] = field(default_factory=dict)
    users: list[DemoUser] = field(default_factory=list)

    def create(self, entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """One record, through the runtime's validation and the packs' hooks."""
        record = self.records.create(entity, dict(values))
        self.counts[entity] = self.counts.get(entity, 0) + 1
        return record

    def bulk(self, entity: str, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Many records at once (validated, no hooks); their ids in order."""
        ids = self.records.bulk_create(entity, rows) if rows else []
        self.counts[entity] = self.counts.get(entity, 0) + len(ids)
        return ids

    def ids(self, entity: str, *filters: str, limit: int | None = None) -> list[int]:
        """Ids of live records matching the filters (list filter syntax), oldest first."""
        return self.records.ids(entity, filters, limit)

    def user_id(self, username: str) -> int | None:
        table = self.runtime.table("crm_user")
        found = self.conn.execute(sa.select(table.c.id).where(table.c.username == username)).scalar()
        return int(found) if found is not None else None

    def user(self, username: str, display_name: str, roles: Sequence[str], department: str | None = None,
             position: str = "") -> int:
        """A demo user (password `demo-<username>`) with an employee record in `department` (a
        department's code or name); an existing user is kept as it is. Returns the user's id."""
        demo_user = DemoUser(username, display_name, tuple(roles), False, department or "", position)
        found = self.user_id(username)
        if found is not None:
            self.users.append(demo_user)
            return found
        user_id = user_accounts.create_user(
            self.runtime, username, demo_user.password, display_name=display_name, roles=tuple(roles),
            email=f"{username}@demo-crm.cn", language="zh", conn=self.conn).id
        self.users.append(demo_user)
        if "employee" in self.runtime.registry.entities:
            dept = []
            if department:
                dept = self.ids("department", f"code eq {department}", limit=1) or \
                    self.ids("department", f"name eq {department}", limit=1)
            self.create("employee", {"name": display_name, "user": user_id, "department": dept[0] if dept else None,
                                     "position": position or None, "email": f"{username}@demo-crm.cn",
                                     "owner": user_id, "employee_no": f"D-{username}"[:30]})
        return user_id


def pack_demo_loaded(runtime: Runtime, pack: str) -> bool:
    return any(e["detail"].get("pack") == pack for e in audit.entries(runtime, events=["demo_loaded"], limit=1000))


def generate_pack(runtime: Runtime, pack: str, *, seed: int = 42) -> DemoContext | None:
    """Run the active pack `pack`'s demo.py once per database; None when it had already run.
    Raises LookupError when the pack is not active or ships no demo.py."""
    info = next((p for p in runtime.registry.packs if p.name == pack), None)
    if info is None:
        raise LookupError(f"pack '{pack}' is not active (active: {', '.join(p.name for p in runtime.registry.packs)})")
    script = Path(info.path) / "demo.py"
    if not script.is_file():
        raise LookupError(f"pack '{pack}' ships no demo data (no {script})")
    if pack_demo_loaded(runtime, pack):
        return None
    module = _import_file(f"crm_pack_demo.{pack}", str(script))
    with runtime.engine.begin() as conn:
        demo = DemoContext(runtime, pack, conn, runtime.records(SYSTEM, conn), random.Random(seed),
                           runtime.now().date())
        module.generate(demo)
        audit.record(runtime, "demo_loaded", username="system", conn=conn,
                     detail={"pack": pack, "seed": seed, "counts": demo.counts})
    return demo
