"""The benchmark: data set -> our server, the floor and Django admin, one after the other, on
the same data and machine -> one table per database, printed and written to
bench/results/<date>-<db>.json.

    python -m bench --customers 100000 --quick       # make bench-quick
    python -m bench --customers 1000000              # make bench
    python -m bench --db sqlite --apps ours          # a part of it
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from bench import dataset, load, offline, scenarios, servers
from bench.common import (
    ADMIN_USER,
    BENCH,
    DJANGO_VENV,
    PASSWORD,
    RESULTS,
    SALES_USER,
    SECRET,
    log,
    pg_available,
    scale_name,
)
from bench.load import Scenario

PORTS = {"ours": 8701, "floor": 8702, "django": 8703}
PROFILES = {  # per scenario: 1-client latency run, then the 16-client throughput run
    "quick": {"lat_requests": 60, "lat_seconds": 3, "tp_seconds": 3, "tp_requests": 3000, "warm_seconds": 1,
              "import_rows": 20_000},
    "full": {"lat_requests": 300, "lat_seconds": 10, "tp_seconds": 10, "tp_requests": 20000, "warm_seconds": 2,
             "import_rows": 100_000},
}
CLIENTS = 16
WRITES = 3000  # distinct requests prepared for each write scenario run

# Targets of issue 7 (at 1M customers, 2 cores), by scenario kind.
LATENCY_TARGETS = {"list": (30, 80), "detail": (30, 80), "detail_tabs": (30, 80),
                   "filtered": (60, None), "deep": (60, None), "search_name": (60, None), "search_pinyin": (60, None)}
FLOOR_RATIO, DJANGO_RATIO = 0.8, 3.0
IMPORT_TARGET, FIELD_TARGET, REGISTRY_TARGET, RSS_TARGET = 10_000, 1.0, 200, 150


# -- one application ------------------------------------------------------------------------------

def check(base: str, scenario: Scenario) -> None:
    """One request outside the timing: the right status, or the run stops here."""
    import httpx

    method, path, body = scenario.requests[0]
    r = httpx.request(method, base + path, headers=scenario.headers, content=body.encode() if body else None,
                      timeout=120, follow_redirects=False)
    if r.status_code != scenario.expect:
        raise RuntimeError(f"{scenario.name}: {method} {path} -> {r.status_code}, expected {scenario.expect}")
    if "login" in r.headers.get("location", ""):  # a lost session also answers 303
        raise RuntimeError(f"{scenario.name}: {method} {path} was sent to the sign-in page")


def measure(base: str, scenario: Scenario, profile: dict[str, Any]) -> dict[str, Any]:
    check(base, scenario)
    if not scenario.once:  # warm both workers' caches (templates, statements, pages)
        load.run(base, scenario, connections=4, seconds=profile["warm_seconds"], max_requests=40)
    latency = load.run(base, scenario, connections=1, seconds=profile["lat_seconds"], max_requests=profile["lat_requests"])
    return {"latency": latency, "throughput": None}


def throughput(base: str, scenario: Scenario, profile: dict[str, Any]) -> dict[str, Any]:
    return load.run(base, scenario, connections=CLIENTS, seconds=profile["tp_seconds"], max_requests=profile["tp_requests"])


def run_reads(app: str, base: str, reads: list[Scenario], profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for s in reads:
        result = measure(base, s, profile)
        result["throughput"] = throughput(base, s, profile)
        out[s.name] = result
        lat, tp = result["latency"], result["throughput"]
        log(f"  {app:<6} {s.name:<22} p50 {lat['p50_ms']:7.1f} ms  p95 {lat['p95_ms']:7.1f}  p99 {lat['p99_ms']:7.1f}"
            f"  | {tp['rps']:7.1f} req/s at {CLIENTS}" + (f"  ERRORS {lat['errors']}+{tp['errors']} ({lat['statuses']} {tp['statuses']})"
                                                        if lat["errors"] or tp["errors"] else ""))
    return out


def customer_versions(url: str, ids: list[int]) -> list[tuple[int, int]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"select id, version from customer where id in ({','.join(map(str, ids))})")).all()
    engine.dispose()
    found = dict((int(i), int(v)) for i, v in rows)
    return [(i, found[i]) for i in ids if i in found]


def originals(url: str, ids: list[int]) -> dict[int, tuple[int, Any, Any]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select id, version, updated_at, remarks from customer "
                                    f"where id in ({','.join(map(str, ids))})")).all()
    engine.dispose()
    return {int(r[0]): (int(r[1]), r[2], r[3]) for r in rows}


def run_writes(base: str, url: str, sales: scenarios.Session, facts: scenarios.Facts,
               profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    ids = facts.sales_ids[:WRITES]
    for kind in ("create", "update"):
        def build(tag: str, kind: str = kind) -> Scenario:
            if kind == "create":
                return scenarios.ours_create(sales, WRITES, tag)
            return scenarios.ours_update(sales, customer_versions(url, ids), tag)

        s = build("L")
        result = measure(base, s, profile)
        result["throughput"] = throughput(base, build("T"), profile)
        out[s.name] = result
        lat, tp = result["latency"], result["throughput"]
        log(f"  ours   {s.name:<22} p50 {lat['p50_ms']:7.1f} ms  p95 {lat['p95_ms']:7.1f}  p99 {lat['p99_ms']:7.1f}"
            f"  | {tp['rps']:7.1f} req/s at {CLIENTS}" + (f"  ERRORS {lat['errors']}+{tp['errors']} ({lat['statuses']} {tp['statuses']})"
                                                        if lat["errors"] or tp["errors"] else ""))
    return out


def bench_app(app: str, url: str, facts: scenarios.Facts, workers: int, profile: dict[str, Any]) -> dict[str, Any]:
    server = {"ours": servers.ours, "floor": servers.floor, "django": servers.django}[app](url, PORTS[app], workers)
    log(f"[{app}] starting ...")
    started = server.start()
    try:
        sign_in = {"ours": scenarios.sign_in_ours, "floor": scenarios.sign_in_floor,
                   "django": scenarios.sign_in_django}[app]
        sales, admin = sign_in(server.base, SALES_USER), sign_in(server.base, ADMIN_USER)
        reads = {"ours": scenarios.ours, "floor": scenarios.floor, "django": scenarios.django}[app](sales, admin, facts)
        results = run_reads(app, server.base, reads, profile)
        if app == "ours":
            results.update(run_writes(server.base, url, sales, facts, profile))
        rss = server.rss_mb()
    finally:
        server.stop()
    return {"start_seconds": round(started, 2), "rss_mb": rss, "scenarios": results}


# -- SQL statements per request (instrumented, in-process) ----------------------------------------

def sql_ours(url: str, facts: scenarios.Facts) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from bench.sqlcount import Counter, count
    from engine.bootstrap import open_runtime
    from engine.config import Config
    from engine.ui.app import build_app

    config = Config(database_url=url, secret_key=SECRET)
    runtime = open_runtime(config)
    runtime.migrate()
    counter = Counter(runtime.engine)
    out: dict[str, Any] = {}
    sessions = {}
    with TestClient(build_app(runtime, config)) as client_sales, TestClient(build_app(runtime, config)) as client_admin:
        for client, user in ((client_sales, SALES_USER), (client_admin, ADMIN_USER)):
            csrf = scenarios.csrf_in(client.get("/login").text)
            client.post("/login", data={"username": user, "password": PASSWORD, "_csrf": csrf, "next": "/"})
            sessions[user] = scenarios.Session("", scenarios.csrf_in(client.get("/app/customer/new").text))
        reads = scenarios.ours(sessions[SALES_USER], sessions[ADMIN_USER], facts)
        writes = [scenarios.ours_create(sessions[SALES_USER], 3, "C"),
                  scenarios.ours_update(sessions[SALES_USER], customer_versions(url, facts.sales_ids[-3:]), "C")]
        for s in reads + writes:
            client = client_admin if s.name.endswith(":admin") else client_sales
            count(client, counter, s, 0)  # warm-up; then the smaller of two (caches refill now and then)
            out[s.name] = min(count(client, counter, s, 1)[0], count(client, counter, s, 2)[0])
        # A list page runs the same statements whatever its size.
        by_size = {}
        for limit in (20, 50, 200):
            sized = Scenario("size", [("GET", f"/app/customer?limit={limit}", None)])
            by_size[limit] = min(count(client_sales, counter, sized, 0)[0], count(client_sales, counter, sized, 0)[0])
        out["list:sales by page size"] = by_size
    runtime.engine.dispose()
    return out


def sql_floor(url: str, facts: scenarios.Facts) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from bench.floor.app import create_app
    from bench.sqlcount import Counter, count

    os.environ["BENCH_DATABASE_URL"] = url
    app = create_app()
    out = {}
    for user in (SALES_USER, ADMIN_USER):
        with TestClient(app) as client:
            client.post("/login", data={"username": user, "password": PASSWORD})
            counter = Counter(app.state.floor.engine)
            for s in scenarios.floor(scenarios.Session("", ""), scenarios.Session("", ""), facts):
                if s.name.endswith(":admin") != (user == ADMIN_USER):
                    continue
                count(client, counter, s, 0)
                out[s.name] = min(count(client, counter, s, 1)[0], count(client, counter, s, 1)[0])
    return out


def sql_django(url: str, facts: scenarios.Facts) -> dict[str, Any]:
    out = {}
    env = {**os.environ, "BENCH_DATABASE_URL": url, "BENCH_SECRET": SECRET}
    for user in (SALES_USER, ADMIN_USER):
        chosen = [s for s in scenarios.django(scenarios.Session("", ""), scenarios.Session("", ""), facts)
                  if s.name.endswith(":admin") == (user == ADMIN_USER)]
        paths = [s.requests[min(1, len(s.requests) - 1)][1] for s in chosen]
        done = subprocess.run([str(DJANGO_VENV / "bin" / "python"), "manage.py", "benchcount", user, *paths],
                              cwd=BENCH / "django", env=env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"benchcount failed: {done.stderr[-2000:]}")
        counted = json.loads(done.stdout.strip().splitlines()[-1])
        out.update({s.name: counted[p] for s, p in zip(chosen, paths, strict=True)})
    return out


# -- plans ------------------------------------------------------------------------------------------

def explain(url: str, facts: scenarios.Facts) -> dict[str, str]:
    """The query plans of the list page's statements (salesperson and admin), for the docs."""
    from engine.bootstrap import open_runtime
    from engine.config import Config
    from engine.runtime.query import ListQuery
    from engine.runtime.users import load_user

    runtime = open_runtime(Config(database_url=url))
    runtime.migrate()  # the packs may have moved on during the run
    plans: dict[str, str] = {}
    captured: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        captured.append((statement, parameters))

    users = runtime.table("crm_user")
    with runtime.engine.connect() as conn:
        ids = dict(conn.execute(sa.select(users.c.username, users.c.id)
                                .where(users.c.username.in_([SALES_USER, ADMIN_USER]))).all())
    queries = {
        "list:sales": (SALES_USER, ListQuery()),
        "list:admin": (ADMIN_USER, ListQuery()),
        "filtered:sales": (SALES_USER, ListQuery(filters=[f"{k} eq {v}" for k, v in scenarios.FILTER.items()],
                                                 sort=["name"])),
        "deep:admin": (ADMIN_USER, ListQuery(cursor=facts.deep_cursor)),
        "search:sales customer": (SALES_USER, ListQuery(search=scenarios.SEARCH_PINYIN, limit=8, count=False, titles=())),
    }
    for name, (username, q) in queries.items():
        user = load_user(runtime, ids[username])
        assert user is not None
        captured.clear()
        sa.event.listen(runtime.engine, "before_cursor_execute", seen)
        runtime.records(user.actor("zh")).query("customer", q)
        sa.event.remove(runtime.engine, "before_cursor_execute", seen)
        lines = []
        for statement, parameters in captured:
            prefix = "EXPLAIN QUERY PLAN " if runtime.engine.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS OFF) "
            raw = runtime.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute(prefix + statement, parameters)
                rows = cur.fetchall()
            finally:
                raw.close()
            kind = "count" if statement.lstrip().lower().startswith("select count") else "page"
            lines.append(f"-- {kind}")
            lines += [" | ".join(str(c) for c in r) for r in rows]
        plans[name] = "\n".join(lines)
    runtime.engine.dispose()
    return plans


