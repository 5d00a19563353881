"""Turning a checked composition into the immutable Registry."""

from __future__ import annotations

from typing import Any

from engine.fieldtypes import expression
from engine.metadata.compose import Composition, EntityDraft, FieldDraft
from engine.metadata.registry import (
    Action,
    Board,
    Entity,
    Field,
    HomeCard,
    ListLayout,
    MenuGroup,
    Option,
    Organization,
    PackInfo,
    Picklist,
    Registry,
    Related,
    Role,
    Section,
    Setting,
    Stage,
    View,
    frozen,
)

SYSTEM_LABELS = {
    "id": {"en": "ID", "zh": "编号"},
    "created_at": {"en": "Created at", "zh": "创建时间"},
    "created_by": {"en": "Created by", "zh": "创建人"},
    "updated_at": {"en": "Updated at", "zh": "修改时间"},
    "updated_by": {"en": "Updated by", "zh": "修改人"},
    "owner": {"en": "Owner", "zh": "负责人"},
    "version": {"en": "Version", "zh": "版本"},
    "deleted_at": {"en": "Deleted at", "zh": "删除时间"},
}
COMMON_KEYS = {"type", "label", "help", "required", "default", "unique", "index", "read_only", "active", "internal",
               "_name", "_system"}


def compile_registry(comp: Composition) -> Registry:
    picklists = {
        key: Picklist(key, dict(d.doc.data.get("label") or {"en": key, "zh": key}),
                      tuple(Option(o["key"], dict(o["label"]), bool(o.get("active", True))) for o, _ in d.options))
        for key, d in comp.picklists.items()
    }
    entities = {key: _entity(d, picklists) for key, d in comp.entities.items()}
    roles = {key: _role(d.key, d.docs) for key, d in comp.roles.items()}
    menu = tuple(MenuGroup(key, dict(entry["label"]), tuple(entry["entities"])) for key, entry in comp.menu.items())
    settings = {
        key: Setting(key, spec["type"], dict(spec["label"]), spec.get("default"), tuple(spec.get("options") or ()),
                     spec.get("help"), pack.name)
        for key, (spec, pack) in comp.settings.items()
    }
    packs = tuple(
        PackInfo(p.name, p.version, dict(p.label), tuple(p.depends), p.path, p.hooks) for p in comp.packs
    )
    return Registry(
        packs=packs,
        entities=frozen(entities),
        picklists=frozen(picklists),
        roles=frozen(roles),
        menu=menu,
        organization=Organization(**{k: comp.organization[0][k] for k in
                                     ("unit", "parent", "member", "member_user", "member_unit")})
        if comp.organization else None,
        home=tuple(HomeCard(c["entity"], c["view"], bool(c.get("mine")), c.get("label"), tuple(c.get("roles") or ()))
                   for c, _, _ in comp.home),
        settings=frozen(settings),
        messages=frozen({lang: frozen(msgs) for lang, msgs in comp.locales.items()}),
    )


def _field(entity: str, draft: FieldDraft, picklists: dict[str, Picklist]) -> Field:
    spec = draft.spec
    name = draft.name
    system = bool(spec.get("_system"))
    kind = spec["type"]
    stages = tuple(
        Stage(s["key"], dict(s["label"]), s.get("probability"), s.get("outcome"), tuple(s.get("requires") or ()),
              tuple(s["to"]) if "to" in s else None)
        for s in spec.get("stages") or []
    )
    return Field(
        entity=entity,
        name=name,
        type=kind,
        label=dict(spec.get("label") or SYSTEM_LABELS.get(name) or {"en": name, "zh": name}),
        required=bool(spec.get("required", False)),
        default=spec.get("default"),
        unique=bool(spec.get("unique", False)),
        index=bool(spec.get("index", False)) or kind in ("reference", "stage", "user") or name == "owner",
        read_only=bool(spec.get("read_only", False)) or system,
        internal=bool(spec.get("internal", False)),
        system=system,
        help=spec.get("help"),
        options=frozen({k: v for k, v in spec.items() if k not in COMMON_KEYS and k != "stages"}),
        picklist=picklists.get(spec.get("picklist", "")) if "picklist" in spec else None,
        stages=stages,
        source=draft.doc.file,
        compiled_expression=expression.parse(spec["expression"]) if kind == "computed" else None,
    )


def highlight_filters(value: str | list[str] | None) -> tuple[str, ...]:
    """`highlight:` as filters: a boolean field's name stands for "<field> eq true"."""
    if not value:
        return ()
    return (f"{value} eq true",) if isinstance(value, str) else tuple(value)


def _sections(items: list[Any]) -> tuple[Section, ...]:
    """Sections in order; a later section with the same English label as an earlier one adds its
    fields to it (how an extension or the administrator puts a field into a pack's section)."""
    merged: dict[str, dict[str, Any]] = {}
    for s in items:
        key = s["section"].get("en", "")
        if key in merged:
            target = merged[key]
            target["fields"] += [f for f in s.get("fields") or () if f not in target["fields"]]
            target["columns"] = int(s.get("columns", target["columns"]))
        else:
            merged[key] = {"label": dict(s["section"]), "fields": list(s.get("fields") or ()),
                           "columns": int(s.get("columns", 2))}
    return tuple(Section(m["label"], tuple(m["fields"]), m["columns"]) for m in merged.values())


