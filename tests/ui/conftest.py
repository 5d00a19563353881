"""Fixtures of the web tests: the standard CRM served by the real application over a fresh
database (SQLite and PostgreSQL), demo-like users, and signed-in HTTP clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from engine.config import Config
from engine.runtime.service import Runtime
from engine.runtime.users import User, create_user
from engine.ui.app import build_app
from tests.conftest import ROOT, make_runtime

STANDARD = ROOT / "packs" / "standard_crm"
PASSWORDS = {"admin": "demo-admin", "manager": "demo-manager", "sales1": "demo-sales1", "sales2": "demo-sales2",
             "service1": "demo-service1"}


@pytest.fixture
def crm(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """The standard CRM pack migrated into a fresh database, with files under tmp_path."""
    rt = make_runtime(db_url, STANDARD)
    rt.files_dir = str(tmp_path / "files")
    yield rt
    rt.engine.dispose()


@pytest.fixture
def people(crm: Runtime) -> dict[str, User]:
    roles = {"admin": ("admin",), "manager": ("sales_manager",), "sales1": ("salesperson",),
             "sales2": ("salesperson",), "service1": ("service_agent",)}
    return {name: create_user(crm, name, PASSWORDS[name], display_name=name.title(), roles=roles[name],
                              is_admin=name == "admin") for name in roles}


@pytest.fixture
def app_config() -> Config:
    return Config(language="en", secret_key="test-secret")


@pytest.fixture
def client_for(crm: Runtime, people: dict[str, User], app_config: Config) -> Iterator[Callable[..., TestClient]]:
    """client_for("sales1") -> a TestClient signed in as that user (None: anonymous)."""
    clients: list[TestClient] = []

    def make(username: str | None = None) -> TestClient:
        client = TestClient(build_app(crm, app_config), follow_redirects=False)
        client.__enter__()
        clients.append(client)
        if username:
            login(client, username, PASSWORDS[username])
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def csrf_of(client: TestClient, path: str = "/login") -> str:
    """The CSRF token a page's forms carry."""
    html = client.get(path).text
    match = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: TestClient, username: str, password: str) -> None:
    token = csrf_of(client)
    response = client.post("/login", data={"username": username, "password": password, "_csrf": token})
    assert response.status_code == 303, response.text[:500]