def index_coverage() -> list[str]:
    """Declared list filters and default sorts without an index that starts with their column."""
    from engine.bootstrap import open_runtime
    from engine.config import Config

    runtime = open_runtime(Config(database_url="sqlite://"))
    missing = []
    for entity in runtime.registry.entities.values():
        table = runtime.table(entity.key)
        leading = {i.columns[0].name for i in table.indexes} | {"id"}
        wanted = [(n, "filter") for n in entity.list.filters] + [(k.lstrip("-"), "sort") for k in entity.list.sort[:1]]
        for name, why in wanted:
            f = entity.fields.get(name)
            if f is None or name in leading:
                continue
            if f.type in ("reference", "user") or name == "owner":
                if why == "sort":  # sorting by a reference sorts by the target's title: a join
                    missing.append(f"{entity.key}.{name} (default sort by a reference's title)")
                continue
            missing.append(f"{entity.key}.{name} ({why})")
    runtime.engine.dispose()
    return missing


# -- the table ----------------------------------------------------------------------------------------

def verdicts(name: str, ours: dict[str, Any], floor: dict[str, Any] | None, django: dict[str, Any] | None) -> list[str]:
    out = []
    kind = name.split(":")[0]
    lat = ours["latency"]
    if kind in LATENCY_TARGETS:
        p50, p95 = LATENCY_TARGETS[kind]
        out.append(f"p50≤{p50} {'met' if lat['p50_ms'] <= p50 else 'MISSED'}")
        if p95 is not None:
            out.append(f"p95≤{p95} {'met' if lat['p95_ms'] <= p95 else 'MISSED'}")
    rps = ours["throughput"]["rps"]
    for other, label, ratio in ((floor, "floor", FLOOR_RATIO), (django, "Django", DJANGO_RATIO)):
        if not other:
            continue
        if not rps or not other["throughput"]["rps"]:  # no request finished within the run: no ratio
            out.append(f"≥{ratio:g}×{label} n/a")
        else:
            out.append(f"≥{ratio:g}×{label} {'met' if rps >= ratio * other['throughput']['rps'] else 'MISSED'}")
    return out


