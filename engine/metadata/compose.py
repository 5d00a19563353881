"""Layering: packs in dependency order, each adding to (never silently redefining) what came before.

The result is a set of merged drafts that remember, for every entity, field, pick-list option and
role, the document that contributed it, so cross-reference errors can point at the right file and
line, and so a pack can only use what it or its dependencies define.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.fieldtypes import all_types
from engine.fieldtypes.base import CheckContext
from engine.metadata.filters import SHARED, FilterSyntaxError, parse_filter
from engine.metadata.packs import PackSource
from engine.metadata.registry import SYSTEM_FIELDS
from engine.metadata.yamlfile import Document, PackError, dotted

SYSTEM_FIELD_TYPES = {
    "id": "integer", "created_at": "datetime", "created_by": "user", "updated_at": "datetime",
    "updated_by": "user", "owner": "user", "version": "integer", "deleted_at": "datetime",
}


def _dict(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else {}: a schema error already reports the wrong shape."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """`value` when it is a list, else []: a schema error already reports the wrong shape."""
    return value if isinstance(value, list) else []


@dataclass
class FieldDraft:
    spec: dict[str, Any]
    doc: Document
    pack: str

    def where(self) -> str:
        return f"{self.doc.file}:{self.doc.line(('fields', self.name))}"

    @property
    def name(self) -> str:
        return str(self.spec.get("_name"))


@dataclass
class EntityDraft:
    key: str
    doc: Document  # the defining document
    pack: str
    fields: dict[str, FieldDraft] = field(default_factory=dict)
    docs: list[Document] = field(default_factory=list)  # defining doc first, then extensions


@dataclass
class PicklistDraft:
    key: str
    doc: Document
    pack: str
    options: list[tuple[dict[str, Any], Document]] = field(default_factory=list)


@dataclass
class RoleDraft:
    key: str
    doc: Document
    pack: str
    docs: list[Document] = field(default_factory=list)


@dataclass
class Composition:
    packs: list[PackSource]
    visible: dict[str, set[str]]  # pack -> itself and every pack it depends on, transitively
    entities: dict[str, EntityDraft] = field(default_factory=dict)
    picklists: dict[str, PicklistDraft] = field(default_factory=dict)
    roles: dict[str, RoleDraft] = field(default_factory=dict)
    locales: dict[str, dict[str, str]] = field(default_factory=dict)
    menu: dict[str, dict[str, Any]] = field(default_factory=dict)
    home: list[tuple[dict[str, Any], PackSource, int]] = field(default_factory=list)  # (card, pack, index)
    organization: tuple[dict[str, Any], PackSource] | None = None
    settings: dict[str, tuple[dict[str, Any], PackSource]] = field(default_factory=dict)
    errors: list[PackError] = field(default_factory=list)
    broken: set[tuple[str, str]] = field(default_factory=set)  # (file, path) with schema errors

    def is_broken(self, doc: Document, path: tuple[Any, ...]) -> bool:
        """True when a schema error lies at, above or below `path`: its cross-checks would be noise."""
        here = dotted(path)
        return any(f == doc.file and (_within(here, p) or _within(p, here)) for f, p in self.broken)


def _within(path: str, ancestor: str) -> bool:
    """True when dotted `path` is `ancestor` or lies below it ('fields.a.type' is within 'fields.a', not 'fields.ab')."""
    return ancestor == "" or path == ancestor or path.startswith((ancestor + ".", ancestor + "["))


def order_packs(packs: list[PackSource]) -> tuple[list[PackSource], dict[str, set[str]], list[PackError]]:
    """Dependency order (a pack after everything it depends on), with cycle and missing-pack errors."""
    errors: list[PackError] = []
    by_name: dict[str, PackSource] = {}
    for pack in packs:
        if pack.name in by_name:
            errors.append(pack.manifest.error(("name",), f"pack '{pack.name}' is also at {by_name[pack.name].manifest.file}"))
            continue
        by_name[pack.name] = pack
    for pack in by_name.values():
        for i, dep in enumerate(pack.depends):
            if dep not in by_name:
                errors.append(pack.manifest.error(("depends", i), f"depends on pack '{dep}', which is not active (add it to the active packs)"))
    ordered: list[PackSource] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = trail[trail.index(name):] + [name]
            pack = by_name[name]
            errors.append(pack.manifest.error(("depends",), "dependency cycle: " + " -> ".join(cycle)))
            return
        state[name] = "visiting"
        for dep in by_name[name].depends:
            if dep in by_name:
                visit(dep, trail + [name])
        state[name] = "done"
        ordered.append(by_name[name])

    for name in by_name:
        visit(name, [])
    visible: dict[str, set[str]] = {}
    for pack in ordered:
        seen = {pack.name}
        for dep in pack.depends:
            seen |= visible.get(dep, {dep})
        visible[pack.name] = seen
    return ordered, visible, errors


def compose(packs: list[PackSource]) -> Composition:
    ordered, visible, errors = order_packs(packs)
    comp = Composition(ordered, visible, errors=errors)
    for pack in ordered:
        docs = pack.documents
        # Within a pack, definitions first so a pack may extend its own entities in other files.
        for doc in sorted(docs, key=lambda d: (d.extends, d.file)):
            if doc.kind == "entity":
                _merge_entity(comp, doc)
            elif doc.kind == "picklist":
                _merge_picklist(comp, doc)
            elif doc.kind == "role":
                _merge_role(comp, doc)
            elif doc.kind == "locale":
                language = doc.file.rsplit("/", 1)[-1].split(".")[0]
                comp.locales.setdefault(language, {}).update({k: str(v) for k, v in doc.data.items()})
        _merge_manifest(comp, pack)
    return comp


def _owner_note(comp: Composition, doc: Document, defined_in: str) -> str | None:
    """Why `doc` may not touch something defined by pack `defined_in`, or None if it may."""
    if defined_in in comp.visible.get(doc.pack, {doc.pack}):
        return None
    return f"it belongs to pack '{defined_in}', which '{doc.pack}' does not depend on"


def _merge_entity(comp: Composition, doc: Document) -> None:
    key = doc.key
    if not key:
        return
    fields = _dict(doc.data.get("fields"))
    if not doc.extends:
        if key in comp.entities:
            other = comp.entities[key].doc
            comp.errors.append(doc.error(("entity",), f"entity '{key}' is already defined in {other.file}:{other.line(('entity',))}; "
                                                      f"to add to it, write 'extend: {key}' instead"))
            return
        draft = EntityDraft(key, doc, doc.pack, docs=[doc])
        comp.entities[key] = draft
        for name in SYSTEM_FIELDS:
            draft.fields[name] = FieldDraft({"_name": name, "type": SYSTEM_FIELD_TYPES[name], "_system": True}, doc, doc.pack)
    else:
        draft_or_none = comp.entities.get(key)
        if draft_or_none is None:
            comp.errors.append(doc.error(("extend",), f"extends entity '{key}', which no pack it depends on defines"))
            return
        draft = draft_or_none
        note = _owner_note(comp, doc, draft.pack)
        if note:
            comp.errors.append(doc.error(("extend",), f"cannot extend entity '{key}': {note}"))
            return
        draft.docs.append(doc)
    for name, spec in fields.items():
        if not isinstance(spec, dict):
            continue
        existing = draft.fields.get(name)
        if spec.get("extend") is True:
            if existing is None:
                comp.errors.append(doc.error(("fields", name, "extend"), f"extends field '{key}.{name}', which is not defined"))
            elif existing.spec.get("_system"):
                comp.errors.append(doc.error(("fields", name), f"'{name}' is a system field and cannot be changed"))
            else:
                _patch_field(comp, existing, spec, doc, name)
            continue
        if existing is not None:
            if existing.spec.get("_system"):
                comp.errors.append(doc.error(("fields", name), f"'{name}' is a system field every entity has; choose another name"))
            elif existing.pack != doc.pack and existing.pack not in comp.visible.get(doc.pack, set()):
                comp.errors.append(doc.error(("fields", name), (
                    f"packs '{existing.pack}' and '{doc.pack}' both add field '{key}.{name}' (also in {existing.where()}); "
                    "neither depends on the other, so they cannot be active together: rename the field in one of "
                    "them (prefixing a pack's own fields with a short pack code avoids such clashes)")))
            else:
                comp.errors.append(doc.error(("fields", name), f"field '{key}.{name}' is already defined in {existing.where()}; "
                                                               "add 'extend: true' to change it, or choose another name"))
            continue
        draft.fields[name] = FieldDraft({**copy.deepcopy(spec), "_name": name}, doc, doc.pack)


def _patch_field(comp: Composition, target: FieldDraft, patch: dict[str, Any], doc: Document, name: str) -> None:
    for key, value in patch.items():
        if key == "extend":
            continue
        if key == "pattern":
            problems = [m for _, m in all_types()["autonumber"].cross_check(name, {"pattern": value}, None)]  # type: ignore[arg-type]
            if target.spec.get("type") != "autonumber":
                problems = [f"'{name}' is not an autonumber field"]
            if problems:
                comp.errors.append(doc.error(("fields", name, "pattern"), problems[0]))
                continue
        if key == "stages":
            if target.spec.get("type") != "stage":
                comp.errors.append(doc.error(("fields", name, "stages"), f"'{name}' is not a stage field"))
                continue
            stages = target.spec.setdefault("stages", [])
            for i, stage in enumerate(_list(value)):
                if not isinstance(stage, dict):
                    continue
                keys = [s.get("key") for s in stages]
                if stage.get("key") in keys:
                    comp.errors.append(doc.error(("fields", name, "stages", i, "key"), f"stage '{stage.get('key')}' already exists"))
                    continue
                after = stage.get("after")
                position = len(stages)
                if after is not None:
                    if after not in keys:
                        comp.errors.append(doc.error(("fields", name, "stages", i, "after"), f"unknown stage '{after}'"))
                        continue
                    position = keys.index(after) + 1
                stages.insert(position, {k: v for k, v in stage.items() if k != "after"})
        else:
            target.spec[key] = copy.deepcopy(value)


def _merge_picklist(comp: Composition, doc: Document) -> None:
    key = doc.key
    if not key:
        return
    if not doc.extends:
        if key in comp.picklists:
            other = comp.picklists[key].doc
            comp.errors.append(doc.error(("picklist",), f"pick-list '{key}' is already defined in {other.file}:{other.line(('picklist',))}; "
                                                        f"to add options, write 'extend: {key}' instead"))
            return
        comp.picklists[key] = PicklistDraft(key, doc, doc.pack)
    elif key not in comp.picklists:
        comp.errors.append(doc.error(("extend",), f"extends pick-list '{key}', which no pack it depends on defines"))
        return
    draft = comp.picklists[key]
    if doc.extends and (note := _owner_note(comp, doc, draft.pack)):
        comp.errors.append(doc.error(("extend",), f"cannot extend pick-list '{key}': {note}"))
        return
    seen = {o.get("key") for o, _ in draft.options}
    for i, option in enumerate(_list(doc.data.get("options"))):
        if not isinstance(option, dict) or not isinstance(option.get("key"), str):
            continue
        if option.get("extend") is True:  # change an existing option: its label or whether it is offered
            at = next((j for j, (o, _) in enumerate(draft.options) if o.get("key") == option["key"]), None)
            if at is None:
                comp.errors.append(doc.error(("options", i, "key"), f"pick-list '{key}' has no option '{option['key']}' to change"))
            else:
                patch = {k: v for k, v in option.items() if k in ("label", "active")}
                draft.options[at] = ({**draft.options[at][0], **patch}, draft.options[at][1])
            continue
        if option.get("key") in seen:
            comp.errors.append(doc.error(("options", i, "key"), f"option '{option.get('key')}' is already in pick-list '{key}'"))
            continue
        seen.add(option.get("key"))
        draft.options.append((option, doc))
    order = [k for k in _list(doc.data.get("order")) if isinstance(k, str)]
    for j, name in enumerate(order):
        if name not in seen:
            comp.errors.append(doc.error(("order", j), f"pick-list '{key}' has no option '{name}'"))
    if order:
        rank = {name: j for j, name in enumerate(order)}
        draft.options.sort(key=lambda pair: rank.get(str(pair[0].get("key")), len(rank)))


def _merge_role(comp: Composition, doc: Document) -> None:
    key = doc.key
    if not key:
        return
    if not doc.extends:
        if key in comp.roles:
            other = comp.roles[key].doc
            comp.errors.append(doc.error(("role",), f"role '{key}' is already defined in {other.file}; write 'extend: {key}' to add permissions"))
            return
        comp.roles[key] = RoleDraft(key, doc, doc.pack, docs=[doc])
    elif key not in comp.roles:
        comp.errors.append(doc.error(("extend",), f"extends role '{key}', which no pack it depends on defines"))
    else:
        comp.roles[key].docs.append(doc)


def _merge_manifest(comp: Composition, pack: PackSource) -> None:
    data = pack.data
    for group in _list(data.get("menu")):
        if not isinstance(group, dict) or not isinstance(group.get("group"), str):
            continue
        entry = comp.menu.setdefault(group["group"], {"label": group.get("label"), "entities": [], "doc": pack.manifest})
        entry["label"] = entry["label"] or group.get("label")
        entry["entities"] += [e for e in _list(group.get("entities")) if e not in entry["entities"]]
    org = data.get("organization")
    if isinstance(org, dict):
        if comp.organization is not None:
            comp.errors.append(pack.manifest.error(("organization",), "the organisation is already declared by pack "
                                                                      f"'{comp.organization[1].name}'"))
        else:
            comp.organization = (org, pack)
    for i, card in enumerate(_list(data.get("home"))):
        if isinstance(card, dict):
            comp.home.append((card, pack, i))
    for key, spec in _dict(data.get("settings")).items():
        if not isinstance(spec, dict):
            continue
        if key in comp.settings:
            comp.errors.append(pack.manifest.error(("settings", key), f"setting '{key}' is already declared by pack '{comp.settings[key][1].name}'"))
            continue
        comp.settings[key] = (spec, pack)


# -- cross-reference checks ---------------------------------------------------------------------

def check_references(comp: Composition) -> None:
    """Every name a document uses must exist and belong to a pack the document's pack can see."""
    for draft in comp.entities.values():
        for doc in draft.docs:
            _check_entity_doc(comp, draft, doc)
    for role in comp.roles.values():
        for doc in role.docs:
            _check_role_doc(comp, doc)
    for name, entry in comp.menu.items():
        manifest: Document = entry["doc"]
        for i, group in enumerate(_list(manifest.data.get("menu"))):
            if isinstance(group, dict) and group.get("group") == name:
                for j, entity in enumerate(_list(group.get("entities"))):
                    if isinstance(entity, str) and entity not in comp.entities:
                        comp.errors.append(manifest.error(("menu", i, "entities", j), f"unknown entity '{entity}'"))
        if not entry["label"]:
            comp.errors.append(manifest.error(("menu",), f"menu group '{name}' needs a label"))
    for card, pack, i in comp.home:
        target = comp.entities.get(str(card.get("entity")))
        if target is None:
            comp.errors.append(pack.manifest.error(("home", i, "entity"), f"unknown entity '{card.get('entity')}'"))
        elif card.get("view") not in _view_keys(target):
            comp.errors.append(pack.manifest.error(("home", i, "view"),
                                                   f"entity '{target.key}' has no list view '{card.get('view')}'"))
        for j, role in enumerate(_list(card.get("roles"))):
            if role not in comp.roles:
                comp.errors.append(pack.manifest.error(("home", i, "roles", j), f"unknown role '{role}'"))
    if comp.organization is not None:
        _check_organization(comp, *comp.organization)
    for key, (spec, pack) in comp.settings.items():
        if spec.get("type") == "choice" and not spec.get("options"):
            comp.errors.append(pack.manifest.error(("settings", key), "a choice setting needs options"))


