"""Who is acting: a signed-in user (with roles) or the system itself (migrations, hooks, jobs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    username: str = ""
    roles: tuple[str, ...] = ()
    is_system: bool = False
    language: str = "en"


SYSTEM = Actor(user_id=None, username="system", is_system=True)
