"""The organisation chart behind department and subtree scopes.

The registry's `organization` names a unit entity (a tree through its parent reference) and a
member entity linking login users to units. A user's *department* is every user of the units
they belong to; their *subtree* adds every unit below those. An SME has at most a few hundred
units and people, so the whole chart is read at once (two statements) and kept for a short
time; writes to the unit or member entity in this process drop it at once, other worker
processes see the change within CACHE_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from engine.runtime.service import Runtime

CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Reach:
    """The users whose records a user reaches with department and with subtree scope."""

    department: frozenset[int]
    subtree: frozenset[int]
    units: frozenset[int]  # the units the user belongs to


@dataclass(frozen=True)
class Chart:
    children: dict[int, list[int]]
    units_of: dict[int, set[int]]  # user -> units
    users_of: dict[int, set[int]]  # unit -> users

    def below(self, units: set[int]) -> set[int]:
        seen, pending = set(units), list(units)
        while pending:
            for child in self.children.get(pending.pop(), []):
                if child not in seen:  # a cycle in bad data must not loop forever
                    seen.add(child)
                    pending.append(child)
        return seen

    def reach(self, user_id: int) -> Reach:
        mine = self.units_of.get(user_id, set())
        department = {u for unit in mine for u in self.users_of.get(unit, ())} | {user_id}
        subtree = {u for unit in self.below(mine) for u in self.users_of.get(unit, ())} | {user_id}
        return Reach(frozenset(department), frozenset(subtree), frozenset(mine))


class OrgChart:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._chart: Chart | None = None
        self._loaded = 0.0
        self._lock = threading.Lock()

    @property
    def entities(self) -> tuple[str, ...]:
        org = self.runtime.registry.organization
        return (org.unit, org.member) if org else ()

    def invalidate(self) -> None:
        self._chart = None

    def reach(self, user_id: int) -> Reach:
        return self.chart().reach(user_id)

    def chart(self) -> Chart:
        with self._lock:
            if self._chart is None or time.monotonic() - self._loaded > CACHE_SECONDS:
                self._chart = self._load()
                self._loaded = time.monotonic()
            return self._chart

    def _load(self) -> Chart:
        org = self.runtime.registry.organization
        children: dict[int, list[int]] = defaultdict(list)
        units_of: dict[int, set[int]] = defaultdict(set)
        users_of: dict[int, set[int]] = defaultdict(set)
        if org is None:
            return Chart({}, {}, {})
        units, members = self.runtime.table(org.unit), self.runtime.table(org.member)
        with self.runtime.engine.connect() as conn:
            for unit_id, parent in conn.execute(sa.select(units.c.id, units.c[org.parent])
                                                .where(units.c.deleted_at.is_(None))):
                if parent is not None:
                    children[int(parent)].append(int(unit_id))
            stmt = sa.select(members.c[org.member_user], members.c[org.member_unit]).where(
                members.c.deleted_at.is_(None), members.c[org.member_user].is_not(None),
                members.c[org.member_unit].is_not(None))
            for user_id, unit_id in conn.execute(stmt):
                units_of[int(user_id)].add(int(unit_id))
                users_of[int(unit_id)].add(int(user_id))
        return Chart(dict(children), dict(units_of), dict(users_of))