def table(result: dict[str, Any]) -> str:
    apps = result["apps"]
    ours = apps["ours"]["scenarios"]
    floor = apps.get("floor", {}).get("scenarios", {})
    django = apps.get("django", {}).get("scenarios", {})
    sql = result.get("sql", {})

    def rps(x: dict[str, Any] | None) -> str:
        if not x:
            return "—"
        value = x["throughput"]["rps"]
        return f"{value:.0f}" if value >= 10 else f"{value:.1f}"

    def p50(x: dict[str, Any] | None) -> str:
        return f"{x['latency']['p50_ms']:.1f}" if x else "—"

    def ratio(a: dict[str, Any], b: dict[str, Any] | None) -> str:
        if not b or not a["throughput"]["rps"] or not b["throughput"]["rps"]:
            return "—"
        return f"{a['throughput']['rps'] / b['throughput']['rps']:.2f}"

    head = ("| scenario | ours p50 / p95 / p99 ms | ours req/s (16) | floor p50 ms | floor req/s | Django p50 ms | "
            "Django req/s | ours/floor | ours/Django | SQL ours/floor/Django | targets |")
    lines = [head, "|" + "---|" * 11]
    for name, r in ours.items():
        f, d = floor.get(name), django.get(name)
        lat = r["latency"]
        counts = "/".join(str(sql.get(app, {}).get(name, "—")) for app in ("ours", "floor", "django"))
        errors = lat["errors"] + r["throughput"]["errors"]
        lines.append(f"| {name} | {lat['p50_ms']:.1f} / {lat['p95_ms']:.1f} / {lat['p99_ms']:.1f} | {rps(r)} | {p50(f)} | "
                     f"{rps(f)} | {p50(d)} | {rps(d)} | {ratio(r, f)} | {ratio(r, d)} | {counts} | "
                     f"{', '.join(verdicts(name, r, f, d)) or '—'}{f' ({errors} errors)' if errors else ''} |")
    o = result["other"]
    rss = {app: apps[app].get("rss_mb") for app in apps}
    lines += ["", "| measure | value | target |", "|---|---|---|"]

    def measure_row(label: str, key: str, value: Any, target: str) -> None:
        if "error" in o.get(key, {"error": "not run"}):
            lines.append(f"| {label} | failed: {str(o.get(key, {}).get('error', 'not run'))[:80]} | {target} |")
        else:
            lines.append(f"| {label} | {value()} | {target} |")

    imp, field, reg = o.get("import", {}), o.get("add_field", {}), o.get("registry", {})
    measure_row(f"CSV import ({imp.get('rows', 0):,} customers)", "import", lambda: f"{imp['rows_per_s']:,} rows/s",
                f"≥ {IMPORT_TARGET:,} rows/s " + ("met" if imp.get("rows_per_s", 0) >= IMPORT_TARGET else "MISSED"))
    measure_row(f"add a nullable custom field to the customer table ({result['counts'].get('customer', 0):,} rows)",
                "add_field", lambda: f"{field['seconds']:.2f} s" + (
                    f" (save + recompile {field['save_and_compile_s']:.2f}, alembic plan {field['plan_s']:.2f}, "
                    f"ALTER TABLE {field['alter_s']:.2f})" if "plan_s" in field else ""),
                f"≤ {FIELD_TARGET:g} s " + ("met" if field.get("seconds", 99) <= FIELD_TARGET else "MISSED"))
    measure_row("registry compile, standard pack (median)", "registry", lambda: f"{reg['median_ms']:.0f} ms",
                f"≤ {REGISTRY_TARGET} ms " + ("met" if reg.get("median_ms", 9999) <= REGISTRY_TARGET else "MISSED"))
    lines.append(f"| server start, `crm serve --workers {result['workers']}` (to the first answer) | "
                 f"{apps['ours']['start_seconds']:.1f} s | — |")
    for app, sizes in rss.items():
        if sizes:
            target = f"≤ {RSS_TARGET} MB {'met' if max(sizes) <= RSS_TARGET else 'MISSED'}" if app == "ours" else "—"
            lines.append(f"| resident memory per worker, {app} (after the run) | {', '.join(f'{s:.0f}' for s in sizes)} MB | {target} |")
    by_size = sql.get("ours", {}).get("list:sales by page size")
    if by_size:
        lines.append(f"| SQL statements of the list page at 20 / 50 / 200 rows | {' / '.join(str(v) for v in by_size.values())} | constant |")
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------

