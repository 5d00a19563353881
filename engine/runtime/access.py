"""Access decisions: which records an actor may read or change, as SQL and as a yes/no per record.

Roles grant, per entity and action, a scope (none < own < department < subtree < all); a user's
roles combine by taking the most permissive scope. Pooled records (the entity's `pool` field is
true) are open to the actions a role lists under `pool`. The system actor may do everything.

Department and subtree scopes need the organisation model of the permissions work; until then
they are enforced as `own` (never wider than declared).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.metadata.registry import SCOPES, Entity, Registry
from engine.runtime.actor import Actor


class Access:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def scope(self, actor: Actor, entity: Entity, action: str) -> str:
        if actor.is_system:
            return "all"
        best = "none"
        for key in actor.roles:
            role = self.registry.roles.get(key)
            if role is None:
                continue
            scope = role.scope(entity.key, action)
            if SCOPES.index(scope) > SCOPES.index(best):
                best = scope
        return best

    def pool_allows(self, actor: Actor, entity: Entity, action: str) -> bool:
        if entity.pool is None:
            return False
        return any(action in self.registry.roles[r].pool_actions(entity.key) for r in actor.roles if r in self.registry.roles)

    def clause(self, actor: Actor, entity: Entity, table: sa.Table, action: str = "read") -> sa.ColumnElement[bool] | None:
        """SQL restricting `table` to the rows `actor` may act on; None when unrestricted."""
        scope = self.scope(actor, entity, action)
        if scope == "all":
            return None
        parts: list[sa.ColumnElement[bool]] = []
        if scope != "none" and actor.user_id is not None:
            parts.append(table.c.owner == actor.user_id)
        if self.pool_allows(actor, entity, action):
            assert entity.pool is not None
            parts.append(table.c[entity.pool].is_(True))
        return sa.or_(*parts) if parts else sa.false()

    def allows(self, actor: Actor, entity: Entity, action: str, record: dict[str, Any] | None) -> bool:
        """May `actor` do `action` on `record` (None: on a new record, i.e. create)?"""
        scope = self.scope(actor, entity, action)
        if scope == "all":
            return True
        if record is None:
            return scope != "none"
        if scope != "none" and actor.user_id is not None and record.get("owner") == actor.user_id:
            return True
        return bool(entity.pool and record.get(entity.pool) and self.pool_allows(actor, entity, action))
