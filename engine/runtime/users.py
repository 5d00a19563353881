"""Login users: creation with argon2-hashed passwords, roles, and password checks."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Engine, Row

from engine.i18n import Message
from engine.runtime import audit
from engine.runtime.actor import Actor
from engine.runtime.errors import ValidationFailed
from engine.runtime.service import Runtime

HASHER = PasswordHasher()
MIN_PASSWORD = 8
USERS_TTL = 30.0  # seconds another worker process may show a stale list of users in its pickers


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    roles: tuple[str, ...]
    is_admin: bool
    language: str | None

    def actor(self, language: str = "en") -> Actor:
        return Actor(self.id, self.username, self.roles, False, self.language or language)


def password_problems(username: str, password: str) -> list[Message]:
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(Message("rejected", {"message": {"en": f"The password needs at least {MIN_PASSWORD} characters.",
                                                         "zh": f"密码至少需要 {MIN_PASSWORD} 个字符。"}}))
    # The policy forbids the user name itself (in any case), the first guess of any attacker; a
    # longer password that merely contains it (the documented demo passwords do) is allowed.
    if username and username.strip().lower() == password.strip().lower():
        problems.append(Message("rejected", {"message": {"en": "The password must not be the user name.",
                                                         "zh": "密码不能与用户名相同。"}}))
    return problems


def create_user(runtime: Runtime, username: str, password: str, *, display_name: str | None = None,
                roles: tuple[str, ...] = (), is_admin: bool = False, email: str | None = None,
                language: str | None = None, conn: Connection | None = None) -> User:
    """A new active user (password checked against the policy); in `conn`'s transaction if given."""
    errors: dict[str, list[Message]] = {}
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        errors["username"] = [Message("rejected", {"message": {"en": "Use letters, digits, '.', '-' or '_' (at most 64).",
                                                              "zh": "只能使用字母、数字、“.”、“-”或“_”（最多 64 个）。"}})]
    if problems := password_problems(username, password):
        errors["password"] = problems
    for role in roles:
        if role not in runtime.registry.roles:
            errors.setdefault("roles", []).append(Message("rejected", {"message": {
                "en": f"Unknown role '{role}' (roles: {', '.join(runtime.registry.roles)}).",
                "zh": f"未知角色“{role}”。"}}))
    users = runtime.table("crm_user")
    with nullcontext(conn) if conn is not None else runtime.engine.begin() as conn:
        if not errors and conn.execute(sa.select(users.c.id).where(users.c.username == username)).first():
            errors["username"] = [Message("not_unique", {"value": username})]
        if errors:
            raise ValidationFailed(errors)
        user_id = conn.execute(sa.insert(users).values(
            username=username, display_name=display_name or username, email=email, language=language,
            password_hash=HASHER.hash(password), is_active=True, is_admin=is_admin, created_at=runtime.now(),
        ).returning(users.c.id)).scalar_one()
        if roles:
            conn.execute(sa.insert(runtime.table("crm_user_role")), [{"user_id": user_id, "role": r} for r in roles])
            audit.record(runtime, "roles_changed", username=username, conn=conn,
                         detail={"user_id": int(user_id), "before": [], "roles": list(roles)})
    users_changed(runtime)
    return User(int(user_id), username, display_name or username, tuple(roles), is_admin, language)


def set_roles(runtime: Runtime, user_id: int, roles: tuple[str, ...], *, by: Actor) -> None:
    """Replace a user's roles (audited: who changed whose roles from what to what)."""
    unknown = [r for r in roles if r not in runtime.registry.roles]
    if unknown:
        raise ValidationFailed({"roles": [Message("rejected", {"message": {
            "en": f"Unknown role(s): {', '.join(unknown)}.", "zh": f"未知角色：{', '.join(unknown)}。"}})]})
    table = runtime.table("crm_user_role")
    with runtime.engine.begin() as conn:
        before = sorted(conn.execute(sa.select(table.c.role).where(table.c.user_id == user_id)).scalars())
        conn.execute(sa.delete(table).where(table.c.user_id == user_id))
        if roles:
            conn.execute(sa.insert(table), [{"user_id": user_id, "role": r} for r in dict.fromkeys(roles)])
        audit.record(runtime, "roles_changed", user_id=by.user_id, username=by.username, conn=conn,
                     detail={"user_id": user_id, "before": before, "roles": sorted(set(roles))})


