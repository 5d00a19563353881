"""Fixtures of the standard CRM behaviour tests: the pack (with its hooks.py) migrated into a fresh
database on SQLite and PostgreSQL, an organisation with one user per role, and signed-in HTTP
clients for the screens and the JSON API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from engine.config import Config
from engine.runtime import users as user_accounts
from engine.runtime.query import ListQuery
from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import User, create_user
from engine.ui.app import build_app
from engine.ui.tokens import create_token
from tests.conftest import ROOT, make_runtime
from tests.ui.conftest import csrf_of, login

STANDARD = ROOT / "packs" / "standard_crm"

# user name -> (roles, department): East China sales has a sub-team East-1 below it.
PEOPLE: dict[str, tuple[tuple[str, ...], str]] = {
    "admin": (("admin",), "HQ"),
    "manager": (("sales_manager",), "East"),
    "sales1": (("salesperson",), "East"),
    "east1": (("salesperson",), "East-1"),
    "sales2": (("salesperson",), "North"),
    "boss2": (("sales_manager",), "North"),
    "marketing1": (("marketing",), "Marketing"),
    "service1": (("service_agent",), "Service"),
}
DEPARTMENTS = {"HQ": None, "East": "HQ", "East-1": "East", "North": "HQ", "Marketing": "HQ", "Service": "HQ"}


def password(name: str) -> str:
    return f"demo-{name}"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2 parameters cost ~0.1 s a hash; every test creates a handful of users."""
    monkeypatch.setattr(user_accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


@dataclass
class CRM:
    runtime: Runtime
    users: dict[str, User]

    @property
    def system(self) -> RecordService:
        return self.runtime.records()

    def as_(self, name: str) -> RecordService:
        return self.runtime.records(self.users[name].actor())

    def id(self, name: str) -> int:
        return self.users[name].id

    def get(self, entity: str, record_id: int) -> dict[str, Any]:
        return self.system.get(entity, record_id)

    def find(self, entity: str, *filters: str, actor: str | None = None, **query: Any) -> list[dict[str, Any]]:
        records = self.as_(actor) if actor else self.system
        return records.query(entity, ListQuery(filters=list(filters), limit=500, **query)).rows

    def customer(self, name: str, owner: str | None = None, **values: Any) -> dict[str, Any]:
        """A customer created by the system for `owner` (None: nobody)."""
        return self.system.create("customer", {"name": name, "owner": self.id(owner) if owner else None, **values})


@pytest.fixture
def crm(db_url: str, tmp_path: Path) -> Iterator[CRM]:
    runtime = make_runtime(db_url, STANDARD)
    runtime.files_dir = str(tmp_path / "files")
    system = runtime.records()
    people = {name: create_user(runtime, name, password(name), display_name=name.title(), roles=roles,
                                is_admin=name == "admin") for name, (roles, _) in PEOPLE.items()}
    units: dict[str, int] = {}
    for unit, parent in DEPARTMENTS.items():
        units[unit] = system.create("department", {"name": unit, "parent": units[parent] if parent else None})["id"]
    for name, (_, unit) in PEOPLE.items():
        system.create("employee", {"name": name.title(), "user": people[name].id, "department": units[unit]})
    yield CRM(runtime, people)
    runtime.engine.dispose()


@pytest.fixture
def web(crm: CRM) -> Iterator[Callable[[str], TestClient]]:
    """web("sales1") -> a TestClient signed in to the screens as that user."""
    clients: list[TestClient] = []

    def make(name: str) -> TestClient:
        client = TestClient(build_app(crm.runtime, Config(language="en", secret_key="test-secret")),
                            follow_redirects=False)
        client.__enter__()
        clients.append(client)
        login(client, name, password(name))
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(crm: CRM) -> Iterator[Callable[[str], Callable[..., httpx.Response]]]:
    """api("sales1") -> call(method, path, body=None): the JSON API with that user's bearer token."""
    clients: list[TestClient] = []

    def make(name: str) -> Callable[..., httpx.Response]:
        client = TestClient(build_app(crm.runtime, Config(language="en", secret_key="test-secret")),
                            follow_redirects=False)
        client.__enter__()
        clients.append(client)
        headers = {"Authorization": f"Bearer {create_token(crm.runtime, crm.id(name), 'tests')}",
                   "Content-Type": "application/json"}

        def call(method: str, path: str, body: Any = None) -> httpx.Response:
            content = json.dumps(body) if body is not None else None
            return client.request(method, path, content=content, headers=headers)

        return call

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def form_token(client: TestClient, path: str = "/") -> str:
    return csrf_of(client, path)
