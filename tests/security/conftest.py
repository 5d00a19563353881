"""Shared pieces of the security tests: a database per backend that lives for a whole module
(populating the standard CRM and signing users in is too slow to repeat for every case), the
application with signed-in clients, and an *independent* model of the permission rules.

The model below is written from the rules as docs/security.md states them, not from
engine/runtime/access.py, so that the tests compare the engine against the specification:

- a role grants, per entity and action, one of the scopes none < own < department < subtree < all
  (an entity's grant, else the role's `"*"` grant, else none; restore and purge that a role does
  not declare follow its delete scope);
- a user's roles combine by taking the most permissive scope;
- own: the user owns the record; department: its owner belongs to a unit the user belongs to;
  subtree: its owner belongs to such a unit or to one below it; all: every record;
- any scope but none also opens records shared with the user: a read share for read, an edit share
  for read and edit (shares grant nothing else);
- a pooled record (the entity's pool field is true) is open to the actions one of the user's roles
  lists under `pool` for the entity, whatever its owner and the user's scope.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from engine.config import Config
from engine.metadata.registry import Entity, Registry
from engine.runtime.service import Runtime
from engine.runtime.users import User, create_user
from engine.ui.app import build_app
from tests.conftest import DATABASES, ROOT, empty_database

STANDARD = ROOT / "packs" / "standard_crm"
SCOPE_ORDER = ("none", "own", "department", "subtree", "all")  # least to most permissive
SHARE_GRANTS = {"read": {"read"}, "edit": {"read", "edit"}}  # what each share level opens

# Text that must never reach a caller: tracebacks, SQL, driver names, file paths of the server.
LEAKS = ("Traceback", "SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "sqlalchemy", "psycopg", "sqlite3",
         'File "', "OperationalError", "ProgrammingError", "IntegrityError", "syntax error")


# -- a database per backend for a whole module ----------------------------------------------------

@pytest.fixture(scope="module", params=DATABASES)
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like tests/conftest.py's db_url, but one empty database for every test of a module."""
    with empty_database(request.param, tmp_path_factory.mktemp("security")) as url:
        yield url


# -- HTTP helpers ---------------------------------------------------------------------------------

def password_of(username: str) -> str:
    return f"pw-{username}-2026"


class Browser:
    """A signed-in user's TestClient: session cookie for screens, bearer token for the API."""

    def __init__(self, client: TestClient, csrf: str, token: str) -> None:
        self.client = client
        self.csrf = csrf
        self.token = token

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, data: Mapping[str, Any] | None = None, **kw: Any) -> httpx.Response:
        """A form POST with the page's CSRF token."""
        return self.client.post(path, data={"_csrf": self.csrf, **(data or {})}, **kw)

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)


def csrf_from(html: str) -> str:
    match = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str) -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    response = client.post("/login", data={"username": username, "password": password,
                                           "_csrf": csrf_from(client.get("/login").text)})
    assert response.status_code == 303, response.text[:300]
    return csrf_from(client.get("/settings").text)


def assert_clean(response: httpx.Response) -> None:
    """No server internals in a response, and never a 500."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text[:800])


# -- the application over one runtime -------------------------------------------------------------

class Site:
    """The real application over a runtime, with one Browser per signed-in user."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.app = build_app(runtime, Config(language="en", secret_key="security-tests"))
        self.clients: list[TestClient] = []
        self.browsers: dict[str, Browser] = {}

    def client(self) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)
        client.__enter__()
        self.clients.append(client)
        return client

    def browser(self, user: User) -> Browser:
        if user.username not in self.browsers:
            from engine.ui.tokens import create_token

            client = self.client()
            csrf = sign_in(client, user.username, password_of(user.username))
            self.browsers[user.username] = Browser(client, csrf, create_token(self.runtime, user.id, "security"))
        return self.browsers[user.username]

    def close(self) -> None:
        for client in self.clients:
            client.__exit__(None, None, None)


# -- the independent model ------------------------------------------------------------------------

@dataclass
class Org:
    """Units (name -> parent name) and the units each user belongs to."""

    parent: dict[str, str | None]
    units_of: dict[str, set[str]]

    def ancestors(self, unit: str) -> set[str]:
        seen: set[str] = set()
        up = self.parent.get(unit)
        while up is not None and up not in seen:
            seen.add(up)
            up = self.parent.get(up)
        return seen

    def same_unit(self, user: str, owner: str) -> bool:
        return bool(self.units_of.get(user, set()) & self.units_of.get(owner, set()))

    def below(self, user: str, owner: str) -> bool:
        """Does the owner belong to a unit strictly below one of the user's?"""
        mine = self.units_of.get(user, set())
        return any(self.ancestors(unit) & mine for unit in self.units_of.get(owner, set()))

    def above(self, user: str, owner: str) -> bool:
        return self.below(owner, user)

    def relation(self, user: str, owner: str) -> str:
        """own, department, below, above or elsewhere: where the owner stands from the user."""
        if user == owner:
            return "own"
        if self.same_unit(user, owner):
            return "department"
        if self.below(user, owner):
            return "below"
        if self.above(user, owner):
            return "above"
        return "elsewhere"


@dataclass
class Rec:
    """A record the test created, with what decides access to it."""

    entity: str
    id: int
    owner: str
    title: str
    shares: dict[str, str] = field(default_factory=dict)  # user name -> read | edit
    pooled: bool = False
    kind: str = "plain"  # plain, shared, pool, parent


