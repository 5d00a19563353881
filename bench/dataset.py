"""The benchmark's data set: the standard CRM pack at a chosen scale, made through the runtime's
bulk path (`RecordService.bulk_create`: coercion, defaults, validation, reference checks,
autonumbers), cached per database.

Default mix per customer: 2 contacts, 3 activities, 0.5 opportunities; 50 salespeople in 5
sales departments under a head office (6 departments, as `department`/`employee` records, so
department scopes work); 10% of the customers in the pool (公海).

A data set is named by scale, seed and the generator's version, and a rerun reuses it:

    SQLite:      bench/.cache/crm-<scale>-s<seed>-g<version>.sqlite3
    PostgreSQL:  database bench_<scale>_s<seed>_g<version> on 127.0.0.1:5432

A finished build writes its counts and the hash of the schema it was built with into
`bench_dataset`; a database without them is dropped and rebuilt. When the packs or the engine's
tables have changed since (the schema hash differs), the cached data set is brought forward with
the engine's own additive migration (new columns empty, new indexes built) rather than rebuilt:
a 1M data set takes about 16 minutes to build on this machine. Its tables' secondary and search
indexes are built once after the load (`bulk_load.deferred_indexes`), not row by row.

Rows created through bulk_create all carry the same created_at/updated_at (the moment of the
batch). A real table's timestamps are spread over years, and the default list sorts by
updated_at, so after each batch the customers' timestamps are spread over two years with a
plain UPDATE (the only write that bypasses the runtime).
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from bench.common import CACHE, PASSWORD, PG_ADMIN_URL, log, scale_name
from engine.config import Config
from engine.demo import BRANDS, CITIES, DISTRICTS, ROADS, SURNAMES, TITLES, TRADES, _initials
from engine.runtime.actor import SYSTEM
from engine.runtime.bulk_load import deferred_indexes
from engine.runtime.service import Runtime

GENERATOR_VERSION = "3"  # bump when the generated rows change
BATCH = 5000  # customers per round (their contacts, activities and deals go in the same round)
SALES_DEPARTMENTS = (("S-EAST", "华东销售部"), ("S-NORTH", "华北销售部"), ("S-SOUTH", "华南销售部"),
                     ("S-WEST", "西部销售部"), ("S-CENTRAL", "华中销售部"))
SALESPEOPLE = 50
POOL_SHARE = 0.10
STAGES = (("initial_contact", 20), ("needs_analysis", 18), ("proposal", 16), ("negotiation", 12), ("won", 20),
          ("lost", 14))
GIVEN = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆旭宁龙峰毅芳娜敏静丽艳娟霞秀婷雪琳玲洁颖倩慧"


def schema_hash(runtime: Runtime) -> str:
    """A short hash of the tables and indexes the registry compiles to (and of this generator)."""
    dialect = sqlite_dialect.dialect()
    parts = [GENERATOR_VERSION]
    for table in sorted(runtime.metadata.tables.values(), key=lambda t: t.name):
        parts.append(str(CreateTable(table).compile(dialect=dialect)))
        parts += sorted(str(CreateIndex(i).compile(dialect=dialect)) for i in table.indexes)
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:8]


@dataclass
class Dataset:
    db: str  # "sqlite" or "postgresql"
    url: str
    customers: int
    seed: int
    name: str
    built_seconds: float = 0.0  # 0 when it came from the cache
    counts: dict[str, int] | None = None


def _runtime(url: str) -> Runtime:
    from engine.bootstrap import open_runtime

    return open_runtime(Config(database_url=url))


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _pg_admin(sql: str) -> None:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def _pg_exists(name: str) -> bool:
    engine = sa.create_engine(PG_ADMIN_URL)
    with engine.connect() as conn:
        found = conn.execute(sa.text("select 1 from pg_database where datname = :n"), {"n": name}).first()
    engine.dispose()
    return found is not None


def bring_forward(url: str) -> None:
    """Apply the engine's additive migration if the schema moved on since the build."""
    runtime = _runtime(url)
    plan = runtime.migrate()
    if not plan.empty:
        log(f"  schema changed since the build: {'; '.join(plan.describe())}")
    if not plan.empty or runtime.engine.dialect.name == "sqlite":
        analyze(runtime.engine)
    runtime.engine.dispose()