def _check_organization(comp: Composition, org: dict[str, Any], pack: PackSource) -> None:
    """unit.parent must reference unit; member.member_user must be a user field and
    member.member_unit a reference to unit."""
    def field_type(entity: str, name: str) -> tuple[str | None, str | None]:
        draft = comp.entities.get(entity)
        spec = draft.fields[name].spec if draft and name in draft.fields else None
        return (spec.get("type"), spec.get("entity")) if isinstance(spec, dict) else (None, None)

    unit, member = str(org.get("unit")), str(org.get("member"))
    for key, entity in (("unit", unit), ("member", member)):
        if entity not in comp.entities:
            comp.errors.append(pack.manifest.error(("organization", key), f"unknown entity '{entity}'"))
    if unit not in comp.entities or member not in comp.entities:
        return
    checks = (("parent", unit, org.get("parent"), ("reference", unit)),
              ("member_unit", member, org.get("member_unit"), ("reference", unit)),
              ("member_user", member, org.get("member_user"), ("user", None)))
    for key, entity, name, wanted in checks:
        if field_type(entity, str(name)) != wanted:
            what = f"a reference to {unit}" if wanted[0] == "reference" else "a user field"
            comp.errors.append(pack.manifest.error(("organization", key), f"'{entity}.{name}' must be {what}"))


