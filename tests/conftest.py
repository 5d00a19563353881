"""Shared fixtures: a fresh database per test on SQLite and, when it answers, PostgreSQL."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.metadata import load_registry
from engine.runtime.db import make_engine
from engine.runtime.hooks import HookRegistry
from engine.runtime.service import Runtime

FIXTURES = Path(__file__).parent / "fixtures" / "packs"
ROOT = Path(__file__).parent.parent
PG_HOST, PG_PORT = "127.0.0.1", 5432


def postgres_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


DATABASES = ["sqlite"] + (["postgresql"] if postgres_available() else [])


@contextmanager
def empty_database(kind: str, folder: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file in `folder`, or a private PostgreSQL schema in
    `test` (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'crm.sqlite3'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"postgresql+psycopg://{PG_HOST}:{PG_PORT}/test")
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"postgresql+psycopg://{PG_HOST}:{PG_PORT}/test?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test, on each backend."""
    with empty_database(request.param, tmp_path) as url:
        yield url


def make_runtime(url: str, *packs: Path, hooks: HookRegistry | None = None) -> Runtime:
    registry = load_registry(list(packs))
    runtime = Runtime(registry, make_engine(url), hooks=hooks)
    runtime.migrate()
    return runtime


@pytest.fixture
def runtime(db_url: str) -> Iterator[Runtime]:
    """The sales_basic test pack, migrated into a fresh database."""
    rt = make_runtime(db_url, FIXTURES / "sales_basic")
    yield rt
    rt.engine.dispose()
