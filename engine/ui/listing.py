"""A list request from a URL: named or saved view, filter-bar widgets, raw filters, search,
sort, columns and page. Shared by the list screen, the CSV export, the board and the API, so
they all understand the same query syntax.

    /app/customer?view=hot&f.industry=it&f.industry=retail&f.created_at.from=2026-01-01
                 &filter=annual_revenue gte 1000000&q=华信&sort=-annual_revenue&cursor=...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from engine.metadata.registry import Entity, Field, View
from engine.runtime.errors import BadQuery
from engine.runtime.query import MAX_PAGE, ListQuery, bad_filter
from engine.runtime.service import Runtime

RANGED = ("date", "datetime", "integer", "decimal", "money", "percent", "rollup", "computed")
PICKED = ("choice", "stage", "multi_choice")
PAGE_SIZES = (20, 50, 100, 200)
MAX_REFERENCE_MATCHES = 200  # a reference filter typed as a name matches at most this many records


@dataclass(frozen=True)
class SavedView:
    id: int
    name: str
    filters: tuple[str, ...]
    search: str
    columns: tuple[str, ...]
    sort: tuple[str, ...]


@dataclass
class ListRequest:
    entity: Entity
    view: str = ""  # a metadata view key, "s<ID>" for a saved view, or "" for all records
    view_filters: tuple[str, ...] = ()
    bar: dict[str, Any] = field(default_factory=dict)  # filter-bar widget state, by param name
    raw_filters: tuple[str, ...] = ()
    search: str = ""
    sort: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    cursor: str | None = None
    before: str | None = None
    limit: int = 50
    bar_filters: tuple[str, ...] = ()
    columns_changed: bool = False  # columns chosen in the URL rather than by the view

    @property
    def filters(self) -> list[str]:
        return [*self.view_filters, *self.bar_filters, *self.raw_filters]

    def query(self, count: bool = True) -> ListQuery:
        return ListQuery(filters=self.filters, search=self.search or None, sort=self.sort, limit=self.limit,
                         cursor=self.cursor, before=self.before, count=count)

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """This request's URL parameters, with `changes` applied (None removes one)."""
        values: dict[str, Any] = {"view": self.view, "q": self.search, "sort": ",".join(self.sort),
                                  "limit": self.limit if self.limit != 50 else None,
                                  "cursor": self.cursor, "before": self.before}
        values.update(changes)
        pairs: list[tuple[str, str]] = []
        for key, value in values.items():
            if value not in (None, ""):
                pairs.append((key, str(value)))
        if "bar" not in changes:
            for key, value in self.bar.items():
                for v in value if isinstance(value, list) else [value]:
                    if v not in (None, ""):
                        pairs.append((key, str(v)))
        if "filter" not in changes:
            pairs += [("filter", f) for f in self.raw_filters]
        if "columns" not in changes and self.columns_changed:
            pairs.append(("columns", ",".join(self.columns)))
        return pairs

    def url(self, base: str, **changes: Any) -> str:
        pairs = self.params(**changes)
        return base + ("?" + urlencode(pairs) if pairs else "")

    def sort_url(self, base: str, name: str) -> str:
        """Clicking a column: sort by it ascending, or flip it when it is already the first key."""
        first = self.sort[0] if self.sort else ""
        new = f"-{name}" if first == name else name
        return self.url(base, sort=new, cursor=None, before=None)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return len(text) == 10
    except ValueError:
        return False


def filter_fields(entity: Entity) -> list[Field]:
    return [entity.field(n) for n in entity.list.filters if entity.has(n)]


def bar_filters(entity: Entity, params: Mapping[str, Any], getlist: Any) -> tuple[dict[str, Any], list[str]]:
    """Filter-bar widget values from the URL -> (their state, filters as text)."""
    state: dict[str, Any] = {}
    filters: list[str] = []
    for f in filter_fields(entity):
        key = f"f.{f.name}"
        if f.type in RANGED:
            low, high = params.get(f"{key}.from", "").strip(), params.get(f"{key}.to", "").strip()
            relative = params.get(key, "").strip() if f.type in ("date", "datetime") else ""
            state.update({f"{key}.from": low, f"{key}.to": high, key: relative})
            if relative:
                filters.append(f"{f.name} eq {relative}")
            if low:
                filters.append(f"{f.name} gte {low}")
            if high and f.type == "datetime" and _is_date(high):
                filters.append(f"{f.name} lt {date.fromisoformat(high) + timedelta(days=1)}")  # the whole last day
            elif high:
                filters.append(f"{f.name} lte {high}")
        elif f.type in PICKED:
            chosen = [v.strip() for v in getlist(key) if v.strip()]
            state[key] = chosen
            if chosen:
                filters.append(f"{f.name} in {','.join(chosen)}")
        else:
            value = params.get(key, "").strip()
            state[key] = value
            if not value:
                continue
            if f.type == "boolean":
                filters.append(f"{f.name} eq {value}")
            elif f.type == "user" or f.name == "owner":
                filters.append(f"{f.name} eq {'$me' if value == 'me' else value}")
            elif f.type == "reference":
                filters.append(f"{f.name} eq {value}" if value.isdigit() else f"{f.name} ~title {value}")
            else:
                filters.append(f"{f.name} contains {value}")
    return state, filters