def _view_keys(draft: EntityDraft) -> set[str]:
    """Keys of the list views every document of an entity declares (defining and extending)."""
    keys: set[str] = set()
    for doc in draft.docs:
        for view in _list(_dict(_dict(doc.data.get("layouts")).get("list")).get("views")):
            if isinstance(view, dict) and isinstance(view.get("key"), str):
                keys.add(view["key"])
    return keys


def _visible_fields(comp: Composition, draft: EntityDraft, pack: str) -> set[str]:
    seen = comp.visible.get(pack, {pack})
    return {name for name, f in draft.fields.items() if f.pack in seen}


def _visible_entities(comp: Composition, pack: str) -> dict[str, frozenset[str]]:
    seen = comp.visible.get(pack, {pack})
    return {key: frozenset(_visible_fields(comp, d, pack)) for key, d in comp.entities.items() if d.pack in seen}


def _unknown_field(comp: Composition, draft: EntityDraft, doc: Document, name: str) -> str | None:
    if name not in draft.fields:
        return f"unknown field '{name}' of '{draft.key}'"
    note = _owner_note(comp, doc, draft.fields[name].pack)
    return f"field '{name}': {note}" if note else None


def _check_names(comp: Composition, draft: EntityDraft, doc: Document, path: tuple[Any, ...], names: Iterable[Any] | None) -> None:
    if comp.is_broken(doc, path) or not isinstance(names, list | tuple | type(None)):
        return
    for i, name in enumerate(names or []):
        name = str(name).lstrip("-")
        problem = _unknown_field(comp, draft, doc, name)
        if problem:
            comp.errors.append(doc.error(path + (i,), problem))


