"""The studio's layout editor: form and detail sections (add, rename, reorder, column count) and
their fields (add, remove, move up/down or to another section), the list's columns, default
sort and filter fields, and which related tabs show in what order.

Every move is one plain form POST (with the CSRF token), checked by building the registry with
it and applied at once. The edited layout is stored whole in the entity's layer document and
marked `layouts.replace: [KIND]`, so it replaces what the packs declare instead of adding to it
(a pack upgrade that changes the same layout is reported as a conflict; the administrator's
version wins).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from engine.metadata import MetadataError
from engine.metadata.registry import Entity, Field
from engine.runtime.errors import NotFound
from engine.ui.views.admin import require_admin
from engine.ui.views.studio import apply, candidate, current, unknown
from engine.ui.web import Ctx, page

LAYOUTS = ("form", "detail", "list", "related")
HIDDEN_SYSTEM = ("id", "version", "deleted_at")


class LayoutError(Exception):
    """A move that cannot be made (its message is shown to the administrator)."""


# -- the layouts as editable documents ------------------------------------------------------------

def sections_of(entity: Entity, kind: str) -> list[dict[str, Any]]:
    return [{"section": dict(s.label), "columns": s.columns, "fields": list(s.fields)}
            for s in (entity.form if kind == "form" else entity.detail)]


def list_of(entity: Entity) -> dict[str, Any]:
    return {"columns": list(entity.list.columns), "sort": list(entity.list.sort), "filters": list(entity.list.filters)}


def related_of(entity: Entity) -> list[dict[str, Any]]:
    tabs = []
    for tab in entity.related:
        item: dict[str, Any] = {"entity": tab.entity, "via": tab.via}
        if tab.columns:
            item["columns"] = list(tab.columns)
        if tab.label:
            item["label"] = dict(tab.label)
        if getattr(tab, "highlight", ()):
            item["highlight"] = list(tab.highlight)
        if getattr(tab, "tree", None):
            item["tree"] = tab.tree
        tabs.append(item)
    return tabs


def placeable(entity: Entity, kind: str) -> list[Field]:
    """Fields that may go into a layout of `kind` (internal fields never; forms: no system field but the owner)."""
    fields = [f for f in entity.fields.values() if not f.internal and f.name not in HIDDEN_SYSTEM]
    if kind == "form":
        return [f for f in fields if not f.system or f.name == "owner"]
    if kind == "sort":
        return [f for f in fields if f.kind.sortable]
    return fields


def tab_choices(ctx: Ctx, entity: Entity) -> list[tuple[Entity, Field]]:
    """Every (child entity, reference field) whose records can show as a tab of `entity`."""
    return [(child, f) for child in sorted(ctx.registry.entities.values(), key=lambda e: e.key)
            for f in child.fields.values() if f.type == "reference" and f.target == entity.key and not f.internal]


def must_stay(entity: Entity, name: str) -> bool:
    """A required field a user has to fill in: it cannot leave the form."""
    f = entity.fields.get(name)
    return f is not None and f.required and f.default is None and not f.read_only and f.type != "autonumber"


# -- moves ------------------------------------------------------------------------------------------

def _index(ctx: Ctx, items: list[Any], param: str = "i") -> int:
    text = ctx.param(param)
    if not text.lstrip("-").isdigit() or not 0 <= int(text) < len(items):
        raise LayoutError(ctx.t("studio_layout_stale"))
    return int(text)


def _swap(items: list[Any], i: int, step: int) -> None:
    j = i + step
    if 0 <= j < len(items):
        items[i], items[j] = items[j], items[i]


def _field(ctx: Ctx, entity: Entity, kind: str, param: str = "field") -> str:
    name = ctx.param(param)
    if name not in {f.name for f in placeable(entity, kind)}:
        raise LayoutError(ctx.t("studio_layout_unknown_field", field=name or "-"))
    return name


def _section_label(ctx: Ctx, sections: list[dict[str, Any]], skip: int | None = None) -> tuple[dict[str, str], int]:
    en, zh = ctx.param("label_en"), ctx.param("label_zh")
    if not en or not zh:
        raise LayoutError(ctx.t("studio_labels_needed"))
    if any(s["section"].get("en") == en for k, s in enumerate(sections) if k != skip):
        raise LayoutError(ctx.t("studio_section_exists", label=en))
    columns = ctx.param("columns") or "2"
    if columns not in ("1", "2", "3", "4"):
        raise LayoutError(ctx.t("studio_bad_columns"))
    return {"en": en, "zh": zh}, int(columns)


def edit_sections(ctx: Ctx, entity: Entity, kind: str) -> tuple[list[dict[str, Any]], str]:
    sections = sections_of(entity, kind)
    op = ctx.param("op")
    if op == "add_section":
        label, columns = _section_label(ctx, sections)
        sections.append({"section": label, "columns": columns, "fields": []})
        return sections, f"{kind} of {entity.key}: add section {label['en']}"
    i = _index(ctx, sections)
    section = sections[i]
    if op == "edit_section":
        section["section"], section["columns"] = _section_label(ctx, sections, skip=i)
    elif op in ("section_up", "section_down"):
        _swap(sections, i, -1 if op == "section_up" else 1)
    elif op == "remove_section":
        kept = [n for n in section["fields"] if must_stay(entity, n)]
        if kind == "form" and kept:
            raise LayoutError(ctx.t("studio_required_on_form", field=entity.field(kept[0]).title(ctx.language)))
        del sections[i]
    elif op == "add_field":
        name = _field(ctx, entity, kind)
        for other in sections:
            other["fields"] = [n for n in other["fields"] if n != name]
        section["fields"].append(name)
    elif op in ("remove_field", "field_up", "field_down", "move_field"):
        name = ctx.param("field")
        if name not in section["fields"]:
            raise LayoutError(ctx.t("studio_layout_stale"))
        at = section["fields"].index(name)
        if op == "remove_field":
            if kind == "form" and must_stay(entity, name):
                raise LayoutError(ctx.t("studio_required_on_form", field=entity.field(name).title(ctx.language)))
            del section["fields"][at]
        elif op == "move_field":
            target = sections[_index(ctx, sections, "to")]
            if target is not section:
                del section["fields"][at]
                target["fields"].append(name)
        else:
            _swap(section["fields"], at, -1 if op == "field_up" else 1)
    else:
        raise LayoutError(ctx.t("studio_layout_stale"))
    return sections, f"{kind} of {entity.key}: {op.replace('_', ' ')} {ctx.param('field') or section['section']['en']}"


def edit_list(ctx: Ctx, entity: Entity) -> tuple[dict[str, Any], str]:
    layout = list_of(entity)
    op = ctx.param("op")
    what, _, move = op.partition("_")  # column_up, filter_down, add_column ...
    if op == "set_sort":
        sort = []
        for n in ("1", "2"):
            name = ctx.param(f"sort{n}")
            if not name:
                continue
            if name not in {f.name for f in placeable(entity, "sort")}:
                raise LayoutError(ctx.t("studio_not_sortable", field=name))
            sort.append(("-" if ctx.param(f"dir{n}") == "desc" else "") + name)
        if not sort:
            raise LayoutError(ctx.t("studio_sort_needed"))
        layout["sort"] = sort
        return layout, f"list of {entity.key}: sort by {', '.join(sort)}"
    if op in ("add_column", "add_filter"):
        key = "columns" if op == "add_column" else "filters"
        name = _field(ctx, entity, "list")
        if name not in layout[key]:
            layout[key].append(name)
        return layout, f"list of {entity.key}: {op.replace('_', ' ')} {name}"
    if what in ("column", "filter") and move in ("up", "down", "remove"):
        key = "columns" if what == "column" else "filters"
        name = ctx.param("field")
        if name not in layout[key]:
            raise LayoutError(ctx.t("studio_layout_stale"))
        at = layout[key].index(name)
        if move == "remove":
            if key == "columns" and len(layout[key]) == 1:
                raise LayoutError(ctx.t("studio_last_column"))
            del layout[key][at]
        else:
            _swap(layout[key], at, -1 if move == "up" else 1)
        return layout, f"list of {entity.key}: {what} {name} {move}"
    raise LayoutError(ctx.t("studio_layout_stale"))


def edit_related(ctx: Ctx, entity: Entity) -> tuple[list[dict[str, Any]], str]:
    tabs = related_of(entity)
    op = ctx.param("op")
    if op == "show_tab":
        child, _, via = ctx.param("tab").partition(".")
        if not any(c.key == child and f.name == via for c, f in tab_choices(ctx, entity)):
            raise LayoutError(ctx.t("studio_layout_stale"))
        if not any(t["entity"] == child and t["via"] == via for t in tabs):
            tabs.append({"entity": child, "via": via})
        return tabs, f"related tabs of {entity.key}: show {child}.{via}"
    i = _index(ctx, tabs)
    if op == "hide_tab":
        del tabs[i]
    elif op in ("tab_up", "tab_down"):
        _swap(tabs, i, -1 if op == "tab_up" else 1)
    else:
        raise LayoutError(ctx.t("studio_layout_stale"))
    return tabs, f"related tabs of {entity.key}: {op.replace('_', ' ')}"


def save(ctx: Ctx, entity: Entity, kind: str, value: Any, comment: str) -> None:
    """Store the whole layout in the entity's layer document (replacing the packs' one) and apply it."""
    doc = current(ctx.runtime, "entity", entity.key) or {"extend": entity.key}
    layouts = doc.setdefault("layouts", {})
    if kind == "list":
        layouts.setdefault("list", {}).update(value)
    else:
        layouts[kind] = value
    if "extend" in doc and kind not in layouts.setdefault("replace", []):
        layouts["replace"].append(kind)
    changes: dict[tuple[str, str], Any] = {("entity", entity.key): doc}
    try:
        candidate(ctx.runtime, changes)
    except MetadataError as exc:
        raise LayoutError("; ".join(str(e) for e in exc.errors)) from exc
    apply(ctx, changes, comment)


# -- the screen -------------------------------------------------------------------------------------

@page()
def layout_editor(ctx: Ctx) -> Response:
    require_admin(ctx)
    entity = ctx.registry.entities.get(ctx.request.path_params["entity"])
    kind = ctx.request.path_params["kind"]
    if entity is None or kind not in LAYOUTS:
        raise NotFound(unknown(f"{ctx.request.path_params['entity']}/{kind}"))
    error = ""
    if ctx.form is not None:
        try:
            value: Any
            if kind in ("form", "detail"):
                value, comment = edit_sections(ctx, entity, kind)
            elif kind == "list":
                value, comment = edit_list(ctx, entity)
            else:
                value, comment = edit_related(ctx, entity)
            save(ctx, entity, kind, value, comment)
        except LayoutError as exc:
            error = str(exc)
        else:
            ctx.flash(ctx.t("studio_applied"))
            return ctx.redirect(f"/admin/studio/{entity.key}/layouts/{kind}")
    doc = current(ctx.runtime, "entity", entity.key) or {}
    customised = kind in ((doc.get("layouts") or {}).get("replace") or ())  # a pack's layout, replaced
    values: dict[str, Any] = {"fields": {f.name: f for f in entity.fields.values()}}
    if kind in ("form", "detail"):
        sections = sections_of(entity, kind)
        placed = {n for s in sections for n in s["fields"]}
        values.update(sections=sections, addable=[f for f in placeable(entity, kind) if f.name not in placed])
    elif kind == "list":
        values.update(layout=list_of(entity), addable=placeable(entity, "list"), sortable=placeable(entity, "sort"))
    else:
        tabs = related_of(entity)
        shown = {(t["entity"], t["via"]) for t in tabs}
        values.update(tabs=tabs, hidden=[(c, f) for c, f in tab_choices(ctx, entity) if (c.key, f.name) not in shown])
    return ctx.render("studio_layout.html", status=422 if error else 200, entity=entity, kind=kind, kinds=LAYOUTS,
                      error=error, customised=customised, **values)