def user_statement(runtime: Runtime, *columns: Any) -> sa.Select[Any]:
    """SELECT `columns` with the user's own and one row per role (a user without roles gives one
    row with role NULL): the user and roles in one statement. Callers add FROM and WHERE."""
    users, user_roles = runtime.table("crm_user"), runtime.table("crm_user_role")
    return (sa.select(*columns, users.c.id, users.c.username, users.c.display_name, users.c.is_admin,
                      users.c.language, user_roles.c.role)
            .where(users.c.is_active.is_(True)).order_by(user_roles.c.role))


def with_roles(runtime: Runtime, joined: Any) -> Any:
    """`joined` (a FROM clause holding crm_user) with the user's roles outer-joined."""
    user_roles = runtime.table("crm_user_role")
    return joined.outerjoin(user_roles, user_roles.c.user_id == runtime.table("crm_user").c.id)


def user_of(rows: Sequence[Row[Any]]) -> User | None:
    """The User of user_statement's rows (all of one user), or None when there are none."""
    if not rows:
        return None
    first = rows[0]
    roles = tuple(r.role for r in rows if r.role is not None)
    return User(int(first.id), first.username, first.display_name, roles, bool(first.is_admin), first.language)


def load_user(runtime: Runtime, user_id: int) -> User | None:
    users = runtime.table("crm_user")
    stmt = user_statement(runtime).select_from(with_roles(runtime, users)).where(users.c.id == user_id)
    with runtime.engine.connect() as conn:
        return user_of(conn.execute(stmt).all())


# -- the list of active users for pickers, cached briefly per process ---------------------------

_picker_cache: weakref.WeakKeyDictionary[Engine, tuple[float, tuple[dict[str, Any], ...]]] = weakref.WeakKeyDictionary()
_picker_lock = threading.Lock()


def active_users(runtime: Runtime) -> list[dict[str, Any]]:
    """Active users ({id, display_name}, by name) for user pickers and filters: read at most once
    every USERS_TTL seconds per process and database (a list page shows them on every request).
    Changes through this module clear it at once in this process; other worker processes see
    them within USERS_TTL."""
    now = time.monotonic()
    cached = _picker_cache.get(runtime.engine)
    if cached is not None and now - cached[0] < USERS_TTL:
        return list(cached[1])
    table = runtime.table("crm_user")
    with runtime.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.display_name).where(table.c.is_active.is_(True))
                            .order_by(table.c.display_name)).mappings().all()
    people = tuple({"id": int(r["id"]), "display_name": r["display_name"]} for r in rows)
    with _picker_lock:
        _picker_cache[runtime.engine] = (now, people)
    return list(people)


def users_changed(runtime: Runtime) -> None:
    """Forget this process's list of users (after a user was created, renamed or deactivated)."""
    with _picker_lock:
        _picker_cache.pop(runtime.engine, None)


def check_password(runtime: Runtime, username: str, password: str) -> User | None:
    """The user if the password is right (rehashing when the hash parameters changed), else None."""
    users = runtime.table("crm_user")
    with runtime.engine.begin() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username, users.c.is_active.is_(True))).mappings().first()
        if row is None:
            HASHER.hash(password)  # spend the same time as a real check: no user-name probing by timing
            return None
        try:
            HASHER.verify(row["password_hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        if HASHER.check_needs_rehash(row["password_hash"]):
            conn.execute(sa.update(users).where(users.c.id == row["id"]).values(password_hash=HASHER.hash(password)))
    return load_user(runtime, int(row["id"]))
