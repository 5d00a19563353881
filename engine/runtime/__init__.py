"""Runtime: tables from the registry, schema sync, the record service, queries and hooks.

Public surface (see docs/plugins.md):
    Runtime(registry, engine)                     the wired-up runtime for one database
    runtime.records(actor) -> RecordService       the only writer of records
    Actor                                         who is acting
"""

from engine.runtime.actor import SYSTEM, Actor
from engine.runtime.errors import (
    BadQuery,
    Conflict,
    Forbidden,
    NotFound,
    RecordError,
    Rejected,
    ValidationFailed,
)
from engine.runtime.service import Runtime

__all__ = [
    "SYSTEM", "Actor", "BadQuery", "Conflict", "Forbidden", "NotFound", "RecordError", "Rejected",
    "Runtime", "ValidationFailed",
]