def parse(entity: Entity, params: Any, saved: list[SavedView] | None = None) -> ListRequest:
    """A ListRequest from query parameters (a Starlette QueryParams or any MultiDict)."""
    getlist = params.getlist
    view_key = params.get("view", "").strip()
    req = ListRequest(entity=entity, view=view_key)
    chosen: View | SavedView | None = None
    if view_key.startswith("s") and view_key[1:].isdigit():
        chosen = next((v for v in saved or [] if v.id == int(view_key[1:])), None)
    elif view_key:
        chosen = next((v for v in entity.list.views if v.key == view_key), None)
    if view_key and chosen is None:
        raise BadQuery(bad_filter(f"view={view_key}", "no such view").message)
    req.view_filters = tuple(chosen.filter if isinstance(chosen, View) else chosen.filters) if chosen else ()
    req.bar, bar = bar_filters(entity, params, getlist)
    req.bar_filters = tuple(bar)
    req.raw_filters = tuple(f.strip() for f in getlist("filter") if f.strip())
    req.search = params.get("q", "").strip() or (chosen.search if isinstance(chosen, SavedView) else "")
    sort = params.get("sort", "").strip()
    if sort:
        req.sort = tuple(s.strip() for s in sort.split(",") if s.strip())
    elif chosen is not None and chosen.sort:
        req.sort = tuple(chosen.sort)
    else:
        req.sort = tuple(entity.list.sort)
    columns = ",".join(getlist("columns")).strip()  # "a,b" or repeated (the column chooser's boxes)
    default_columns = tuple(chosen.columns) if chosen is not None and chosen.columns else entity.list.columns
    if columns:
        wanted = tuple(c for c in columns.split(",") if entity.has(c))
        req.columns = wanted or default_columns
        req.columns_changed = req.columns != default_columns
    else:
        req.columns = default_columns or tuple(f.name for f in entity.user_fields[:6])
    req.cursor = params.get("cursor") or None
    req.before = params.get("before") or None
    limit = params.get("limit", "")
    req.limit = max(1, min(int(limit), MAX_PAGE)) if limit.isdigit() else 50
    return req


def resolve_title_filters(runtime: Runtime, records: Any, req: ListRequest) -> ListRequest:
    """Turn `FIELD ~title TEXT` (a reference filter typed as a name) into `FIELD in IDS` of the
    target records whose search fields match, within what the caller may read."""
    out = []
    for text in req.bar_filters:
        parts = text.split(" ", 2)
        if len(parts) == 3 and parts[1] == "~title":
            f = req.entity.field(parts[0])
            target = runtime.registry.entity(f.target or "")
            page = records.query(target.key, ListQuery(search=parts[2], limit=MAX_REFERENCE_MATCHES, count=False,
                                                       titles=()))
            ids = [str(r["id"]) for r in page.rows]
            out.append(f"{f.name} in {','.join(ids)}" if ids else f"{f.name} eq 0")
        else:
            out.append(text)
    return replace(req, bar_filters=tuple(out))


def from_url(runtime: Runtime, records: Any, user_id: int, entity: Entity,
             params: Any) -> tuple[ListRequest, list[SavedView]]:
    """The list request of a URL as the list screen, export, board and API read it (the user's
    saved views included, reference names resolved), with those saved views."""
    saved = saved_views(runtime, user_id, entity.key)
    return resolve_title_filters(runtime, records, parse(entity, params, saved)), saved


# -- saved views ----------------------------------------------------------------------------------

def saved_views(runtime: Runtime, user_id: int, entity: str) -> list[SavedView]:
    table = runtime.table("crm_saved_view")
    stmt = sa.select(table).where(table.c.user_id == user_id, table.c.entity == entity).order_by(table.c.name)
    with runtime.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    views = []
    for row in rows:
        data = json.loads(row["data"])
        views.append(SavedView(int(row["id"]), row["name"], tuple(data.get("filters", ())), data.get("search", ""),
                               tuple(data.get("columns", ())), tuple(data.get("sort", ()))))
    return views


def save_view(runtime: Runtime, user_id: int, req: ListRequest, name: str) -> int:
    table = runtime.table("crm_saved_view")
    data = {"filters": req.filters, "search": req.search, "columns": list(req.columns), "sort": list(req.sort)}
    with runtime.engine.begin() as conn:
        return int(conn.execute(sa.insert(table).values(
            user_id=user_id, entity=req.entity.key, name=name[:100], data=json.dumps(data, ensure_ascii=False),
            created_at=runtime.now()).returning(table.c.id)).scalar_one())


def delete_view(runtime: Runtime, user_id: int, view_id: int) -> None:
    table = runtime.table("crm_saved_view")
    with runtime.engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.id == view_id, table.c.user_id == user_id))
