"""The public plugin API for hook writers (see docs/plugins.md).

    from engine.plugins import hook, HookContext

    @hook("customer", "before_save")
    def fill_mnemonic(ctx: HookContext) -> None:
        ctx.record["mnemonic"] = initials(ctx.record.get("name"))

Events: before_validate, after_validate, before_save, after_save, before_delete, after_delete,
before_stage_change, after_stage_change. Entity "*" means every entity. `ctx.reject(message,
field=None)` refuses the change with a message ({"en": ..., "zh": ...} or a plain string);
`ctx.warn(message)` saves but tells the user.

`@action(entity, key)` runs a record action declared in the entity's `actions:`; `@job(name)`
is a scheduled job run by `crm jobs run`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.runtime.hooks import EVENTS, ActionContext, HookContext, JobContext

__all__ = ["EVENTS", "ActionContext", "HookContext", "JobContext", "action", "hook", "job"]

HookFunction = Callable[[HookContext], Any]
PrefetchFunction = Callable[[list[HookContext]], Any]
ActionFunction = Callable[[ActionContext], Any]
JobFunction = Callable[[JobContext], Any]


def hook(entity: str, *events: str, batch: bool = False,
         prefetch: PrefetchFunction | None = None) -> Callable[[HookFunction], HookFunction]:
    """Mark a function as a hook for `entity` on `events`; the pack loader registers it.

    Batch writes (CSV imports: `RecordService.create_many`) run each step for all the rows of a
    batch before the next step, which is much faster, but only when every hook of the entity's
    create path says it may be run so:

    - `batch=True`: the hook does not depend on the other rows of the same batch having been
      saved (it reads or writes nothing that those rows change). Otherwise the batch is
      created row by row, as single creates.
    - `prefetch` (implies batch): a function called once with the contexts of all the batch's
      rows before the hook runs for each; it reads in one query what the hook would read row by
      row and leaves it in `ctx.batch` (a dict the batch's contexts share; None on a single
      write) for the hook to use.
    """
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise ValueError(f"unknown hook event(s) {unknown or events}; use {', '.join(EVENTS)}")

    def mark(fn: HookFunction) -> HookFunction:
        marks = list(getattr(fn, "__crm_hooks__", []))
        marks += [(entity, e) for e in events]
        fn.__crm_hooks__ = marks  # type: ignore[attr-defined]
        if prefetch is not None:
            fn.__crm_prefetch__ = prefetch  # type: ignore[attr-defined]
        if batch or prefetch is not None:
            fn.__crm_batch__ = True  # type: ignore[attr-defined]
        return fn

    return mark


def action(entity: str, key: str) -> Callable[[ActionFunction], ActionFunction]:
    """Mark the function that runs record action `key` of `entity` (declared in the entity's
    `actions:`); the runtime checks the permission and `when` before calling it."""

    def mark(fn: ActionFunction) -> ActionFunction:
        fn.__crm_actions__ = [*getattr(fn, "__crm_actions__", []), (entity, key)]  # type: ignore[attr-defined]
        return fn

    return mark


def job(name: str) -> Callable[[JobFunction], JobFunction]:
    """Mark a scheduled job; `crm jobs run NAME` (from cron or a timer) runs it as the system."""

    def mark(fn: JobFunction) -> JobFunction:
        fn.__crm_job__ = name  # type: ignore[attr-defined]
        return fn

    return mark
