"""Administrators' screens: the audit log. (The admin studio of issue 6 will live here too.)"""

from __future__ import annotations

from starlette.responses import Response

from engine.i18n import Message
from engine.runtime import audit
from engine.runtime.errors import Forbidden
from engine.ui.web import Ctx, page

PAGE = 100


def require_admin(ctx: Ctx) -> None:
    if ctx.user is None or not ctx.user.is_admin:
        raise Forbidden(Message("rejected", {"message": {"en": "Only administrators may open this page.",
                                                         "zh": "只有管理员可以打开此页面。"}}))


@page()
def audit_log(ctx: Ctx) -> Response:
    require_admin(ctx)
    event = ctx.param("event")
    events = [event] if event in audit.EVENTS else []
    before = ctx.param("before")
    rows = audit.entries(ctx.runtime, events=events, username=ctx.param("user"), limit=PAGE + 1,
                         before_id=int(before) if before.isdigit() else None)
    more = len(rows) > PAGE
    return ctx.render("audit.html", rows=rows[:PAGE], more=more, event=event, user=ctx.param("user"),
                      events=audit.EVENTS)