def _check_entity_doc(comp: Composition, draft: EntityDraft, doc: Document) -> None:
    data = doc.data
    types = all_types()
    entities = _visible_entities(comp, doc.pack)
    seen_picklists = comp.visible.get(doc.pack, {doc.pack})
    picklists = frozenset(k for k, p in comp.picklists.items() if p.pack in seen_picklists)
    ctx = CheckContext(draft.key, frozenset(_visible_fields(comp, draft, doc.pack)), entities, picklists)
    if (doc.file, "") in comp.broken or (doc.file, "fields") in comp.broken:
        return  # the document's shape is wrong: name checks against its fields would be noise
    if "title" in data and isinstance(data["title"], str) and (problem := _unknown_field(comp, draft, doc, data["title"])):
        comp.errors.append(doc.error(("title",), problem))
    _check_names(comp, draft, doc, ("search",), data.get("search"))
    if isinstance(data.get("pool"), str):
        pool = data["pool"]
        if (problem := _unknown_field(comp, draft, doc, pool)):
            comp.errors.append(doc.error(("pool",), problem))
        elif draft.fields[pool].spec.get("type") != "boolean":
            comp.errors.append(doc.error(("pool",), f"the pool field '{pool}' must be a boolean field"))
    computed_seen: list[str] = []
    for name, spec in _dict(data.get("fields")).items():
        if not isinstance(spec, dict) or spec.get("type") not in types or comp.is_broken(doc, ("fields", name)):
            continue
        for sub, message in types[spec["type"]].cross_check(name, spec, ctx):
            comp.errors.append(doc.error(("fields", name) + _split(sub), message))
        if spec["type"] == "rollup":
            _check_rollup(comp, doc, draft.key, name, spec)
        if spec["type"] == "computed":
            computed_seen.append(name)
    for i, index in enumerate(_list(data.get("indexes"))):
        _check_names(comp, draft, doc, ("indexes", i), index)
    layouts = _dict(data.get("layouts"))
    for kind in ("form", "detail"):
        for i, section in enumerate(_list(layouts.get(kind))):
            if isinstance(section, dict):
                _check_names(comp, draft, doc, ("layouts", kind, i, "fields"), section.get("fields"))
    lst = _dict(layouts.get("list"))
    for key in ("columns", "sort", "filters"):
        _check_names(comp, draft, doc, ("layouts", "list", key), lst.get(key))
    for i, view in enumerate(_list(lst.get("views"))):
        if not isinstance(view, dict):
            continue
        _check_names(comp, draft, doc, ("layouts", "list", "views", i, "sort"), view.get("sort"))
        _check_names(comp, draft, doc, ("layouts", "list", "views", i, "columns"), view.get("columns"))
        for j, text in enumerate(_list(view.get("filter"))):
            problem = filter_problem(comp, draft, str(text))
            if problem:
                comp.errors.append(doc.error(("layouts", "list", "views", i, "filter", j), problem))
    for i, tab in enumerate(_list(layouts.get("related"))):
        if isinstance(tab, dict) and not comp.is_broken(doc, ("layouts", "related", i)):
            _check_related(comp, draft, doc, i, tab)
    _check_highlight(comp, draft, doc, ("layouts", "list", "highlight"), lst.get("highlight"))
    _check_actions(comp, draft, doc, ctx)
    board = layouts.get("board")
    if isinstance(board, dict) and not comp.is_broken(doc, ("layouts", "board")):
        name = board.get("field", "")
        if (problem := _unknown_field(comp, draft, doc, name)):
            comp.errors.append(doc.error(("layouts", "board", "field"), problem))
        elif draft.fields[name].spec.get("type") != "stage":
            comp.errors.append(doc.error(("layouts", "board", "field"), f"the board field '{name}' must be a stage field"))
        _check_names(comp, draft, doc, ("layouts", "board", "sums"), board.get("sums"))


