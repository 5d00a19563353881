"""The `crm` command line: packs, database schema, records and users.

Every record command prints JSON. A caller's mistake (bad field value, unknown entity, stale
version, broken pack) prints a clear message to stderr and exits 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.config import ConfigError, load_config


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


# -- pack -----------------------------------------------------------------------------------------

def cmd_pack_validate(args: argparse.Namespace) -> int:
    from engine.metadata import validate
    from engine.metadata.packs import with_dependencies

    config = load_config()
    folders = [Path(d) for d in args.dirs]
    for folder in folders:
        if not (folder / "pack.yaml").is_file():
            return _fail(f"{folder}: not a pack folder (no pack.yaml)")
    # Dependencies not given on the command line are found the way active packs are.
    folders = with_dependencies(folders, list(config.pack_search))
    errors = validate(folders)
    for error in errors:
        print(error)
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    from engine.metadata import load_registry

    registry = load_registry(folders)
    print(f"OK: {len(registry.packs)} pack(s), {len(registry.entities)} entities, "
          f"{sum(len(e.user_fields) for e in registry.entities.values())} fields, "
          f"{len(registry.picklists)} pick-lists, {len(registry.roles)} roles")
    return 0


def cmd_pack_new(args: argparse.Namespace) -> int:
    from engine.metadata import MetadataError
    from engine.metadata.packs import resolve_pack_dirs, with_dependencies
    from engine.scaffold import ScaffoldError, create_pack

    config = load_config()
    folder = Path(args.dir or Path("packs") / args.name)
    base_dirs = None
    if args.extends != "none":
        found, missing = resolve_pack_dirs([args.extends], list(config.pack_search))
        if missing:
            return _fail(f"pack '{args.extends}' not found (looked in {', '.join(map(str, config.pack_search))})")
        # The base pack last: the examples extend what it defines.
        base_dirs = [*with_dependencies(found, list(config.pack_search))[1:], found[0]]
    try:
        written = create_pack(args.name, folder, base_dirs)
    except (ScaffoldError, MetadataError) as exc:
        return _fail(str(exc))
    print(f"Created pack '{args.name}' in {folder}:")
    for path in written:
        print(f"  {path.relative_to(folder)}")
    print(f"\nNext: crm pack validate {folder}   then   pytest {folder / 'tests'}")
    return 0


def cmd_pack_list(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime

    runtime = open_runtime()
    for pack in runtime.registry.packs:
        print(f"{pack.name}\t{pack.version}\t{pack.label.get('en', '')} / {pack.label.get('zh', '')}\t{pack.path}")
    return 0


def cmd_pack_install(args: argparse.Namespace) -> int:
    from engine.runtime.db import make_engine
    from engine.runtime.installer import InstallError, install

    config = load_config()
    folder = Path(args.dir)
    if not (folder / "pack.yaml").is_file():
        return _fail(f"{folder}: not a pack folder (no pack.yaml)")
    try:
        report = install(config.pack_dirs(), folder, make_engine(config.database_url), timezone=config.timezone,
                         files_dir=config.files_dir, upgrade=args.pack_command == "upgrade")
    except InstallError as exc:
        return _fail(str(exc))
    verb = f"upgraded from {report.previous} to" if report.previous and args.pack_command == "upgrade" else "installed:"
    print(f"{report.name} {verb} {report.version}")
    for line in report.ddl:
        print(f"  {line}")
    for line in report.conflicts:
        print(f"  conflict: {line}")
    return 0


def cmd_custom_export(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime
    from engine.runtime.installer import export_customizations

    runtime = open_runtime()
    count = export_customizations(runtime.engine, Path(args.dir), [p.name for p in runtime.registry.packs if p.path])
    print(f"{count} document(s) written to {args.dir}")
    return 0


# -- db -------------------------------------------------------------------------------------------

def cmd_db_migrate(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime
    from engine.runtime import migrate

    runtime = open_runtime()
    plan = runtime.migration_plan()
    for kept in plan.kept:
        print(f"kept (no longer in the metadata, data preserved): {kept}", file=sys.stderr)
    if plan.empty:
        print("The database is up to date.")
        return 0
    if args.plan:
        print(migrate.ddl(runtime.engine, plan))
        return 0
    migrate.apply(runtime.engine, plan)
    for line in plan.describe():
        print(line)
    print(f"Applied {len(plan.describe())} change(s).")
    return 0


# -- records --------------------------------------------------------------------------------------

def _data(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SystemExit(_fail(f"--data is not valid JSON: {exc}")) from None
    if not isinstance(data, dict):
        raise SystemExit(_fail("--data must be a JSON object"))
    return data


def cmd_record_import(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime
    from engine.runtime.importer import import_csv

    result = import_csv(open_runtime().records(), args.entity, Path(args.file).read_bytes())
    _print_json({"created": result.created, "columns": result.columns, "ignored": result.ignored,
                 "problems": [{"line": p.line, "column": p.column, "message": p.message.text("en")}
                              for p in result.problems],
                 "warnings": [{"line": line, "message": m.text("en")} for line, m in result.warnings]})
    return 0 if result.ok else 1


def cmd_record(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime
    from engine.runtime.query import ListQuery

    runtime = open_runtime()
    service = runtime.records()
    entity = args.entity
    if args.action == "create":
        record = service.create(entity, _data(args.data))
    elif args.action == "get":
        record = service.get(entity, args.id, include_deleted=True)
    elif args.action == "update":
        record = service.update(entity, args.id, _data(args.data), args.version)
    elif args.action == "delete":
        record = service.delete(entity, args.id)
    elif args.action == "restore":
        record = service.restore(entity, args.id)
    elif args.action == "purge":
        service.purge(entity, args.id)
        _print_json({"purged": int(args.id)})
        return 0
    elif args.action == "list":
        page = service.query(entity, ListQuery(filters=args.filter or (), sort=args.sort or (), limit=args.limit,
                                               search=args.search, cursor=args.cursor, trash=args.trash))
        _print_json({
            "rows": [service.to_json(entity, r) for r in page.rows],
            "total": page.total, "total_exact": page.total_exact, "next_cursor": page.next_cursor,
        })
        return 0
    else:  # pragma: no cover - argparse restricts choices
        return _fail(f"unknown action {args.action}")
    _print_json(service.to_json(entity, record))
    return 0


def cmd_user_create(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime
    from engine.runtime.users import create_user

    runtime = open_runtime()
    user = create_user(runtime, args.username, args.password, display_name=args.name, roles=tuple(args.role or ()),
                       is_admin=args.admin, email=args.email)
    _print_json({"id": user.id, "username": user.username, "roles": list(user.roles), "admin": user.is_admin})
    return 0


# -- demo -------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime
    from engine.demo import generate

    runtime = open_runtime()
    if "customer" not in runtime.registry.entities:
        return _fail("crm demo fills the standard_crm pack's entities; activate that pack first")
    runtime.migrate()

    def progress(done: int, total: int) -> None:
        if total > 5000:
            print(f"  {done:,} / {total:,} customers", file=sys.stderr)

    summary = generate(runtime, customers=args.customers, seed=args.seed, force=args.force, progress=progress)
    if args.pack:
        # Industry packs' demo data builds on the standard demo's customers and users.
        if not summary.skipped:
            print(f"Standard demo data: {summary.rows:,} records.")
        return _demo_packs(runtime, args.pack, args.seed)
    if summary.skipped:
        print("Demo data already exists (the customer table has rows); nothing was generated. "
              "Use --force to add more.")
    else:
        print(f"Demo data (seed {summary.seed}): {summary.rows:,} records in {summary.seconds:.1f} s "
              f"({summary.rows / max(summary.seconds, 0.001):,.0f} records/s)")
        for entity, count in summary.counts.items():
            print(f"  {entity:<20} {count:>10,}")
    if summary.users:
        print("\nDemo users (sign in with these):")
        for user, status in summary.users:
            print(f"  {user.username:<12} {user.password:<18} {', '.join(user.roles):<16} {user.display_name}  [{status}]")
    return 0


def _demo_packs(runtime: Any, packs: list[str], seed: int) -> int:
    from engine.demo import generate_pack

    for name in packs:
        try:
            demo = generate_pack(runtime, name, seed=seed)
        except LookupError as exc:
            return _fail(str(exc))
        if demo is None:
            print(f"{name}: demo data was loaded into this database before; nothing was generated.")
            continue
        print(f"{name}: {sum(demo.counts.values()):,} records")
        for entity, count in demo.counts.items():
            print(f"  {entity:<24} {count:>8,}")
        for user in demo.users:
            print(f"  user {user.username:<16} {user.password:<20} {', '.join(user.roles):<20} {user.display_name}")
    return 0


# -- jobs and settings ------------------------------------------------------------------------------

def cmd_jobs(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime

    runtime = open_runtime()
    if args.jobs_command == "list":
        for name in sorted(runtime.hooks.jobs):
            doc = (runtime.hooks.jobs[name].__doc__ or "").strip().splitlines()
            print(f"{name}\t{doc[0] if doc else ''}")
        return 0
    names = sorted(runtime.hooks.jobs) if args.all else args.names
    if not names:
        return _fail("name a job (see `crm jobs list`) or use --all")
    for name in names:
        for line in runtime.records().run_job(name):
            print(f"{name}: {line}")
    return 0


def cmd_setting(args: argparse.Namespace) -> int:
    from engine.bootstrap import open_runtime

    runtime = open_runtime()
    if args.setting_command == "list":
        for key, spec in runtime.registry.settings.items():
            print(f"{key}\t{json.dumps(runtime.setting(key), ensure_ascii=False)}\t({spec.type}, default "
                  f"{json.dumps(spec.default, ensure_ascii=False)})\t{spec.label.get('en', '')}")
        return 0
    value = runtime.set_setting(args.key, args.value)
    print(f"{args.key} = {json.dumps(value, ensure_ascii=False)}")
    return 0


# -- serve ----------------------------------------------------------------------------------------

def _limit_malloc_arenas(count: int) -> None:
    """mallopt(M_ARENA_MAX, count) in this process, where glibc is the C library (else nothing)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, count)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def cmd_serve(args: argparse.Namespace) -> int:
    import os
    import secrets

    import uvicorn

    from engine.bootstrap import open_runtime

    config = load_config()
    runtime = open_runtime(config)  # fails early, in this process, on a broken pack or database
    plan = runtime.migration_plan()
    if not plan.empty:
        if not args.migrate:
            return _fail("the database is behind the metadata; run `crm db migrate` first "
                         "(or `crm serve --migrate`)")
        runtime.migrate()
    runtime.engine.dispose()
    if not config.secret_key:
        # Every worker must sign sessions with the same key; without a configured one, share a
        # random key for this run (sessions then end when the server restarts).
        os.environ["CRM_SECRET_KEY"] = secrets.token_urlsafe(32)
        print("CRM_SECRET_KEY is not set: using a random key; sessions end when the server stops.", file=sys.stderr)
    # glibc gives each of the thread pool's threads its own malloc arena (up to 8 per core), which
    # grew a worker by ~60 MB under load; two arenas cost no measurable speed. Worker processes
    # are spawned, so the variable reaches their glibc at start; one worker runs in this process,
    # which is already started, so it is told with mallopt.
    if "MALLOC_ARENA_MAX" not in os.environ:
        os.environ["MALLOC_ARENA_MAX"] = "2"
        if args.workers <= 1:
            _limit_malloc_arenas(2)
    print(f"Serving on http://{args.host}:{args.port} with {args.workers} worker(s)", file=sys.stderr)
    uvicorn.run("engine.ui.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, access_log=args.access_log, proxy_headers=False,
                http="engine.ui.http:NoDelayHTTPProtocol")
    return 0