def _entity(draft: EntityDraft, picklists: dict[str, Picklist]) -> Entity:
    base = draft.doc.data
    label, search, pool = base["label"], list(base.get("search") or []), base.get("pool")
    form: list[Any] = []
    detail: list[Any] = []
    columns: list[str] = []
    filters: list[str] = []
    sort: list[str] = []
    views: list[View] = []
    related: list[Related] = []
    indexes: list[tuple[str, ...]] = []
    board: dict[str, Any] | None = None
    actions: list[Action] = []
    highlight: tuple[str, ...] = ()
    for doc in draft.docs:
        data = doc.data
        label = data.get("label", label)
        pool = data.get("pool", pool)
        search += [s for s in data.get("search") or [] if s not in search]
        layouts = data.get("layouts") or {}
        replace = set(layouts.get("replace") or ())  # stated whole (the studio's layout editor)
        form = (form if "form" not in replace else []) + list(layouts.get("form") or [])
        detail = (detail if "detail" not in replace else []) + list(layouts.get("detail") or [])
        lst = layouts.get("list") or {}
        if "list" in replace:
            columns, filters = [], []
        columns += [c for c in lst.get("columns") or [] if c not in columns]
        filters += [c for c in lst.get("filters") or [] if c not in filters]
        sort = list(lst.get("sort") or sort)
        views += [View(v["key"], dict(v["label"]), tuple(v.get("filter") or ()), tuple(v.get("sort") or ()),
                       tuple(v.get("columns") or ())) for v in lst.get("views") or []]
        related = related if "related" not in replace else []
        related += [Related(t["entity"], t["via"], tuple(t.get("columns") or ()), t.get("label"),
                            highlight_filters(t.get("highlight")), t.get("tree"))
                    for t in layouts.get("related") or []]
        board = layouts.get("board", board)
        highlight = highlight_filters(lst.get("highlight")) if "highlight" in lst else highlight
        indexes += [tuple(i) for i in data.get("indexes") or []]
        actions += [_action(draft.key, a, doc, picklists) for a in data.get("actions") or []]
    user_fields = [f for f in draft.fields.values() if not f.spec.get("_system") and f.spec.get("active", True)]
    system_fields = [f for f in draft.fields.values() if f.spec.get("_system")]
    fields = {f.name: _field(draft.key, f, picklists) for f in user_fields + system_fields}
    title = base["title"]
    if not columns:
        columns = [title] + [f.name for f in user_fields if f.name != title][:4] + ["owner"]
    if board is None:
        stage = next((f for f in fields.values() if f.type == "stage"), None)
        if stage is not None:
            board = {"field": stage.name, "sums": [f.name for f in fields.values() if f.type == "money"]}
    form_sections = _sections(form) or (Section({"en": "Details", "zh": "详细信息"}, tuple(f.name for f in user_fields)),)
    return Entity(
        key=draft.key,
        label=dict(label),
        title=title,
        fields=frozen(fields),
        search=tuple(search) or (title,),
        pool=pool,
        form=form_sections,
        detail=_sections(detail) or form_sections,
        list=ListLayout(tuple(columns), tuple(sort) or ("-id",), tuple(filters), tuple(views), highlight),
        related=tuple(related),
        board=Board(board["field"], tuple(board.get("sums") or ())) if board else None,
        actions=tuple(actions),
        indexes=tuple(indexes),
        pack=draft.pack,
        source=draft.doc.file,
    )


def _action(entity: str, spec: dict[str, Any], doc: Any, picklists: dict[str, Picklist]) -> Action:
    inputs = tuple(_field(f"{entity}.{spec['key']}", FieldDraft({**s, "_name": name}, doc, doc.pack), picklists)
                   for name, s in (spec.get("inputs") or {}).items())
    return Action(spec["key"], dict(spec["label"]), spec.get("permission", "edit"), tuple(spec.get("when") or ()),
                  spec.get("confirm"), bool(spec.get("bulk", False)), inputs, spec.get("help"))


def _role(key: str, docs: list[Any]) -> Role:
    label = docs[0].data.get("label") or {"en": key, "zh": key}
    permissions: dict[str, dict[str, str]] = {}
    pool: dict[str, tuple[str, ...]] = {}
    fields: dict[str, str] = {}
    for doc in docs:
        for entity, grants in (doc.data.get("permissions") or {}).items():
            grants = dict(grants or {})
            if "pool" in grants:
                pool[entity] = tuple(grants.pop("pool") or ())
            permissions.setdefault(entity, {}).update(grants)
        fields.update(doc.data.get("fields") or {})
    fields = {k: v for k, v in fields.items() if v != "visible"}  # "visible": a later layer lifts a rule
    return Role(key, dict(label), frozen({k: frozen(v) for k, v in permissions.items()}), frozen(pool), frozen(fields))
