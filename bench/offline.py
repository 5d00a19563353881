"""Measurements that are not page loads: registry compile time, CSV import rate, adding a
custom field to the full customer table. Each leaves the data set as it found it."""

from __future__ import annotations

import csv
import io
import random
import statistics
import time
from typing import Any

import sqlalchemy as sa

from bench.common import ADMIN_USER
from engine.config import Config

CUSTOM_FIELD = "bench_extra_note"


def registry_ms(repeat: int = 15) -> dict[str, float]:
    """Reading, checking and compiling the standard pack into a Registry, in this process."""
    from engine.metadata import load_registry

    dirs = Config().pack_dirs()
    load_registry(dirs)  # imports and caches of the first call are not what we measure
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        load_registry(dirs)
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def csv_text(rows: int, seed: int = 7) -> str:
    """A customer import file as a user would bring it: names, phones, pick-list keys."""
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "phone", "city", "industry", "customer_type", "value_grade", "source", "address"])
    for n in range(rows):
        writer.writerow([f"导入测试{n:06d}贸易有限公司", f"0571-8{rnd.randrange(10 ** 7):07d}", "杭州",
                         rnd.choice(("machinery", "electronics", "retail", "logistics")), "potential",
                         rnd.choice(("a", "b", "c")), "exhibition", f"杭州市滨江区长河路{n % 999 + 1}号"])
    return out.getvalue()


def _as_admin(url: str) -> tuple[Any, Any, int]:
    """The runtime (migrated: the packs may have moved on during the run), a record service as
    the benchmark's administrator, and the highest customer id now (what to delete afterwards)."""
    from engine.bootstrap import open_runtime
    from engine.runtime.users import load_user

    runtime = open_runtime(Config(database_url=url))
    runtime.migrate()
    users = runtime.table("crm_user")
    with runtime.engine.connect() as conn:
        admin_id = conn.execute(sa.select(users.c.id).where(users.c.username == ADMIN_USER)).scalar_one()
        before = int(conn.execute(sa.text("select coalesce(max(id), 0) from customer")).scalar_one())
    admin = load_user(runtime, admin_id)
    assert admin is not None
    return runtime, runtime.records(admin.actor("zh")), before


def import_rate(url: str, rows: int) -> dict[str, Any]:
    """CSV import as the import screen and `crm record import` run it (`importer.import_csv`), as
    the benchmark's administrator, in one transaction: cells read as typed, the record service's
    validation and permissions, the standard pack's hooks (mnemonic; the duplicate check against
    the existing customers and within the file, by normalised name, phone and e-mail) and
    autonumbers, BATCH rows at a time (`RecordService.create_many`). The rows are deleted
    afterwards."""
    from engine.runtime.importer import MAX_ROWS, import_csv

    rows = min(rows, MAX_ROWS)
    runtime, records, before = _as_admin(url)
    data = csv_text(rows).encode("utf-8")
    started = time.perf_counter()
    outcome = import_csv(records, "customer", data)
    seconds = time.perf_counter() - started
    with runtime.engine.begin() as conn:
        conn.execute(sa.text("delete from crm_history where entity = 'customer' and record_id > :i"), {"i": before})
        conn.execute(sa.text("delete from customer where id > :i"), {"i": before})
    runtime.engine.dispose()
    if not outcome.ok:
        return {"error": f"import refused: {outcome.problems[:3]}"}
    return {"rows": outcome.created, "seconds": round(seconds, 2), "rows_per_s": round(outcome.created / seconds),
            "warned": len(outcome.warnings)}


def add_field_seconds(url: str) -> dict[str, Any]:
    """An administrator adds a nullable custom field to the customer table: the customisation
    is stored, the registry recompiled with it, and the schema migrated (ALTER TABLE ADD
    COLUMN on the full table). Timed from the save to the migrated table; then undone (the
    customisation deleted, the column dropped)."""
    from engine.bootstrap import open_runtime
    from engine.runtime import migrate
    from engine.runtime.customization import save_customization

    runtime = open_runtime(Config(database_url=url))
    runtime.migrate()  # only the custom field's own migration is timed
    engine = runtime.engine
    with engine.begin() as conn:  # leftovers of an interrupted run
        conn.execute(sa.text("delete from crm_customization where kind = 'entity' and key = 'customer' "
                             "and data like :f"), {"f": f"%{CUSTOM_FIELD}%"})
    if CUSTOM_FIELD in {c["name"] for c in sa.inspect(engine).get_columns("customer")}:
        with engine.begin() as conn:
            conn.execute(sa.text(f"alter table customer drop column {CUSTOM_FIELD}"))
    started = time.perf_counter()
    save_customization(engine, "entity", "customer", {"extend": "customer", "fields": {
        CUSTOM_FIELD: {"type": "string", "max_length": 200, "label": {"en": "Bench note", "zh": "压测备注"}}}},
        comment="benchmark")
    runtime2 = open_runtime(Config(database_url=url))  # the registry again, with the customisation
    compiled = time.perf_counter()
    plan = runtime2.migration_plan()  # alembic compares the live schema with the metadata
    planned = time.perf_counter()
    migrate.apply(runtime2.engine, plan)  # ALTER TABLE customer ADD COLUMN ...
    migrated = time.perf_counter()
    seconds = migrated - started
    operations = plan.describe()
    with engine.begin() as conn:
        conn.execute(sa.text("delete from crm_customization where kind = 'entity' and key = 'customer' "
                             "and comment = 'benchmark'"))
    with engine.begin() as conn:
        conn.execute(sa.text(f"alter table customer drop column {CUSTOM_FIELD}"))
    undo = time.perf_counter() - migrated
    runtime2.engine.dispose()
    engine.dispose()
    return {"seconds": round(seconds, 3), "save_and_compile_s": round(compiled - started, 3),
            "plan_s": round(planned - compiled, 3), "alter_s": round(migrated - planned, 3), "operations": operations,
            "undo_seconds": round(undo, 1)}
