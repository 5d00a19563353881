"""Shared fixtures: a fresh database per test on SQLite and, when it answers, PostgreSQL.

The suite runs in parallel (pytest-xdist, `-n 2 --dist loadgroup` in pyproject.toml): every
database is private (a SQLite file under the test's tmp_path, or a PostgreSQL schema named by a
fresh uuid), test servers take a free port, and tests that share a module- or session-scoped
fixture are kept on one worker by an xdist_group mark (pytest_collection_modifyitems below).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from engine.metadata import load_registry
from engine.metadata.registry import Registry
from engine.runtime import users as user_accounts
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


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashes() -> Iterator[None]:
    """Argon2id with the cheapest parameters in this process: the real ones cost 0.1-0.4 s a hash
    and most tests create and sign in several users (hashes stay argon2id; `crm` subprocesses and
    the browser tests' server keep the real parameters)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(user_accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
        yield


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test, on each backend."""
    with empty_database(request.param, tmp_path) as url:
        yield url


# Compiled registries by pack folders, once per process (each xdist worker has its own). A Registry
# is immutable (tests/metadata/test_layering.py checks it), so tests may share one; registries
# with an overlay, or of packs a test writes, are built afresh.
_REGISTRIES: dict[tuple[Path, ...], Registry] = {}


def registry_of(*packs: Path) -> Registry:
    """load_registry(packs), memoised per process by the packs' resolved paths."""
    key = tuple(Path(p).resolve() for p in packs)
    if key not in _REGISTRIES:
        _REGISTRIES[key] = load_registry(list(packs))
    return _REGISTRIES[key]


def make_runtime(url: str, *packs: Path, hooks: HookRegistry | None = None) -> Runtime:
    registry = registry_of(*packs)
    runtime = Runtime(registry, make_engine(url), hooks=hooks)
    runtime.migrate()
    return runtime


@pytest.fixture
def runtime(db_url: str) -> Iterator[Runtime]:
    """The sales_basic test pack, migrated into a fresh database."""
    rt = make_runtime(db_url, FIXTURES / "sales_basic")
    yield rt
    rt.engine.dispose()


# -- parallel runs (pytest-xdist) -----------------------------------------------------------------

def xdist_group(item: pytest.Item) -> str | None:
    """The group of tests that must run on one worker: the browser tests share one demo server
    and one Chromium per worker (session fixtures, each a `crm demo` and a server start), and a
    security module shares one populated database per backend (module fixtures)."""
    path = Path(str(item.path)).resolve()
    tests = Path(__file__).resolve().parent
    if (tests / "browser") in path.parents:
        return "browser"
    if (tests / "security") in path.parents:
        return f"security/{path.stem}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # With --dist loadgroup each group is one unit of work (largest first); other tests go to
    # whichever worker is free, one by one.
    for item in items:
        group = xdist_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
