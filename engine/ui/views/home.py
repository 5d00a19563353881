"""The home page (the user's to-dos, from the packs' `home` cards) and global search."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from engine.metadata.registry import text
from engine.runtime.errors import RecordError
from engine.runtime.query import ListQuery
from engine.ui.views.records import title_of
from engine.ui.web import Ctx, page

CARD_ROWS = 10
SEARCH_ROWS = 8


@page()
def home(ctx: Ctx) -> Response:
    cards = []
    for card in ctx.registry.home:
        entity = ctx.registry.entities.get(card.entity)
        view = next((v for v in entity.list.views if v.key == card.view), None) if entity else None
        if entity is None or view is None or not ctx.can(entity, "read"):
            continue
        assert ctx.user is not None
        if not card.shown_to(ctx.user.roles, ctx.user.is_admin):
            continue
        filters = [*view.filter, *(["owner eq $me"] if card.mine else [])]
        result = ctx.records.query(entity.key, ListQuery(filters=filters, sort=view.sort, limit=CARD_ROWS))
        columns = [entity.field(c) for c in (view.columns or entity.list.columns)[:4] if entity.has(c)]
        params: list[tuple[str, str]] = [("view", view.key)] + ([("filter", "owner eq $me")] if card.mine else [])
        cards.append({"entity": entity, "label": text(card.label or view.label, ctx.language), "page": result,
                      "columns": columns, "params": params})
    return ctx.render("home.html", cards=cards)


@page()
def search(ctx: Ctx) -> Response:
    """Every readable entity with search fields, searched for the same words."""
    typed = ctx.param("q")
    groups: list[dict[str, Any]] = []
    if typed:
        for entity in ctx.registry.entities.values():
            if not entity.search or not ctx.can(entity, "read"):
                continue
            try:
                # No count: one cheap statement per entity; "8+" says there is more in the list.
                # Newest first rather than the list's sort: a sort by a referenced title (contacts
                # by customer) cannot stop early, so a common word scanned and sorted whole tables.
                result = ctx.records.query(entity.key, ListQuery(search=typed, limit=SEARCH_ROWS, titles=(),
                                                                 count=False, sort=("-id",)))
            except RecordError:
                continue
            if result.rows:
                groups.append({"entity": entity, "more": result.next_cursor is not None,
                               "rows": [{"id": r["id"], "title": title_of(entity, r)} for r in result.rows]})
    return ctx.render("search.html", q=typed, groups=groups)
