"""Hooks: plugin functions run around validation, saving, deletion and stage changes.

Hooks come from each active pack's hooks.py (functions marked with engine.plugins.hook) and
from installed distributions' `crm.plugins` entry points (a module to scan, or a callable that
receives the HookRegistry). They run inside the record's transaction: a hook that raises, or
calls ctx.reject(), rolls the whole change back.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

from engine.i18n import Message
from engine.metadata.registry import Action, Entity, PackInfo
from engine.runtime.actor import SYSTEM, Actor
from engine.runtime.errors import Rejected

if TYPE_CHECKING:
    from engine.runtime.service import RecordService

EVENTS = (
    "before_validate", "after_validate", "before_save", "after_save",
    "before_delete", "after_delete", "before_stage_change", "after_stage_change",
)
CREATE_EVENTS = ("before_validate", "after_validate", "before_stage_change", "before_save", "after_save",
                 "after_stage_change")


class PackCode:
    """What hooks, actions and jobs share: settings, the packs' messages, refusing and warning."""

    records: RecordService
    warnings: list[Message]

    def reject(self, message: str | dict[str, str], field: str = "") -> None:
        """Refuse: roll the whole change back with this message (on `field`, or the record)."""
        raise Rejected({field: [Message("rejected", {"message": message})]})

    def warn(self, message: str | dict[str, str]) -> None:
        """Save anyway, but tell the user (shown after saving; X-CRM-Warnings in the API)."""
        self.warnings.append(Message("rejected", {"message": message}))

    def message(self, key: str, **params: Any) -> dict[str, str]:
        """A message from the packs' locale files, in every language (for reject and warn)."""
        registry = self.records.runtime.registry
        return {lang: registry.message(key, lang, **params) for lang in ("en", "zh")}

    def setting(self, key: str) -> Any:
        """A system setting declared by a pack (the administrator's value, else its default)."""
        return self.records.runtime.setting(key)

    def may(self, entity: str, action: str, record: Mapping[str, Any] | None = None) -> bool:
        """Whether the user behind this change may do `action` on `record` by their own roles
        (scope, shares, pool). `ctx.records` is trusted and checks nothing, so a hook that acts on
        the user's behalf asks here first. Jobs run as the system, which may do anything."""
        actor: Actor = getattr(self, "actor", SYSTEM)
        if actor.user_id is None:
            return True
        # Writes made through ctx.records carry the user's id with system rights; ask as the user.
        user = replace(actor, is_system=False)
        return self.records.runtime.records(user, self.records.conn).allows(entity, action, record)


@dataclass
class HookContext(PackCode):
    """What a hook sees. In before_* hooks, changes to `record` are saved."""

    entity: Entity
    event: str
    record: dict[str, Any]  # the values being saved (before_*) or as saved (after_*)
    old: dict[str, Any] | None  # the stored values before this change; None on create
    actor: Actor
    records: RecordService  # the record service, bound to the same transaction
    stage_field: str | None = None
    is_new: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[Message] = field(default_factory=list)
    # Shared by the rows of one batch write (`RecordService.create_many`: imports); None for a
    # single write. A hook's prefetch function fills it once for the batch (see plugins.hook).
    batch: dict[str, Any] | None = None

    def changed(self, name: str) -> bool:
        """True when this change sets `name` to a different value."""
        return name in self.record and (self.old is None or self.old.get(name) != self.record.get(name))


@dataclass
class ActionContext(PackCode):
    """What an @action function sees: the record, the user's inputs, and a record service bound
    to the same transaction that may write beyond the user's own scope (the action is the gate)."""

    entity: Entity
    action: Action
    record: dict[str, Any]
    inputs: dict[str, Any]
    actor: Actor
    records: RecordService
    outcome: dict[str, Any] = field(default_factory=dict)
    warnings: list[Message] = field(default_factory=list)

    def done(self, message: str | dict[str, str] | None = None, open: tuple[str, int] | None = None) -> None:
        """Say what happened, and optionally which record the user should see next."""
        if message is not None:
            self.outcome["message"] = Message("rejected", {"message": message})
        if open is not None:
            self.outcome["open"] = open


@dataclass
class JobContext(PackCode):
    """What a @job function sees: a record service acting as the system, and the settings."""

    name: str
    records: RecordService
    report: list[str] = field(default_factory=list)  # lines printed by `crm jobs run`
    warnings: list[Message] = field(default_factory=list)


Hook = Callable[[HookContext], Any]
ActionFunction = Callable[[ActionContext], Any]
JobFunction = Callable[[JobContext], Any]


class HookRegistry:
    def __init__(self) -> None:
        self._hooks: dict[tuple[str, str], list[Hook]] = defaultdict(list)
        self.actions: dict[tuple[str, str], ActionFunction] = {}
        self.jobs: dict[str, JobFunction] = {}

    def add(self, entity: str, event: str, fn: Hook) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown hook event {event!r}")
        self._hooks[(entity, event)].append(fn)

    def add_module(self, module: ModuleType) -> None:
        for value in vars(module).values():
            for entity, event in getattr(value, "__crm_hooks__", ()):
                self.add(entity, event, value)
            for entity, key in getattr(value, "__crm_actions__", ()):
                self.actions[(entity, key)] = value
            if getattr(value, "__crm_job__", None):
                self.jobs[value.__crm_job__] = value

    def for_event(self, entity: str, event: str) -> list[Hook]:
        return self._hooks.get((entity, event), []) + self._hooks.get(("*", event), [])

    def run(self, event: str, ctx: HookContext) -> None:
        for fn in self.for_event(ctx.entity.key, event):
            ctx.event = event
            fn(ctx)

    def batch_safe(self, entity: str, events: Iterable[str]) -> bool:
        """Whether every hook of `entity` on `events` may run a batch step by step (plugins.hook)."""
        return all(getattr(fn, "__crm_batch__", False) for event in events for fn in self.for_event(entity, event))

    def run_each(self, event: str, contexts: Mapping[int, HookContext]) -> dict[int, dict[str, list[Message]]]:
        """Run `event`'s hooks for the rows of a batch write, hook by hook: the hook's prefetch
        function (if it has one) once with the contexts of all rows, then the hook for each row.
        A row that a hook rejects drops out of the rest; returns {row: its errors}."""
        failed: dict[int, dict[str, list[Message]]] = {}
        if not contexts:
            return failed
        entity = next(iter(contexts.values())).entity.key
        for fn in self.for_event(entity, event):
            alive = {i: ctx for i, ctx in contexts.items() if i not in failed}
            for ctx in alive.values():
                ctx.event = event
            prefetch = getattr(fn, "__crm_prefetch__", None)
            if prefetch is not None and alive:
                prefetch(list(alive.values()))
            for i, ctx in alive.items():
                try:
                    fn(ctx)
                except Rejected as exc:
                    failed[i] = exc.errors
        return failed

    @classmethod
    def load(cls, packs: Iterable[PackInfo], use_entry_points: bool = True) -> HookRegistry:
        hooks = cls()
        for pack in packs:
            if pack.hooks:
                hooks.add_module(_import_file(f"crm_pack_hooks.{pack.name}", pack.hooks))
        if use_entry_points:
            for ep in entry_points(group="crm.plugins"):
                loaded = ep.load()
                if isinstance(loaded, ModuleType):
                    hooks.add_module(loaded)
                else:
                    loaded(hooks)
        return hooks


def _import_file(name: str, path: str) -> ModuleType:
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == path:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
