"""Demo data of the field_service pack (`crm demo --pack field_service`).

The standard demo's company sells and services industrial automation equipment; this adds its
after-sales side: a dispatcher and three field engineers (East, North, South China), the
equipment installed at the salespeople's customers (low-voltage cabinets with the drives and
PLCs mounted in them, each with its component tree), maintenance plans, a year of completed work
orders with spare parts, hours and the customer's sign-off, and today's open work: the dispatch
queue, visits booked for today, work waiting for parts, overdue and completed-but-unsigned work
orders. The maintenance job then raises the plans' due work orders, and the warnings job puts
warranty and service reminders on the salespeople's activities.

Records go through `demo.create`, so the pack's hooks fill what they always fill (regions, owners,
warranty ends, statuses, totals). Everything depends on `demo.rng` and dates are relative to
`demo.today`, so there is always something due today.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from engine.plugins import JobContext
from engine.runtime.query import ListQuery

# (username, name, roles, department code, position, region, skills)
PEOPLE = (
    ("dispatcher1", "赵敏", ("dispatcher",), "SVC", "服务调度员", None, ()),
    ("engineer1", "周强", ("field_engineer",), "FSE", "高级现场工程师", "east",
     ("electrical", "power_distribution", "plc_programming", "servo_drives")),
    ("engineer2", "吴磊", ("field_engineer",), "FSE", "现场工程师", "north",
     ("electrical", "mechanical", "hydraulics_pneumatics", "power_distribution")),
    ("engineer3", "郑浩", ("field_engineer",), "FSE", "现场工程师", "south",
     ("plc_programming", "industrial_network", "software_systems", "servo_drives")),
)
ENGINEER_REGIONS = {"east": "engineer1", "north": "engineer2", "northeast": "engineer2", "south": "engineer3",
                    "central": "engineer3", "southwest": "engineer3", "northwest": "engineer2"}

# Products the equipment and parts refer to (the standard demo's catalogue; made here if missing):
# code -> (name, specification, unit, category, price)
CATALOGUE = {
    "P-1002": ("工业交换机", "IS-8G 8口千兆", "unit", "finished_goods", "2150"),
    "P-1003": ("PLC控制器", "PC-1200 24点", "unit", "finished_goods", "3680"),
    "P-1004": ("触摸屏", "HMI-7 7英寸", "unit", "finished_goods", "1560"),
    "P-1005": ("变频器", "VF-55 5.5kW", "unit", "finished_goods", "2980"),
    "P-1006": ("伺服电机", "SM-750 750W", "unit", "finished_goods", "2450"),
    "P-1007": ("伺服驱动器", "SD-750 750W", "unit", "finished_goods", "1980"),
    "P-1008": ("光电传感器", "PS-30 漫反射", "pcs", "merchandise", "86"),
    "P-1009": ("接近开关", "PX-M12 NPN", "pcs", "merchandise", "45"),
    "P-1010": ("控制电缆", "RVV 3×1.5", "meter", "raw_material", "6.80"),
    "P-1011": ("低压配电柜", "PB-800 定制", "set", "finished_goods", "18500"),
    "P-1012": ("数据采集网关", "DG-100", "unit", "finished_goods", "3200"),
    "P-4001": ("电源模块", "PW-24V 10A", "pcs", "spare_part", "320"),
    "P-4002": ("散热风扇组件", "FN-80", "pcs", "spare_part", "65"),
}

# Equipment: product code -> (serial prefix, skill, components). A component is (name, product
# code or None, quantity, sub-components).
Component = tuple[str, str | None, int, tuple[Any, ...]]
MACHINES: dict[str, tuple[str, str, tuple[Component, ...]]] = {
    "P-1011": ("PB800", "power_distribution", (
        ("主断路器 NM1-400", None, 1, ()),
        ("交流接触器 CJX2-25", None, 6, ()),
        ("柜体散热单元", None, 1, (("散热风扇组件", "P-4002", 2, ()),)),
        ("控制电源", "P-4001", 1, ()),
        ("浪涌保护器", None, 1, ()),
    )),
    "P-1003": ("PC12", "plc_programming", (
        ("PLC机架", None, 1, (("CPU模块 PC-1200", None, 1, ()), ("电源模块", "P-4001", 1, ()),
                              ("数字量输入模块 DI16", None, 2, ()), ("通讯模块 CM-485", None, 1, ()))),
    )),
    "P-1005": ("VF55", "servo_drives", (
        ("功率模块 IGBT", None, 1, ()),
        ("主控板", None, 1, ()),
        ("散热风扇组件", "P-4002", 1, ()),
    )),
    "P-1007": ("SD75", "servo_drives", (("编码器接口板", None, 1, ()), ("散热风扇组件", "P-4002", 1, ()))),
    "P-1006": ("SM75", "mechanical", (("编码器", None, 1, ()), ("制动器", None, 1, ()))),
    "P-1004": ("HMI7", "plc_programming", (("触摸面板", None, 1, ()), ("背光模组", None, 1, ()))),
    "P-1012": ("DG10", "industrial_network", (("4G通讯模组", None, 1, ()), ("电源模块", "P-4001", 1, ()))),
    "P-1002": ("IS8G", "industrial_network", (("电源适配器", None, 1, ()),)),
}
MOUNTED = ("P-1003", "P-1005", "P-1007", "P-1004")  # what goes into a low-voltage cabinet
STANDALONE = ("P-1003", "P-1005", "P-1006", "P-1012", "P-1002", "P-1004")
LOCATIONS = ("一号车间A线", "二号车间B线", "三号车间装配线", "动力车间配电室", "包装车间", "注塑车间", "中控室", "涂装线",
             "机加工车间", "仓储物流中心")
CHECKLISTS = {
    "P-1011": "1. 紧固母排及接线端子\n2. 检查断路器、接触器触点\n3. 清理柜内积尘，检查散热风扇\n4. 红外测温并记录\n5. 检查接地及防雷装置",
    "P-1003": "1. 检查PLC运行及报警记录\n2. 备份程序\n3. 检查电源模块输出电压\n4. 检查I/O及通讯接线\n5. 清洁模块散热孔",
    "P-1005": "1. 清理散热器及风扇\n2. 检查直流母线电容\n3. 测量输出电流及温升\n4. 检查参数设置并备份",
}
DEFAULT_CHECKLIST = "1. 外观及运行状态检查\n2. 清洁\n3. 紧固接线\n4. 功能测试并记录"

# Faults: (subject, problem type, product codes it happens on, parts used, cause, resolution)
FAULTS = (
    ("变频器报过流故障 OC", "hardware_fault", ("P-1005",), (("P-4002", 1),), "散热风扇损坏导致模块过热。",
     "更换散热风扇组件，清理风道，带载运行2小时正常。"),
    ("PLC通讯中断，产线停机", "hardware_fault", ("P-1003",), (("P-4001", 1),), "电源模块输出电压不稳。",
     "更换电源模块，恢复通讯，程序备份留档。"),
    ("触摸屏黑屏无显示", "hardware_fault", ("P-1004",), (), "背光模组老化。", "更换背光模组，显示恢复正常。"),
    ("配电柜频繁跳闸", "quality", ("P-1011",), (("P-1010", 20),), "出线电缆绝缘破损，对地漏电。",
     "更换破损电缆段并做绝缘测试，连续运行无跳闸。"),
    ("伺服电机运行异响", "hardware_fault", ("P-1006", "P-1007"), (), "联轴器松动。", "重新校正并紧固联轴器，异响消除。"),
    ("网关数据上传中断", "software_fault", ("P-1012", "P-1002"), (), "现场网络IP冲突。", "重新规划IP并修改网关配置，数据恢复上传。"),
    ("检测工位传感器误动作", "quality", ("P-1003", "P-1011"), (("P-1008", 2), ("P-1009", 2)), "传感器安装位置偏移、表面油污。",
     "更换光电传感器和接近开关，重新调整安装位置。"),
)
SIGNATORIES = ("设备科 王工", "生产部 李主任", "设备主管 陈工", "车间主任 刘师傅", "动力部 张工", "厂长助理 杨经理")


def generate(demo: Any) -> None:
    builder = FieldServiceDemo(demo)
    builder.people()
    builder.equipment()
    builder.history()
    builder.open_work()
    builder.run_jobs()


class FieldServiceDemo:
    def __init__(self, demo: Any) -> None:
        self.demo, self.rng, self.today = demo, demo.rng, demo.today
        self.users: dict[str, int] = {}
        self.products: dict[str, int] = {}
        self.machines: list[dict[str, Any]] = []  # the top-level assets and those in cabinets
        self.serial = 0

    # -- people ---------------------------------------------------------------------------------------
    def people(self) -> None:
        demo = self.demo
        service = demo.ids("department", "code eq SVC", limit=1)
        if not demo.ids("department", "code eq FSE", limit=1):
            demo.create("department", {"name": "现场服务组", "code": "FSE", "parent": service[0] if service else None})
        for username, name, roles, department, position, region, skills in PEOPLE:
            user_id = demo.user(username, name, roles, department=department, position=position)
            self.users[username] = user_id
            employee = demo.records.query("employee", query([f"user eq {user_id}"])).rows
            if employee and roles == ("field_engineer",):
                row = employee[0]
                demo.records.update("employee", row["id"], {
                    "field_engineer": True, "service_region": region, "skills": list(skills),
                    "mobile": f"139{self.rng.randint(10000000, 99999999)}",
                    "certificates": "低压电工作业证、登高作业证"}, row["version"])
        for username in ("service1",):
            user_id = demo.user_id(username)
            if user_id is not None:
                self.users[username] = user_id

    # -- equipment ------------------------------------------------------------------------------------
    def product(self, code: str) -> int:
        if code not in self.products:
            found = self.demo.ids("product", f"code eq {code}", limit=1)
            if found:
                self.products[code] = found[0]
            else:
                name, spec, unit, category, price = CATALOGUE[code]
                self.products[code] = self.demo.create("product", {
                    "code": code, "name": name, "specification": spec, "unit": unit, "category": category,
                    "standard_price": Decimal(price)})["id"]
        return self.products[code]

    def next_serial(self, code: str, installed: date) -> str:
        self.serial += 1
        return f"{MACHINES[code][0]}-{installed:%y%m}-{self.serial:04d}"

    def equipment(self) -> None:
        """Equipment at about half of the salespeople's customers (60 at most): a cabinet with drives and a PLC
        in it, or one to three standalone machines, installed over the last two and a half years.
        The first few finish their warranty within the month."""
        demo, rng = self.demo, self.rng
        customers = demo.ids("customer", "in_pool eq false", "owner is_not_empty")
        chosen = [c for c in customers if rng.random() < 0.5][:60] or customers[:5]
        expiring = 4  # assets whose warranty ends within the warning period
        for index, customer_id in enumerate(chosen):
            contact = demo.records.query("contact", query([f"customer eq {customer_id}"], limit=1)).rows
            contact_id = contact[0]["id"] if contact else None
            if expiring > 0:
                installed = self.today - timedelta(days=365 - rng.randint(3, 25))
                expiring -= 1
            else:
                installed = self.today - timedelta(days=rng.randint(20, 900))
            site = {"customer": customer_id, "contact": contact_id, "location": rng.choice(LOCATIONS),
                    "install_date": installed}
            if index % 3 == 0:
                cabinet = self.asset("P-1011", site, installed)
                for code in rng.sample(MOUNTED, rng.randint(1, 3)):
                    self.asset(code, site, installed, parent=cabinet)
            else:
                for code in rng.sample(STANDALONE, rng.randint(1, 2)):
                    self.asset(code, site, installed - timedelta(days=rng.randint(0, 120)))

    def asset(self, code: str, site: dict[str, Any], installed: date, parent: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        rng = self.rng
        warranty = rng.choices(("standard", "extended", "service_contract"), (70, 15, 15))[0]
        values: dict[str, Any] = {**site, "product": self.product(code), "serial_number": self.next_serial(code, installed),
                                  "install_date": installed, "warranty_type": warranty,
                                  "status": "in_use" if installed < self.today - timedelta(days=7) else "commissioning"}
        if warranty == "extended":
            values["warranty_end"] = installed + timedelta(days=3 * 365)
        elif warranty == "service_contract":  # a contract of two years from installation, renewed since
            values["warranty_end"] = max(installed + timedelta(days=2 * 365), self.today + timedelta(days=rng.randint(150, 500)))
        if parent is not None:
            values.update(parent_asset=parent["id"], location=parent.get("location"))
        if rng.random() < 0.03:
            values["status"] = "idle"
        asset = self.demo.create("customer_asset", values)
        self.components(asset, MACHINES[code][2], installed)
        self.machines.append(asset)
        if parent is None and (warranty == "service_contract" or rng.random() < 0.35):
            self.plan(asset, code)
        return asset

    def components(self, asset: dict[str, Any], parts: tuple[Component, ...], installed: date,
                   parent: int | None = None) -> None:
        for name, code, quantity, children in parts:
            component = self.demo.create("asset_component", {
                "asset": asset["id"], "parent_component": parent, "name": name,
                "product": self.product(code) if code else None, "quantity": quantity, "installed_on": installed,
                "serial_number": f"{asset['serial_number']}-{self.rng.randint(100, 999)}" if quantity == 1 else None})
            self.components(asset, children, installed, component["id"])

    def plan(self, asset: dict[str, Any], code: str) -> None:
        rng = self.rng
        interval = rng.choice((3, 3, 6, 6, 12))
        engineer = ENGINEER_REGIONS.get(asset.get("region") or "") if rng.random() < 0.5 else None
        self.demo.create("maintenance_plan", {
            "asset": asset["id"], "interval": interval, "interval_unit": "months",
            "next_due": self.today + timedelta(days=rng.randint(-10, 80)), "service_type": "maintenance",
            "required_skill": MACHINES[code][1], "checklist": CHECKLISTS.get(code, DEFAULT_CHECKLIST),
            "engineer": self.users.get(engineer) if engineer else None,
            "end_date": asset["warranty_end"] if asset.get("warranty_type") == "service_contract" else None})

    # -- work orders ----------------------------------------------------------------------------------
    def engineer_for(self, asset: dict[str, Any]) -> int | None:
        return self.users.get(ENGINEER_REGIONS.get(asset.get("region") or "", "engineer1"))

    def fault_for(self, asset: dict[str, Any]) -> tuple[Any, ...]:
        code = next((c for c, pid in self.products.items() if pid == asset["product"]), "")
        fitting = [f for f in FAULTS if code in f[2]]
        return self.rng.choice(fitting or FAULTS)

    def history(self) -> None:
        """Completed work of the past year: installations, repairs with parts and maintenance
        visits, each signed off by the customer (closed) or, recently, resolved."""
        rng = self.rng
        for asset in self.machines:
            if rng.random() > 0.45:
                continue
            for _ in range(rng.randint(1, 2)):
                days_ago = rng.randint(3, 330)
                if self.today - timedelta(days=days_ago) < asset["install_date"]:
                    continue
                kind = rng.choices(("repair", "maintenance"), (60, 40))[0]
                self.work_order(asset, kind, days_ago, "closed" if days_ago > 10 else rng.choice(("resolved", "closed")))

    def work_order(self, asset: dict[str, Any], kind: str, days_ago: int, status: str,
                   engineer: int | None = None, **extra: Any) -> dict[str, Any]:
        rng, demo = self.rng, self.demo
        engineer = engineer or self.engineer_for(asset)
        fault = self.fault_for(asset)
        started = datetime.combine(self.today - timedelta(days=days_ago), time(rng.choice((9, 10, 13, 14)), 0))
        values: dict[str, Any] = {
            "asset": asset["id"], "service_type": kind, "source": rng.choice(("phone", "phone", "wechat", "email")),
            "priority": rng.choices(("urgent", "high", "normal"), (15, 30, 55))[0], "assigned_to": engineer,
            "required_skill": MACHINES.get(self.code_of(asset), ("", "electrical"))[1],
        }
        if kind == "repair":
            values.update(subject=fault[0], problem_type=fault[1], severity=rng.choice(("critical", "major", "minor")),
                          description=f"客户来电：{fault[0]}，请尽快安排工程师上门。")
        else:
            values.update(subject=f"定期保养：{asset['name']}", problem_type="other",
                          description=CHECKLISTS.get(self.code_of(asset), DEFAULT_CHECKLIST))
        values.update(extra)
        if status in ("new",):
            values.pop("assigned_to")
            return demo.create("service_request", {**values, "status": "new"})
        order = demo.create("service_request", {**values, "status": "assigned",
                                                "scheduled_at": extra.get("scheduled_at") or started})
        if status == "assigned":
            return order
        order = demo.records.update("service_request", order["id"], {"status": "in_progress", "arrived_at": started},
                                    order["version"])
        if kind == "repair":
            for code, quantity in fault[3]:
                demo.create("work_order_part", {"service_request": order["id"], "product": self.product(code),
                                                "quantity": quantity, "new_serial": None})
        if status in ("in_progress", "waiting_parts"):
            if status == "waiting_parts":
                order = demo.records.update("service_request", order["id"], {"status": "waiting_parts"}, order["version"])
            return order
        hours = Decimal(rng.choice(("1.5", "2", "2.5", "3", "4", "6")))
        changes: dict[str, Any] = {
            "status": "resolved", "completed_at": started + timedelta(hours=float(hours) + 0.5),
            "labour_hours": hours, "travel_km": Decimal(rng.randint(8, 160)),
            "cause": fault[4] if kind == "repair" else None,
            "resolution": fault[5] if kind == "repair" else "按保养清单完成全部项目，设备运行正常，已出具保养报告。"}
        if status == "closed" or rng.random() < 0.3:
            changes.update(confirmed_by=rng.choice(SIGNATORIES),
                           confirmed_at=started + timedelta(hours=float(hours) + 1))
        order = demo.records.update("service_request", order["id"], changes, order["version"])
        if status == "closed":
            order = demo.records.update("service_request", order["id"], {
                "status": "closed", "satisfaction_score": rng.choices((5, 4, 3), (60, 30, 10))[0],
                "satisfaction_comment": rng.choice(("响应及时，处理专业。", "工程师很耐心。", "希望备件能更快到货。", None))},
                order["version"])
        return order

    def code_of(self, asset: dict[str, Any]) -> str:
        return next((c for c, pid in self.products.items() if pid == asset["product"]), "")

    def open_work(self) -> None:
        """Today's work: the dispatch queue in several regions, visits booked for today, work in
        progress or waiting for parts, overdue and completed-but-unsigned work orders."""
        rng = self.rng
        machines = [a for a in self.machines if a.get("status") != "idle"]
        rng.shuffle(machines)
        if not machines:
            return
        pick = iter(machines * 3)
        for _ in range(8):  # the queue
            asset = next(pick)
            extra: dict[str, Any] = {}
            if rng.random() < 0.25:
                extra["due_date"] = self.today - timedelta(days=rng.randint(1, 3))  # overdue already
            self.work_order(asset, "repair", 0, "new", **extra)
        today_visits = {"engineer1": (10, 14), "engineer2": (9,), "engineer3": (15,)}
        for username, hours in today_visits.items():
            for hour in hours:
                asset = next(pick)
                self.work_order(asset, "repair", 0, "assigned", engineer=self.users.get(username),
                                scheduled_at=datetime.combine(self.today, time(hour, 0)))
        for status in ("in_progress", "waiting_parts", "in_progress"):
            asset = next(pick)
            self.work_order(asset, "repair", rng.randint(1, 3), status,
                            due_date=self.today - timedelta(days=1) if status == "waiting_parts" else None)
        self.work_order(next(pick), "repair", 1, "resolved")

    # -- jobs -----------------------------------------------------------------------------------------
    def run_jobs(self) -> None:
        """The standard demo's service requests get their region; then the daily jobs run once, in
        the demo's transaction: plans raise their due work orders, owners get their reminders."""
        demo = self.demo
        for request_id in demo.ids("service_request", "region is_empty"):
            request = demo.records.get("service_request", request_id)
            demo.records.update("service_request", request_id, {}, request["version"])
        jobs = demo.runtime.hooks.jobs
        for name in ("generate_maintenance_orders", "refresh_asset_warnings"):
            if name in jobs:
                jobs[name](JobContext(name, demo.records))


def query(filters: list[str], limit: int = 50) -> ListQuery:
    return ListQuery(filters=filters, sort=["id"], limit=limit, count=False, titles=())
