"""Fixtures of the runtime tests: users, a system record service and small record factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.metadata import load_registry
from engine.runtime.db import make_engine
from engine.runtime.hooks import HookRegistry
from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import User, create_user
from tests.conftest import FIXTURES, registry_of

SALES = FIXTURES / "sales_basic"
HOOKED = FIXTURES / "hooked"


@pytest.fixture
def rec(runtime: Runtime) -> RecordService:
    """The record service acting as the system (sees and may do everything)."""
    return runtime.records()


@pytest.fixture
def alice(runtime: Runtime) -> User:
    return create_user(runtime, "alice", "correct horse 1", display_name="Alice", roles=("rep",))


@pytest.fixture
def bob(runtime: Runtime) -> User:
    return create_user(runtime, "bob", "battery staple 2", display_name="Bob", roles=("rep",))


def codes(exc: Any, name: str) -> list[str]:
    """The message codes a ValidationFailed carries for field `name`."""
    return [m.code for m in exc.errors.get(name, [])]


@pytest.fixture
def build_runtime(db_url: str) -> Iterator[Callable[..., Runtime]]:
    """Build (and migrate) runtimes over the test database: packs, overlay documents and hooks."""
    made: list[Runtime] = []

    def build(packs: Sequence[Path] = (SALES,), overlay: Sequence[dict[str, Any]] = (),
              hooks: HookRegistry | None = None, migrate: bool = True) -> Runtime:
        registry = load_registry(list(packs), overlay) if overlay else registry_of(*packs)
        rt = Runtime(registry, make_engine(db_url), hooks=hooks if hooks is not None else HookRegistry())
        if migrate:
            rt.migrate()
        made.append(rt)
        return rt

    yield build
    for rt in made:
        rt.engine.dispose()
