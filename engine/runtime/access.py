"""Access decisions: which records an actor may read or change, as SQL and as a yes/no per
record, which fields they may see or change, and why.

Roles grant, per entity and action, a scope:

- `none`: nothing;
- `own`: records the actor owns, plus records shared with them (read shares for read, edit
  shares for read and edit);
- `department`: `own`, plus records owned by anyone in the actor's department(s);
- `subtree`: `department`, plus records owned by anyone in a department below theirs;
- `all`: every record.

A user's roles combine by taking the most permissive scope per entity and action. Pooled
records (the entity's `pool` field is true) are also open to the actions a role lists under
`pool`. Field rules (`hidden`, `read_only`) combine the same way: a field is hidden only when
every role of the user hides it; `internal` fields are hidden from every user. The system actor
(and hooks, which act with system permissions) may do everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from engine.metadata.registry import SCOPES, Entity, Registry
from engine.runtime.actor import Actor

if TYPE_CHECKING:
    from engine.runtime.organization import OrgChart

SHARE_LEVELS = ("read", "edit")  # what a share grants; edit includes read
FIELD_LEVELS = ("hidden", "read_only", "visible")  # least to most permissive

Share = Callable[[], str | None]  # the actor's share level on a record, looked up only if needed


@dataclass(frozen=True)
class Decision:
    action: str
    allowed: bool
    reason: dict[str, str]  # {"en": ..., "zh": ...}


def shared_enough(level: str | None, action: str) -> bool:
    return level is not None and (action == "read" or (action == "edit" and level == "edit"))


class Access:
    def __init__(self, registry: Registry, org: OrgChart | None = None, shares: sa.Table | None = None) -> None:
        self.registry = registry
        self.org = org
        self.shares = shares

    # -- grants ---------------------------------------------------------------------------------
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

    def reached_users(self, actor: Actor, scope: str) -> frozenset[int]:
        """Owners whose records `scope` opens to the actor (department/subtree), besides the actor."""
        if actor.user_id is None or self.org is None or scope not in ("department", "subtree"):
            return frozenset()
        reach = self.org.reach(actor.user_id)
        return reach.department if scope == "department" else reach.subtree

    # -- SQL ------------------------------------------------------------------------------------
    def clause(self, actor: Actor, entity: Entity, table: sa.Table, action: str = "read") -> sa.ColumnElement[bool] | None:
        """SQL restricting `table` to the rows `actor` may act on; None when unrestricted."""
        scope = self.scope(actor, entity, action)
        if scope == "all":
            return None
        branches = []  # (column, test) pairs OR-ed together
        if scope != "none" and actor.user_id is not None:
            others = self.reached_users(actor, scope) - {actor.user_id}
            owners = [actor.user_id, *sorted(others)]
            branches.append((table.c.owner, lambda c: c.in_(owners) if others else c == actor.user_id))
            if action in SHARE_LEVELS and self.shares is not None:
                shared = sa.select(self.shares.c.record_id).where(self.shares.c.entity == entity.key,
                                                                  self.shares.c.user_id == actor.user_id)
                if action == "edit":
                    shared = shared.where(self.shares.c.access == "edit")
                branches.append((table.c.id, lambda c: c.in_(shared)))
        if self.pool_allows(actor, entity, action):
            assert entity.pool is not None
            branches.append((table.c[entity.pool], lambda c: c.is_(True)))
        if not branches:
            return sa.false()
        if len(branches) == 1:
            column, test = branches[0]
            return test(column)  # type: ignore[no-any-return]
        # SQLite plans an OR of indexable branches as a MULTI-INDEX OR: it collects every row in
        # scope (the whole pool) and sorts them for one page. Unindexed branches let it walk the
        # list's sort index and stop at the page's end (76 -> 0.7 ms for a salesperson's page at
        # 100k customers); other conditions (a related tab's reference, a search's candidates)
        # keep their indexes. PostgreSQL weighs the LIMIT itself and gets the plain columns.
        return sa.or_(*[test(Unindexed(column)) for column, test in branches])

    # -- one record -----------------------------------------------------------------------------
    def allows(self, actor: Actor, entity: Entity, action: str, record: Mapping[str, Any] | None,
               share: Share | None = None) -> bool:
        """May `actor` do `action` on `record` (None: on a new record, i.e. create)?"""
        return self.decide(actor, entity, action, record, share).allowed

    def decide(self, actor: Actor, entity: Entity, action: str, record: Mapping[str, Any] | None,
               share: Share | None = None) -> Decision:
        scope = self.scope(actor, entity, action)
        roles = ", ".join(actor.roles) or "-"

        def says(allowed: bool, en: str, zh: str) -> Decision:
            return Decision(action, allowed, {"en": en, "zh": zh})

        if actor.is_system:
            return says(True, "the system may do everything", "系统可执行一切操作")
        if scope == "all":
            return says(True, f"a role ({roles}) grants '{action}' on all records",
                        f"角色（{roles}）授予对全部记录的“{action}”权限")
        if record is None:
            allowed = scope != "none" or self.pool_allows(actor, entity, action)
            return says(allowed, f"scope '{scope}' for '{action}'", f"“{action}”的范围为“{scope}”")
        owner = record.get("owner")
        if scope != "none" and actor.user_id is not None:
            if owner == actor.user_id:
                return says(True, f"you own it and your scope for '{action}' is '{scope}'",
                            f"您是负责人，“{action}”的范围为“{scope}”")
            if owner in self.reached_users(actor, scope):
                where = "your department" if scope == "department" else "your department or one below it"
                zh = "您的部门" if scope == "department" else "您的部门或下级部门"
                return says(True, f"its owner is in {where} (scope '{scope}')", f"负责人属于{zh}（范围“{scope}”）")
            if action in SHARE_LEVELS and share is not None:
                level = share()
                if shared_enough(level, action):
                    return says(True, f"it is shared with you ({level})", f"已共享给您（{level}）")
        if entity.pool and record.get(entity.pool) and self.pool_allows(actor, entity, action):
            return says(True, f"it is in the pool and a role grants '{action}' on pooled records",
                        f"该记录在公海中，角色允许对公海记录执行“{action}”")
        if scope == "none":
            return says(False, f"no role ({roles}) grants '{action}' on {entity.key}",
                        f"没有角色（{roles}）授予对{entity.label.get('zh', entity.key)}的“{action}”权限")
        return says(False, f"your scope for '{action}' is '{scope}' and this record is outside it",
                    f"您对“{action}”的范围为“{scope}”，此记录不在其中")

    # -- fields ---------------------------------------------------------------------------------
    def field_rules(self, actor: Actor, entity: Entity) -> dict[str, str]:
        """Fields the actor may not see ("hidden") or not change ("read_only") on this entity."""
        if actor.is_system:
            return {}
        roles = [self.registry.roles[r] for r in actor.roles if r in self.registry.roles]
        prefix = entity.key + "."
        named = {key[len(prefix):] for role in roles for key in role.fields if key.startswith(prefix)}
        rules = {f.name: "hidden" for f in entity.fields.values() if f.internal}
        for name in named - set(rules):
            best = max((role.fields.get(prefix + name, "visible") for role in roles), key=FIELD_LEVELS.index)
            if best != "visible":
                rules[name] = best
        return rules

    def hidden(self, actor: Actor, entity: Entity) -> frozenset[str]:
        return frozenset(name for name, rule in self.field_rules(actor, entity).items() if rule == "hidden")


class Unindexed(sa.sql.expression.ColumnElement[Any]):
    """A column the SQLite planner may not use an index for (`+col`); the plain column elsewhere."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _unindexed(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(Unindexed, "sqlite")
def _unindexed_sqlite(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.column, **kw))