# -- wiring ---------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="crm", description="Metadata-driven CRM framework")
    sub = root.add_subparsers(dest="command", required=True)

    pack = sub.add_parser("pack", help="validate and list packs").add_subparsers(dest="pack_command", required=True)
    p = pack.add_parser("validate", help="check pack folders: schemas and cross-references")
    p.add_argument("dirs", nargs="+")
    p.set_defaults(func=cmd_pack_validate)
    p = pack.add_parser("list", help="the active packs")
    p.set_defaults(func=cmd_pack_list)
    p = pack.add_parser("new", help="scaffold a working pack folder to start a partner pack from")
    p.add_argument("name", help="the pack's name: lower-case letters, digits and _")
    p.add_argument("--extends", default="standard_crm", metavar="PACK",
                   help="the pack it builds on (default standard_crm; 'none' for a pack on its own)")
    p.add_argument("--dir", help="where to write it (default packs/NAME)")
    p.set_defaults(func=cmd_pack_new)
    for name, text in (("install", "validate a pack folder with the active packs, migrate, activate it"),
                       ("upgrade", "replace an installed pack by a newer version (customisations stay on top)")):
        p = pack.add_parser(name, help=text)
        p.add_argument("dir")
        p.set_defaults(func=cmd_pack_install)

    custom = sub.add_parser("custom", help="the administrator's customisation layer")
    custom_sub = custom.add_subparsers(dest="custom_command", required=True)
    p = custom_sub.add_parser("export", help="write the customisation layer as a pack folder")
    p.add_argument("dir")
    p.set_defaults(func=cmd_custom_export)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("migrate", help="bring the database to the metadata (additive only)")
    p.add_argument("--plan", action="store_true", help="print the DDL and apply nothing")
    p.set_defaults(func=cmd_db_migrate)

    record = sub.add_parser("record", help="create, read, change and list records")
    actions = record.add_subparsers(dest="action", required=True)
    for name in ("create", "get", "update", "delete", "restore", "purge", "list"):
        p = actions.add_parser(name)
        p.add_argument("entity")
        if name != "create" and name != "list":
            p.add_argument("id")
        if name in ("create", "update"):
            p.add_argument("--data", required=True, help="the field values as a JSON object")
        if name == "update":
            p.add_argument("--version", type=int, required=True, help="the version you read (optimistic lock)")
        if name == "list":
            p.add_argument("--filter", action="append", help='"FIELD OP VALUE", repeatable')
            p.add_argument("--sort", action="append", help="FIELD or -FIELD, repeatable")
            p.add_argument("--limit", type=int, default=50)
            p.add_argument("--search")
            p.add_argument("--cursor", help="continue after a previous page (its next_cursor)")
            p.add_argument("--trash", action="store_true", help="list the recycle bin")
        p.set_defaults(func=cmd_record)
    p = actions.add_parser("import", help="create records from a CSV file, all rows or none (as the system)")
    p.add_argument("entity")
    p.add_argument("file", help="CSV, UTF-8 or GB18030; the first row names the fields (key or label)")
    p.set_defaults(func=cmd_record_import)

    user = sub.add_parser("user", help="login users").add_subparsers(dest="user_command", required=True)
    p = user.add_parser("create", help="create a login user")
    p.add_argument("username")
    p.add_argument("--password", required=True)
    p.add_argument("--name", help="display name")
    p.add_argument("--email")
    p.add_argument("--role", action="append", help="role key, repeatable")
    p.add_argument("--admin", action="store_true")
    p.set_defaults(func=cmd_user_create)

    jobs = sub.add_parser("jobs", help="scheduled jobs of the packs (run them from cron)")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    p = jobs_sub.add_parser("list", help="the jobs the active packs define")
    p.set_defaults(func=cmd_jobs)
    p = jobs_sub.add_parser("run", help="run jobs now, as the system")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_jobs)

    setting = sub.add_parser("setting", help="system settings the packs declare")
    setting_sub = setting.add_subparsers(dest="setting_command", required=True)
    p = setting_sub.add_parser("list", help="every setting with its current value")
    p.set_defaults(func=cmd_setting)
    p = setting_sub.add_parser("set", help="change a setting (checked against its type)")
    p.add_argument("key")
    p.add_argument("value")
    p.set_defaults(func=cmd_setting)

    p = sub.add_parser("serve", help="run the web application (screens and JSON API) with uvicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--migrate", action="store_true", help="bring the database schema up to date first")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="fill the database with demo users and data (standard CRM pack, and --pack NAME for others)")
    p.add_argument("--customers", type=int, default=200, help="how many customers (default 200)")
    p.add_argument("--seed", type=int, default=42, help="the same seed gives the same data (default 42)")
    p.add_argument("--force", action="store_true", help="add data even if the database has customers")
    p.add_argument("--pack", action="append", metavar="NAME",
                   help="also load this active pack's demo data (its demo.py), once per database; repeatable")
    p.set_defaults(func=cmd_demo)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    from engine.metadata import MetadataError
    from engine.runtime.errors import RecordError

    argv = list(sys.argv[1:] if argv is None else argv)
    # `--sort -name` reads naturally; argparse would take -name for an option, so join the pair.
    for i in range(len(argv) - 1, 0, -1):
        if argv[i - 1] == "--sort" and argv[i].startswith("-"):
            argv[i - 1:i + 1] = [f"--sort={argv[i]}"]
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MetadataError as exc:
        return _fail(str(exc))
    except ConfigError as exc:
        return _fail(f"configuration: {exc}")
    except RecordError as exc:
        print(json.dumps(exc.as_dict(), ensure_ascii=False, indent=2), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