class Model:
    def __init__(self, registry: Registry, org: Org, roles_of: Mapping[str, Sequence[str]]) -> None:
        self.registry = registry
        self.org = org
        self.roles_of = roles_of

    def granted(self, role: str, entity: str, action: str) -> str:
        permissions = self.registry.roles[role].permissions
        for holder in (entity, "*"):
            if action in permissions.get(holder, {}):
                return permissions[holder][action]
        return self.granted(role, entity, "delete") if action in ("restore", "purge") else "none"

    def scope(self, user: str, entity: str, action: str) -> str:
        best = "none"
        for role in self.roles_of[user]:
            granted = self.granted(role, entity, action)
            if SCOPE_ORDER.index(granted) > SCOPE_ORDER.index(best):
                best = granted
        return best

    def pool_opens(self, user: str, entity: str, action: str) -> bool:
        if self.registry.entity(entity).pool is None:
            return False
        for key in self.roles_of[user]:
            pool = self.registry.roles[key].pool
            if action in (pool.get(entity) or pool.get("*") or ()):
                return True
        return False

    def somewhere(self, user: str, entity: str, action: str) -> bool:
        """May the user do `action` on some record of the entity (menus, buttons, create)?"""
        return self.scope(user, entity, action) != "none" or self.pool_opens(user, entity, action)

    def may(self, user: str, entity: str, action: str, rec: Rec | None) -> bool:
        """May `user` do `action` on `rec` (None: a new record)?"""
        scope = self.scope(user, entity, action)
        if scope == "all":
            return True
        if rec is None:
            return self.somewhere(user, entity, action)
        if scope != "none":
            relation = self.org.relation(user, rec.owner)
            if relation == "own":
                return True
            if scope in ("department", "subtree") and relation == "department":
                return True
            if scope == "subtree" and relation == "below":
                return True
            if action in SHARE_GRANTS.get(rec.shares.get(user, ""), set()):
                return True
        return rec.pooled and self.pool_opens(user, entity, action)

    # -- write outcomes: "ok", "forbidden" or "not_found" (never a hint that a record exists) -----
    def refusal(self, user: str, rec: Rec) -> str:
        return "forbidden" if self.may(user, rec.entity, "read", rec) else "not_found"

    def simple(self, user: str, rec: Rec, action: str) -> str:
        """edit, delete, share: one check of the action against the record as it is."""
        return "ok" if self.may(user, rec.entity, action, rec) else self.refusal(user, rec)

    def assign(self, user: str, rec: Rec, target: str) -> str:
        """Give `rec` to `target`: edit and assign it as it is, then edit it and assign it as it
        will be (a user may not move a record out of their edit scope or to an owner beyond
        their assign scope). A refusal is 404 while the record is unreadable."""
        after = Rec(rec.entity, rec.id, target, rec.title, dict(rec.shares), rec.pooled)
        given = Rec(rec.entity, 0, target, rec.title, {}, rec.pooled)  # the new owner alone: no shares
        for action, state in (("edit", rec), ("assign", rec), ("edit", after)):
            if not self.may(user, rec.entity, action, state):
                return "forbidden" if self.may(user, rec.entity, "read", state) else "not_found"
        return "ok" if self.may(user, rec.entity, "assign", given) else "forbidden"


# -- minimal valid data for any entity ------------------------------------------------------------

def minimal_values(registry: Registry, entity: Entity, parents: Mapping[str, int], tag: str) -> dict[str, Any]:
    """The required fields without defaults, filled with valid values; `tag` goes into text."""
    values: dict[str, Any] = {}
    for f in entity.user_fields:
        if not f.required or f.default is not None or f.kind.derived:
            continue
        if f.type == "reference":
            values[f.name] = parents[str(f.target)]
        elif f.type in ("choice", "stage"):
            values[f.name] = f.picklist.options[0].key if f.picklist else f.stages[0].key  # type: ignore[union-attr]
        elif f.type in ("integer",):
            values[f.name] = 1
        elif f.type in ("decimal", "money", "percent"):
            values[f.name] = "1"
        elif f.type == "boolean":
            values[f.name] = True
        elif f.type == "email":
            values[f.name] = f"{uuid.uuid4().hex[:8]}@example.com"
        elif f.type == "phone":
            values[f.name] = "010-12345678"
        elif f.type == "url":
            values[f.name] = "https://example.com/"
        else:  # string, text and anything typed as text
            values[f.name] = f"{tag} {uuid.uuid4().hex[:6]}"
    return values


def text_field(entity: Entity, rules: Mapping[str, str]) -> str:
    """A plain (not rich, not unique) text or string field the rules leave editable."""
    for kind in ("text", "string"):
        for f in entity.user_fields:
            if (f.type == kind and not f.required and not f.unique and not f.read_only and f.name not in rules
                    and not f.options.get("rich") and f.name != entity.title):
                return f.name
    raise AssertionError(f"{entity.key} has no plain text field")


def files_dir(tmp: Path) -> str:
    path = tmp / "files"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def make_user(runtime: Runtime, name: str, roles: Sequence[str], *, is_admin: bool = False) -> User:
    return create_user(runtime, name, password_of(name), display_name=name.replace("_", " ").title(),
                       roles=tuple(roles), is_admin=is_admin)
