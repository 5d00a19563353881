"""Personal API tokens: shown once at creation, stored as sha256, revocable, with last use."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from engine.runtime.service import Runtime
from engine.runtime.users import User, load_user
from engine.ui.sessions import digest

PREFIX = "crm_"


def create_token(runtime: Runtime, user_id: int, name: str) -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    tokens = runtime.table("crm_api_token")
    with runtime.engine.begin() as conn:
        conn.execute(sa.insert(tokens).values(user_id=user_id, name=name.strip()[:100] or "API",
                                              token_hash=digest(token), prefix=token[:12],
                                              created_at=runtime.now()))
    return token


def list_tokens(runtime: Runtime, user_id: int) -> list[dict[str, Any]]:
    tokens = runtime.table("crm_api_token")
    stmt = (sa.select(tokens.c.id, tokens.c.name, tokens.c.prefix, tokens.c.created_at, tokens.c.last_used_at)
            .where(tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None)).order_by(tokens.c.id))
    with runtime.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def revoke_token(runtime: Runtime, user_id: int, token_id: int) -> bool:
    tokens = runtime.table("crm_api_token")
    with runtime.engine.begin() as conn:
        done = conn.execute(sa.update(tokens).where(tokens.c.id == token_id, tokens.c.user_id == user_id,
                                                    tokens.c.revoked_at.is_(None))
                            .values(revoked_at=runtime.now()))
    return bool(done.rowcount)


def token_user(runtime: Runtime, token: str) -> User | None:
    """The user a bearer token belongs to (recording its use), or None if unknown or revoked."""
    if not token.startswith(PREFIX):
        return None
    tokens = runtime.table("crm_api_token")
    key = digest(token)
    with runtime.engine.connect() as conn:
        row = conn.execute(sa.select(tokens.c.id, tokens.c.user_id, tokens.c.last_used_at)
                           .where(tokens.c.token_hash == key, tokens.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    now = runtime.now()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:  # at most one write a minute
        with runtime.engine.begin() as conn:
            conn.execute(sa.update(tokens).where(tokens.c.id == row.id).values(last_used_at=now))
    return load_user(runtime, int(row.user_id))
