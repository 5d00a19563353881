"""Paths, names and small helpers shared by the benchmark's parts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"  # SQLite data sets, logs, generated wrk scripts (gitignored)
RESULTS = BENCH / "results"
PYTHON = sys.executable  # the project's venv: runs `crm serve`, the floor app and the harness
CRM = str(Path(PYTHON).parent / "crm")
DJANGO_VENV = BENCH / "django" / ".venv"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
SECRET = "bench-secret-key-not-for-production-0123456789"

PASSWORD = "bench-pass-1234"  # every bench user's password (engine, floor and Django)
SALES_USER = "sales01"  # the salesperson the benchmark signs in as (scope own + pool)
ADMIN_USER = "admin"  # the administrator (scope all)


def scale_name(customers: int) -> str:
    if customers % 1_000_000 == 0:
        return f"{customers // 1_000_000}m"
    if customers % 1000 == 0:
        return f"{customers // 1000}k"
    return str(customers)


def pg_available() -> bool:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