def _complete(url: str) -> dict[str, int] | None:
    """The counts a finished build recorded, or None when the build is missing or unfinished."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("bench_dataset"):
                return None
            rows = conn.execute(sa.text("select name, value from bench_dataset")).all()
        return {str(n): int(v) for n, v in rows if not str(n).startswith("schema:")} or None
    finally:
        engine.dispose()


def prepare(db: str, customers: int, seed: int = 42, rebuild: bool = False) -> Dataset:
    """The data set for (db, scale, seed), from the cache or built now."""
    base = f"{scale_name(customers)}-s{seed}-g{GENERATOR_VERSION}"
    CACHE.mkdir(parents=True, exist_ok=True)
    if db == "sqlite":
        path = CACHE / f"crm-{base}.sqlite3"
        url = f"sqlite:///{path}"
        name = path.name
        exists = path.exists()
    else:
        name = "bench_" + base.replace("-", "_")
        url = _pg_url(name)
        exists = _pg_exists(name)
    dataset = Dataset(db, url, customers, seed, name)
    if exists and not rebuild:
        counts = _complete(url)
        if counts is not None:
            counts.pop("seed", None)
            dataset.counts = counts
            log(f"[{db}] data set {name}: cached ({counts.get('customer', 0):,} customers)")
            bring_forward(url)
            return dataset
        log(f"[{db}] data set {name}: unfinished earlier build, rebuilding")
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            p = CACHE / f"crm-{base}.sqlite3{suffix}"
            p.unlink(missing_ok=True)
    else:
        _pg_admin(f'drop database if exists "{name}"')
        _pg_admin(f'create database "{name}"')
    started = time.perf_counter()
    dataset.counts = build(url, customers, seed)
    dataset.built_seconds = time.perf_counter() - started
    return dataset


# -- the generator --------------------------------------------------------------------------------

class Generator:
    def __init__(self, runtime: Runtime, seed: int) -> None:
        self.runtime = runtime
        self.rnd = random.Random(seed)
        self.now = runtime.now()
        self.rec = runtime.records(SYSTEM)
        self.sales: list[int] = []  # salespeople's user ids
        self.counts: dict[str, int] = {}

    def options(self, entity: str, name: str) -> list[str]:
        picklist = self.runtime.registry.entities[entity].field(name).picklist
        assert picklist is not None
        return [o.key for o in picklist.options if o.active]

    def bulk(self, entity: str, rows: list[dict[str, Any]]) -> list[int]:
        ids = self.rec.bulk_create(entity, rows)
        self.counts[entity] = self.counts.get(entity, 0) + len(ids)
        return ids

    def organisation(self) -> None:
        from engine.runtime.users import create_user

        admin = create_user(self.runtime, "admin", PASSWORD, display_name="系统管理员", roles=("admin",), is_admin=True)
        head = self.bulk("department", [{"code": "HQ", "name": "总经办"}])[0]
        departments = self.bulk("department", [{"code": c, "name": n, "parent": head} for c, n in SALES_DEPARTMENTS])
        employees = [{"employee_no": "E0000", "name": "系统管理员", "user": admin.id, "department": head}]
        for n in range(1, SALESPEOPLE + 1):
            name = self.rnd.choice(SURNAMES) + self.rnd.choice(GIVEN) + self.rnd.choice(GIVEN)
            user = create_user(self.runtime, f"sales{n:02d}", PASSWORD, display_name=name, roles=("salesperson",))
            self.sales.append(user.id)
            employees.append({"employee_no": f"E{n:04d}", "name": name, "user": user.id, "position": "销售代表",
                              "department": departments[(n - 1) % len(departments)]})
        self.bulk("employee", employees)

    def company(self) -> tuple[str, str, str]:
        """(name, mnemonic, city)"""
        rnd = self.rnd
        city = rnd.choice(CITIES)[0]
        brand = rnd.choice(BRANDS)
        trade = rnd.choice(TRADES)[0]
        suffix = rnd.choice(("有限公司", "有限公司", "有限公司", "股份有限公司", "集团有限公司"))
        return (city + brand + trade + suffix, _initials(city) + _initials(brand) + _initials(trade) + _initials(suffix),
                city)

    def round(self, count: int, choices: dict[str, list[str]]) -> None:
        rnd, now = self.rnd, self.now
        customers, owners, stamps = [], [], []
        for _ in range(count):
            name, mnemonic, city = self.company()
            pooled = rnd.random() < POOL_SHARE
            owner = None if pooled else rnd.choice(self.sales)
            created = now - timedelta(seconds=rnd.randrange(2 * 365 * 86400))
            updated = min(now, created + timedelta(seconds=rnd.randrange(180 * 86400)))
            last = updated - timedelta(days=rnd.randrange(60)) if rnd.random() < 0.8 else None
            customers.append({
                "name": name, "mnemonic": mnemonic, "city": city,
                "customer_type": rnd.choice(choices["customer_type"]), "category": rnd.choice(choices["category"]),
                "source": rnd.choice(choices["source"]), "industry": rnd.choice(choices["industry"]),
                "company_size": rnd.choice(choices["company_size"]), "province": rnd.choice(choices["province"]),
                "status": rnd.choice(choices["status"]), "value_grade": rnd.choice(choices["value_grade"]),
                "maturity": rnd.choice(choices["maturity"]), "hot": rnd.random() < 0.1,
                "annual_revenue": Decimal(rnd.randrange(10, 50000) * 10000),
                "address": f"{city}市{rnd.choice(DISTRICTS)}{rnd.choice(ROADS)}{rnd.randint(1, 999)}号",
                "phone": f"0{rnd.randint(10, 999)}-{rnd.randint(2, 8)}{rnd.randrange(10 ** 7):07d}",
                "in_pool": pooled, "pool_reason": rnd.choice(choices["pool_reason"]) if pooled else None,
                "pooled_at": updated if pooled else None,
                "last_follow_up_at": last,
                "next_follow_up_at": now + timedelta(days=rnd.randint(-10, 30)) if owner else None,
                "owner": owner,
            })
            owners.append(owner if owner is not None else rnd.choice(self.sales))  # who worked it
            stamps.append((created, updated))
        ids = self.bulk("customer", customers)
        table = self.runtime.table("customer")
        with self.runtime.engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("pk"))
                         .values(created_at=sa.bindparam("c"), updated_at=sa.bindparam("u")),
                         [{"pk": i, "c": c, "u": u} for i, (c, u) in zip(ids, stamps, strict=True)])
        contacts = []
        for customer, owner in zip(ids, owners, strict=True):
            for n in range(2):
                title = rnd.choice(TITLES[:4] if n == 0 else TITLES)[0]
                contacts.append({
                    "customer": customer, "name": rnd.choice(SURNAMES) + rnd.choice(GIVEN) + rnd.choice(GIVEN),
                    "title": title, "gender": rnd.choice(choices["gender"]),
                    "decision_role": rnd.choice(choices["decision_role"]),
                    "mobile": f"1{rnd.randint(30, 99)}{rnd.randrange(10 ** 8):08d}", "owner": owner,
                })
        contact_ids = self.bulk("contact", contacts)
        deals, deal_owner = [], []
        for n, (customer, owner) in enumerate(zip(ids, owners, strict=True)):
            if n % 2:
                continue
            stage = rnd.choices([s for s, _ in STAGES], [w for _, w in STAGES])[0]
            deals.append({"name": customers[n]["name"][:-4] + rnd.choice(("自动化改造项目", "设备采购", "MES实施", "维保续约")),
                          "customer": customer, "contact": contact_ids[2 * n], "stage": stage,
                          "amount": Decimal(rnd.randrange(5, 500) * 1000),
                          "expected_close_date": (now + timedelta(days=rnd.randint(-180, 180))).date(),
                          "lost_reason": rnd.choice(choices["lost_reason"]) if stage == "lost" else None,
                          "owner": owner})
            deal_owner.append((n, owner))
        deal_ids = self.bulk("opportunity", deals)
        deal_of = {n: d for (n, _), d in zip(deal_owner, deal_ids, strict=True)}
        activities = []
        for n, (customer, owner) in enumerate(zip(ids, owners, strict=True)):
            for k in range(3):
                start = now + timedelta(days=rnd.randint(-365, 21), hours=rnd.randint(-8, 8))
                activities.append({
                    "activity_type": rnd.choice(choices["activity_type"]), "subject": f"跟进{rnd.choice(('报价', '方案', '合同', '交货期'))}",
                    "planned_start": start, "status": "planned" if start > now else rnd.choice(("done", "done", "cancelled")),
                    "customer": customer, "contact": contact_ids[2 * n + k % 2],
                    "opportunity": deal_of.get(n) if k == 0 else None, "owner": owner,
                })
        self.bulk("activity", activities)


def build(url: str, customers: int, seed: int) -> dict[str, int]:
    runtime = _runtime(url)
    runtime.migrate()
    gen = Generator(runtime, seed)
    log(f"building {customers:,} customers into {url.rsplit('/', 1)[-1]} ...")
    started = time.perf_counter()
    gen.organisation()
    registry = runtime.registry
    choices = {name: gen.options("customer", name) for name in (
        "customer_type", "category", "source", "industry", "company_size", "province", "status", "value_grade",
        "maturity", "pool_reason")}
    choices.update({name: gen.options("contact", name) for name in ("gender", "decision_role")})
    choices["lost_reason"] = gen.options("opportunity", "lost_reason")
    choices["activity_type"] = gen.options("activity", "activity_type")
    assert "customer" in registry.entities
    done = 0
    with deferred_indexes(runtime, ("customer", "contact", "opportunity", "activity")):
        while done < customers:
            count = min(BATCH, customers - done)
            gen.round(count, choices)
            done += count
            if done % (BATCH * 20) == 0 or done == customers:
                rate = sum(gen.counts.values()) / (time.perf_counter() - started)
                log(f"  {done:,} / {customers:,} customers ({rate:,.0f} rows/s)")
        loaded = time.perf_counter()
    log(f"  indexes built in {time.perf_counter() - loaded:,.0f} s")
    with runtime.engine.begin() as conn:
        conn.execute(sa.text("create table bench_dataset (name varchar(64) primary key, value bigint not null)"))
        conn.execute(sa.text("insert into bench_dataset values (:n, :v)"),
                     [{"n": k, "v": v} for k, v in {**gen.counts, "seed": seed,
                                                    f"schema:{schema_hash(runtime)}": 1}.items()])
    analyze(runtime.engine)
    runtime.engine.dispose()
    log(f"built in {time.perf_counter() - started:,.0f} s: {gen.counts}")
    return gen.counts


def analyze(engine: sa.Engine) -> None:
    """Planner statistics as a running database has them: PostgreSQL's autovacuum gathers them
    by itself (VACUUM ANALYZE now, so plans do not depend on when autovacuum last ran); SQLite
    has none unless someone runs ANALYZE, which the engine never does, so none are kept."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("vacuum analyze"))
    else:
        with engine.begin() as conn:
            if sa.inspect(conn).has_table("sqlite_stat1"):
                conn.execute(sa.text("delete from sqlite_stat1"))


def baseline(url: str) -> dict[str, int]:
    """The highest id of each table the benchmark writes to, to undo its writes afterwards."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {t: int(conn.execute(sa.text(f"select coalesce(max(id), 0) from {t}")).scalar_one())
               for t in ("customer", "crm_history", "crm_audit")}
    engine.dispose()
    return out


def restore(url: str, marks: dict[str, int], updated: dict[int, tuple[int, Any, Any]] | None = None) -> None:
    """Undo the benchmark's own writes: rows made after `marks`, and the customers it updated
    (id -> (version, updated_at, remarks) as they were)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table, last in marks.items():
            conn.execute(sa.text(f"delete from {table} where id > :last"), {"last": last})
        if updated:
            conn.execute(sa.text("update customer set version = :v, updated_at = :u, remarks = :r, updated_by = null "
                                 "where id = :id"),
                         [{"id": i, "v": v, "u": u, "r": r} for i, (v, u, r) in updated.items()])
    engine.dispose()

