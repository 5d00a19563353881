"""The audit log: security-relevant events, kept apart from record history.

Sign-ins (success and failure, with the address), exports (who, what, how many rows, which
filters), purges, changes to users' roles and to role permissions, and demo data loaded into the
database (so a pack's demo runs once). Written in the caller's
transaction when there is one, so an event is logged exactly when its change commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from engine.runtime.service import Runtime

EVENTS = ("login", "login_failed", "logout", "export", "purge", "roles_changed", "role_permissions_changed",
          "password_changed", "demo_loaded")


def record(runtime: Runtime, event: str, *, user_id: int | None = None, username: str = "", address: str = "",
           entity: str | None = None, record_id: int | None = None, detail: dict[str, Any] | None = None,
           conn: Connection | None = None) -> None:
    assert event in EVENTS, event
    row = {"at": runtime.now(), "event": event, "user_id": user_id, "username": username[:64],
           "address": (address or "")[:64], "entity": entity, "record_id": record_id,
           "detail": json.dumps(detail or {}, ensure_ascii=False, default=str)}
    table = runtime.table("crm_audit")
    if conn is not None:
        conn.execute(sa.insert(table).values(**row))
        return
    with runtime.engine.begin() as own:
        own.execute(sa.insert(table).values(**row))


def entries(runtime: Runtime, *, events: Sequence[str] = (), username: str = "", limit: int = 200,
            before_id: int | None = None) -> list[dict[str, Any]]:
    """The newest entries first, optionally of some events or one user; page with before_id."""
    table = runtime.table("crm_audit")
    stmt = sa.select(table).order_by(table.c.id.desc()).limit(max(1, min(limit, 1000)))
    if events:
        stmt = stmt.where(table.c.event.in_(list(events)))
    if username:
        stmt = stmt.where(table.c.username == username)
    if before_id:
        stmt = stmt.where(table.c.id < before_id)
    with runtime.engine.connect() as conn:
        return [{**row, "detail": json.loads(row["detail"] or "{}")} for row in conn.execute(stmt).mappings()]