def bench_db(db: str, args: argparse.Namespace, profile: dict[str, Any]) -> dict[str, Any]:
    ds = dataset.prepare(db, args.customers, args.seed, rebuild=args.rebuild)
    facts = scenarios.facts(ds.url)
    marks = dataset.baseline(ds.url)
    touched = originals(ds.url, facts.sales_ids[:WRITES])
    apps = [a for a in args.apps.split(",") if a != "django" or servers.django_available()]
    if "django" in args.apps and "django" not in apps:
        log("Django's venv is missing (bench/django/.venv): `make bench` makes it; Django is left out")
    result: dict[str, Any] = {
        "date": datetime.now().isoformat(timespec="seconds"), "db": db, "dataset": ds.name,
        "customers": args.customers, "counts": ds.counts, "build_seconds": round(ds.built_seconds, 1),
        "workers": args.workers, "profile": args.profile, "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "load_average_before": os.getloadavg(), "apps": {}, "sql": {}, "other": {},
    }
    try:
        if "django" in apps:
            subprocess.run([str(DJANGO_VENV / "bin" / "python"), "manage.py", "benchsetup", "--password", PASSWORD,
                            "--sales", SALES_USER], cwd=BENCH / "django", check=True, capture_output=True,
                           env={**os.environ, "BENCH_DATABASE_URL": ds.url})
        log(f"[{db}] counting SQL statements per request (instrumented, in-process) ...")
        result["sql"]["ours"] = sql_ours(ds.url, facts)
        if "floor" in apps:
            result["sql"]["floor"] = sql_floor(ds.url, facts)
        if "django" in apps:
            result["sql"]["django"] = sql_django(ds.url, facts)
        dataset.restore(ds.url, marks, touched)
        for app in apps:
            result["apps"][app] = bench_app(app, ds.url, facts, args.workers, profile)
            dataset.restore(ds.url, marks, touched)
        log(f"[{db}] query plans, import, custom field, registry ...")
        offline_steps(result, ds.url, facts, profile)
    finally:
        dataset.restore(ds.url, marks, touched)
    result["load_average_after"] = os.getloadavg()
    return result