def _check_actions(comp: Composition, draft: EntityDraft, doc: Document, ctx: CheckContext) -> None:
    """Action keys are unique per entity; `when` filters and input fields are well-formed."""
    types = all_types()
    earlier = draft.docs[:draft.docs.index(doc)] if doc in draft.docs else []
    keys = {a.get("key") for d in earlier for a in _list(d.data.get("actions")) if isinstance(a, dict)}
    for i, action in enumerate(_list(doc.data.get("actions"))):
        if not isinstance(action, dict) or comp.is_broken(doc, ("actions", i)):
            continue
        if action.get("key") in keys:
            comp.errors.append(doc.error(("actions", i, "key"), f"action '{action.get('key')}' is already defined"))
        keys.add(action.get("key"))
        for j, text in enumerate(_list(action.get("when"))):
            if (problem := filter_problem(comp, draft, str(text))):
                comp.errors.append(doc.error(("actions", i, "when", j), problem))
        for name, spec in _dict(action.get("inputs")).items():
            if isinstance(spec, dict) and spec.get("type") in types:
                for sub, message in types[spec["type"]].cross_check(name, spec, ctx):
                    comp.errors.append(doc.error(("actions", i, "inputs", name) + _split(sub), message))


def _split(sub: str) -> tuple[Any, ...]:
    out: list[Any] = []
    for part in sub.replace("]", "").split("."):
        head, *indexes = part.split("[")
        if head:
            out.append(head)
        out += [int(i) for i in indexes]
    return tuple(out)


def _check_rollup(comp: Composition, doc: Document, entity: str, name: str, spec: dict[str, Any]) -> None:
    child = comp.entities.get(spec.get("entity", ""))
    if child is None:
        return
    via = child.fields.get(spec.get("via", ""))
    if via is not None and (via.spec.get("type") != "reference" or via.spec.get("entity") != entity):
        comp.errors.append(doc.error(("fields", name, "via"), f"'{child.key}.{via.name}' is not a reference to '{entity}'"))
    for i, text in enumerate(_list(spec.get("where"))):
        problem = filter_problem(comp, child, str(text))
        if problem:
            comp.errors.append(doc.error(("fields", name, "where", i), problem))


def _check_related(comp: Composition, draft: EntityDraft, doc: Document, i: int, tab: dict[str, Any]) -> None:
    path = ("layouts", "related", i)
    child = comp.entities.get(tab.get("entity", ""))
    if child is None:
        comp.errors.append(doc.error(path + ("entity",), f"unknown entity '{tab.get('entity')}'"))
        return
    via = child.fields.get(tab.get("via", ""))
    if via is None:
        comp.errors.append(doc.error(path + ("via",), f"'{child.key}' has no field '{tab.get('via')}'"))
    elif via.spec.get("type") != "reference" or via.spec.get("entity") != draft.key:
        comp.errors.append(doc.error(path + ("via",), f"'{child.key}.{via.name}' is not a reference to '{draft.key}'"))
    _check_names(comp, child, doc, path + ("columns",), tab.get("columns"))
    _check_highlight(comp, child, doc, path + ("highlight",), tab.get("highlight"))
    tree = tab.get("tree")
    if isinstance(tree, str):
        parent = child.fields.get(tree)
        if parent is None:
            comp.errors.append(doc.error(path + ("tree",), f"'{child.key}' has no field '{tree}'"))
        elif parent.spec.get("type") != "reference" or parent.spec.get("entity") != child.key:
            comp.errors.append(doc.error(path + ("tree",), f"'{child.key}.{tree}' is not a reference to '{child.key}' "
                                         "itself, so it cannot nest its rows"))