def offline_steps(result: dict[str, Any], url: str, facts: scenarios.Facts, profile: dict[str, Any]) -> None:
    steps = {"plans": lambda: explain(url, facts), "registry": offline.registry_ms,
             "import": lambda: offline.import_rate(url, profile["import_rows"]),
             "add_field": lambda: offline.add_field_seconds(url), "index_gaps": index_coverage}
    for key, step in steps.items():
        try:
            value = step()
        except Exception as exc:  # one failed measure must not lose the others
            log(f"  {key} failed: {exc!r}"[:2000])
            value = {"error": repr(exc)[:2000]}
        if key in ("plans", "index_gaps"):
            result[key] = value
        else:
            result["other"][key] = value


def offline_into(path: str, profile: dict[str, Any]) -> int:
    """Redo the measures that are not page loads into an earlier result file (e.g. after the packs
    were briefly broken by someone's work in progress during the run)."""
    from pathlib import Path

    result = json.loads(Path(path).read_text())
    ds = dataset.prepare(result["db"], result["customers"])
    facts = scenarios.facts(ds.url)
    marks = dataset.baseline(ds.url)
    try:
        offline_steps(result, ds.url, facts, profile)
    finally:
        dataset.restore(ds.url, marks)
    result["offline_redone"] = datetime.now().isoformat(timespec="seconds")
    result["table"] = table(result)
    Path(path).write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
    print(result["table"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--db", default="auto", help="sqlite, postgresql, or auto (both when PostgreSQL answers)")
    parser.add_argument("--apps", default="ours,floor,django")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--quick", action="store_const", const="quick", dest="profile")
    parser.add_argument("--rebuild", action="store_true", help="build the data set again even if cached")
    parser.add_argument("--offline-into", metavar="RESULT.json",
                        help="only redo plans, import, custom field, registry and index checks into a result file")
    args = parser.parse_args(argv)
    if args.offline_into:
        return offline_into(args.offline_into, PROFILES[args.profile])
    load.wrk_path()
    dbs = ["sqlite", "postgresql"] if args.db == "auto" else args.db.split(",")
    if "postgresql" in dbs and not pg_available():
        log("PostgreSQL does not answer: SQLite only")
        dbs.remove("postgresql")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for db in dbs:
        started = time.perf_counter()
        result = bench_db(db, args, PROFILES[args.profile])
        result["seconds"] = round(time.perf_counter() - started)
        # A run without ours (--apps floor, say) has no table and must not replace a full result.
        partial = "ours" not in result["apps"]
        text = "(no table: ours was not run)" if partial else table(result)
        result["table"] = text
        scale = "" if args.customers == 1_000_000 else "-" + scale_name(args.customers)
        path = RESULTS / f"{date.today().isoformat()}-{db}{scale}{'-partial' if partial else ''}.json"
        path.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
        before, after = result["load_average_before"][0], result["load_average_after"][0]
        print(f"\n## {db}, {args.customers:,} customers ({result['dataset']}), {args.workers} workers, "
              f"profile {args.profile}, {result['seconds']} s; load average {before:.1f} before, {after:.1f} after\n")
        print(text)
        if result.get("index_gaps"):
            print("\nDeclared filters / default sorts without an index: " + ", ".join(result["index_gaps"]))
        print(f"\n(written to {path.relative_to(BENCH.parent)})", flush=True)
    return 0