def _check_highlight(comp: Composition, draft: EntityDraft, doc: Document, path: tuple[Any, ...], value: Any) -> None:
    """`highlight:` is a boolean field of the entity, or filters on its fields."""
    if isinstance(value, str):
        if (problem := _unknown_field(comp, draft, doc, value)):
            comp.errors.append(doc.error(path, problem))
        elif draft.fields[value].spec.get("type") != "boolean":
            comp.errors.append(doc.error(path, f"'{value}' must be a boolean field (or give filters instead)"))
        return
    for j, text in enumerate(_list(value)):
        if (problem := filter_problem(comp, draft, str(text))):
            comp.errors.append(doc.error(path + (j,), problem))


def filter_problem(comp: Composition, draft: EntityDraft, text: str) -> str | None:
    try:
        spec = parse_filter(text)
    except FilterSyntaxError as exc:
        return f"bad filter '{text}': {exc}"
    if spec.field == SHARED and spec.field not in draft.fields:
        return None if (spec.op, spec.values) == ("eq", ("$me",)) else f"bad filter '{text}': use 'shared eq $me'"
    target = draft.fields.get(spec.field)
    if target is None:
        return f"bad filter '{text}': unknown field '{spec.field}'"
    kind = all_types().get(target.spec.get("type", ""))
    if kind is not None and spec.op not in kind.operators:
        return f"bad filter '{text}': '{spec.op}' does not apply to a {kind.name} field (use {', '.join(kind.operators)})"
    return None


def _check_role_doc(comp: Composition, doc: Document) -> None:
    for entity in _dict(doc.data.get("permissions")):
        if entity != "*" and entity not in comp.entities and not comp.is_broken(doc, ("permissions", entity)):
            comp.errors.append(doc.error(("permissions", entity), f"unknown entity '{entity}'"))
    for dotted_name in _dict(doc.data.get("fields")):
        if comp.is_broken(doc, ("fields", dotted_name)):
            continue
        entity, _, name = str(dotted_name).partition(".")
        if entity not in comp.entities:
            comp.errors.append(doc.error(("fields", dotted_name), f"unknown entity '{entity}'"))
        elif name not in comp.entities[entity].fields:
            comp.errors.append(doc.error(("fields", dotted_name), f"unknown field '{name}' of '{entity}'"))
