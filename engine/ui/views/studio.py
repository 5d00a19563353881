"""The admin studio: custom fields and pick-lists, entities of the administrator's own (with
their menu group and tabs on linked records), role scopes and field rules, settings, users'
roles, and the customisation layer's history with revert. (The layout editor is
studio_layout.py.)

Every change is a document of the pack shapes saved as a new revision in the customisation
layer, checked by loading the whole registry with it before anything is stored; the studio
shows the DDL it will run, applies it (additive and online: a new nullable column), and every
worker process picks the new registry up on its next request (see AppState.fresh_runtime).
Names the administrator creates carry the `x_` prefix, so a later pack version can never add a
field, pick-list or entity of the same name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.responses import Response

from engine.fieldtypes.autonumber import render
from engine.i18n import Message
from engine.metadata import CUSTOM_PREFIX, MetadataError, load_registry
from engine.metadata.registry import ACTIONS, SCOPES, SYSTEM_FIELDS, Registry
from engine.runtime import audit, migrate
from engine.runtime.customization import KINDS, load_overlay, reload, save_customization
from engine.runtime.errors import NotFound, ValidationFailed
from engine.runtime.service import Runtime
from engine.runtime.users import load_user, set_roles
from engine.ui.views.admin import require_admin
from engine.ui.web import Ctx, page

PREFIX = CUSTOM_PREFIX


def unknown(what: str) -> Message:
    return Message("unknown_entity", {"entity": what})


NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
FIELD_TYPES = ("string", "text", "integer", "decimal", "money", "percent", "boolean", "date", "datetime", "email",
               "phone", "url", "choice", "multi_choice", "stage", "reference", "user")


# -- the layer ------------------------------------------------------------------------------------

def current(runtime: Runtime, kind: str, key: str) -> dict[str, Any] | None:
    """The administrator's current document of (kind, key), if any."""
    ref = f"customization:{kind}/{key}@"
    return next((dict(d["data"]) for d in load_overlay(runtime.engine) if str(d["ref"]).startswith(ref)), None)


def candidate(runtime: Runtime, changes: dict[tuple[str, str], dict[str, Any] | None]) -> Registry:
    """The registry the packs and the layer would make with `changes` applied (MetadataError if not)."""
    docs = [d for d in load_overlay(runtime.engine)
            if tuple(str(d["ref"]).split(":", 1)[1].split("@")[0].split("/", 1)) not in changes]
    docs += [{"kind": kind, "data": data, "ref": f"customization:{kind}/{key}@new"}
             for (kind, key), data in changes.items() if data is not None]
    return load_registry([Path(p.path) for p in runtime.registry.packs if p.path], docs)


def effect(runtime: Runtime, registry: Registry) -> str:
    """The DDL that moving the database to `registry` runs."""
    future = Runtime(registry, runtime.engine, timezone=runtime.timezone, files_dir=runtime.files_dir)
    return migrate.ddl(runtime.engine, future.migration_plan()).strip()


def apply(ctx: Ctx, changes: dict[tuple[str, str], dict[str, Any] | None], comment: str) -> None:
    assert ctx.user is not None
    for (kind, key), data in changes.items():
        save_customization(ctx.runtime.engine, kind, key, data, user_id=ctx.user.id, comment=comment)
    fresh = reload(ctx.runtime)
    fresh.migrate()
    ctx.state.runtime, ctx.state.revision = fresh, fresh.layer_revision  # others see it within a second


# -- screens --------------------------------------------------------------------------------------

@page()
def studio(ctx: Ctx) -> Response:
    require_admin(ctx)
    table = ctx.runtime.table("crm_customization")
    with ctx.runtime.engine.connect() as conn:
        revisions = conn.execute(sa.select(table).order_by(table.c.id.desc()).limit(50)).mappings().all()
    return ctx.render("studio.html", revisions=revisions)


def field_form(ctx: Ctx, prefix: str = "") -> dict[str, str]:
    """The add-a-field form's values (`prefix`: one row of the new-entity form, such as "f2_")."""
    keys = ("name", "type", "label_en", "label_zh", "help_en", "help_zh", "options", "target", "section",
            "default", "required", "in_list", "in_filters", "max_length", "tab")
    return {k: ctx.param(prefix + k) for k in keys}


def parse_options(text: str, *, stages: bool = False) -> list[dict[str, Any]]:
    """Options (or stages) typed one per line as `key|中文|English` (stages: `|won` or `|lost` after)."""
    options: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if not parts[0]:
            continue
        key = re.sub(r"[^a-z0-9_]", "_", parts[0].lower()).strip("_") or f"o{len(options) + 1}"
        key = key if key[0].isalpha() else f"o_{key}"
        if any(o["key"] == key for o in options):
            continue
        zh = parts[1] if len(parts) > 1 and parts[1] else parts[0]
        en = parts[2] if len(parts) > 2 and parts[2] else parts[0]
        option: dict[str, Any] = {"key": key, "label": {"en": en, "zh": zh}}
        if stages and len(parts) > 3 and parts[3] in ("won", "lost"):
            option["outcome"] = parts[3]
        options.append(option)
    return options


def field_spec(ctx: Ctx, form: dict[str, str], *, prefix: str, picklist_key: str | None = None
               ) -> tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, str]]:
    """A new field from the form: (stored name, field spec, its new pick-list or None, errors by form key).
    Fields of a pack's entity get the x_ prefix; fields of the administrator's own entities need none."""
    errors: dict[str, str] = {}
    name = form["name"].lower().removeprefix(PREFIX)
    if not NAME.match(name):
        errors["name"] = ctx.t("studio_bad_name")
    name = prefix + name
    kind = form["type"]
    if kind not in FIELD_TYPES:
        errors["type"] = ctx.t("studio_bad_type")
    if not form["label_en"] or not form["label_zh"]:
        errors["label_en"] = ctx.t("studio_labels_needed")
    spec: dict[str, Any] = {"type": kind, "label": {"en": form["label_en"], "zh": form["label_zh"]}}
    if form["help_en"] or form["help_zh"]:
        spec["help"] = {"en": form["help_en"] or form["help_zh"], "zh": form["help_zh"] or form["help_en"]}
    if form["required"]:
        spec["required"] = True
    if form["default"]:
        spec["default"] = form["default"]
    if kind == "string" and form["max_length"].isdigit():
        spec["max_length"] = int(form["max_length"])
    picklist = None
    if kind in ("choice", "multi_choice"):
        options = parse_options(form["options"])
        if not options:
            errors["options"] = ctx.t("studio_options_needed")
        spec["picklist"] = picklist_key or name
        picklist = {"picklist": spec["picklist"], "label": spec["label"], "options": options}
    if kind == "stage":
        spec["stages"] = parse_options(form["options"], stages=True)
        if not spec["stages"]:
            errors["options"] = ctx.t("studio_options_needed")
        else:
            spec.setdefault("default", spec["stages"][0]["key"])
    if kind == "reference":
        if form["target"] not in ctx.registry.entities:
            errors["target"] = ctx.t("studio_target_needed")
        spec["entity"] = form["target"]
        spec["on_delete"] = "restrict" if spec.get("required") else "set_null"
    return name, spec, picklist, errors


def field_changes(ctx: Ctx, entity_key: str, form: dict[str, str]) -> tuple[dict[tuple[str, str], Any], dict[str, str]]:
    """The layer documents a new custom field makes (entity extension, maybe a pick-list)."""
    doc = current(ctx.runtime, "entity", entity_key) or {"extend": entity_key}
    own = "entity" in doc  # an entity the administrator made: its fields need no prefix
    name, spec, picklist, errors = field_spec(ctx, form, prefix="" if own else PREFIX,
                                              picklist_key=f"{entity_key}_{form['name'].lower()}" if own else None)
    entity = ctx.registry.entity(entity_key)
    if entity.has(name) or name in SYSTEM_FIELDS or name in (doc.get("fields") or {}):
        errors.setdefault("name", ctx.t("studio_field_exists"))
    changes: dict[tuple[str, str], Any] = {}
    if picklist is not None:
        if picklist["picklist"] in ctx.registry.picklists:
            errors.setdefault("name", ctx.t("studio_field_exists"))
        changes[("picklist", picklist["picklist"])] = picklist
    doc.setdefault("fields", {})[name] = spec
    layouts = doc.setdefault("layouts", {})
    if form["section"]:
        section = next((s for s in entity.form if s.label.get("en") == form["section"]), None)
        label = dict(section.label) if section else {"en": form["section"], "zh": form["section"]}
        layouts.setdefault("form", []).append({"section": label, "fields": [name]})
    if form["in_list"]:
        layouts.setdefault("list", {}).setdefault("columns", []).append(name)
    if form["in_filters"]:
        layouts.setdefault("list", {}).setdefault("filters", []).append(name)
    changes[("entity", entity_key)] = doc
    return changes, errors


@page()
def entity_studio(ctx: Ctx) -> Response:
    """An entity's fields; the form to add a custom field, previewed before it is applied."""
    require_admin(ctx)
    entity = ctx.registry.entities.get(ctx.request.path_params["entity"])
    if entity is None:
        raise NotFound(unknown(ctx.request.path_params["entity"]))
    form = field_form(ctx) if ctx.form is not None else {"type": "string"}
    errors: dict[str, str] = {}
    ddl = ""
    if ctx.form is not None:
        changes, errors = field_changes(ctx, entity.key, field_form(ctx))
        if not errors:
            try:
                registry = candidate(ctx.runtime, changes)
            except MetadataError as exc:
                errors[""] = "; ".join(str(e) for e in exc.errors)
            else:
                if ctx.param("apply"):
                    added = next(iter(set(registry.entity(entity.key).fields) - set(entity.fields)), form["name"])
                    apply(ctx, changes, f"add field {added} to {entity.key}")
                    ctx.flash(ctx.t("studio_applied"))
                    return ctx.redirect(f"/admin/studio/{entity.key}")
                ddl = effect(ctx.runtime, registry) or ctx.t("studio_no_ddl")
    custom = current(ctx.runtime, "entity", entity.key) or {}
    own = "entity" in custom  # the administrator's own entity: every field is custom
    custom_fields = {n for n, spec in (custom.get("fields") or {}).items() if not spec.get("extend")}
    return ctx.render("studio_entity.html", status=422 if errors else 200, entity=entity, form=form, errors=errors,
                      ddl=ddl, types=FIELD_TYPES, custom_fields=custom_fields, own=own,
                      entities=sorted(ctx.registry.entities.values(), key=lambda e: e.key))


def next_number(runtime: Runtime, entity_key: str, name: str, pattern: str) -> str:
    """The code the next record would get with `pattern` (without drawing it)."""
    now = runtime.now()
    prefix = render(pattern, now)
    counter = runtime.table("crm_counter")
    with runtime.engine.connect() as conn:
        last = conn.execute(sa.select(counter.c.value).where(counter.c.key == f"{entity_key}.{name}:{prefix}")).scalar()
    return render(pattern, now, int(last or 0) + 1)


@page()
def edit_field(ctx: Ctx) -> Response:
    """Change a field's labels, help, required flag and default, and an autonumber's pattern
    (编号规则, with a preview of the next number). Pack fields get an `extend: true` patch."""
    require_admin(ctx)
    entity = ctx.registry.entities.get(ctx.request.path_params["entity"])
    name = ctx.request.path_params["field"]
    if entity is None or not entity.has(name) or entity.field(name).system:
        raise NotFound(unknown(f"{ctx.request.path_params['entity']}.{name}"))
    f = entity.field(name)
    errors: dict[str, str] = {}
    preview = next_number(ctx.runtime, entity.key, name, str(f.options["pattern"])) if f.type == "autonumber" else ""
    if ctx.form is not None:
        patch: dict[str, Any] = {"label": {"en": ctx.param("label_en") or f.label.get("en", name),
                                           "zh": ctx.param("label_zh") or f.label.get("zh", name)},
                                 "required": bool(ctx.param("required"))}
        if ctx.param("help_en") or ctx.param("help_zh"):
            patch["help"] = {"en": ctx.param("help_en") or ctx.param("help_zh"),
                             "zh": ctx.param("help_zh") or ctx.param("help_en")}
        if ctx.param("default"):
            patch["default"] = ctx.param("default")
        if f.type == "autonumber" and ctx.param("pattern"):
            patch["pattern"] = ctx.param("pattern")
        doc = current(ctx.runtime, "entity", entity.key) or {"extend": entity.key}
        fields = doc.setdefault("fields", {})
        if name in fields and not fields[name].get("extend"):  # the administrator's own field
            fields[name] = {**fields[name], **patch}
        else:
            fields[name] = {**fields.get(name, {}), "extend": True, **patch}
        try:
            registry = candidate(ctx.runtime, {("entity", entity.key): doc})
        except MetadataError as exc:
            errors[""] = "; ".join(str(e) for e in exc.errors)
        else:
            changed = registry.entity(entity.key).field(name)
            if changed.type == "autonumber":
                preview = next_number(ctx.runtime, entity.key, name, str(changed.options["pattern"]))
            if ctx.param("apply"):
                apply(ctx, {("entity", entity.key): doc}, f"edit {entity.key}.{name}")
                ctx.flash(ctx.t("studio_applied"))
                return ctx.redirect(f"/admin/studio/{entity.key}")
    return ctx.render("studio_field.html", status=422 if errors else 200, entity=entity, field=f, errors=errors,
                      preview=preview)


def without_field(doc: dict[str, Any], name: str) -> None:
    """Take field `name` out of the layouts of a layer document (its definition stays)."""
    layouts = doc.get("layouts") or {}
    replaced = set(layouts.get("replace") or ()) | ({"form", "detail"} if "entity" in doc else set())
    for kind in ("form", "detail"):
        if kind not in layouts:
            continue
        sections = []
        for section in layouts[kind]:
            had = name in section.get("fields", [])
            section["fields"] = [f for f in section.get("fields", []) if f != name]
            if section["fields"] or not had or kind in replaced:  # the administrator's empty sections stay
                sections.append(section)
        layouts[kind] = sections
    if "search" in doc:
        doc["search"] = [f for f in doc["search"] if f != name]
    lst = layouts.get("list") or {}
    for key in ("columns", "filters", "sort"):
        if key in lst:
            lst[key] = [f for f in lst[key] if f.lstrip("-") != name]


@page()
def deactivate_field(ctx: Ctx) -> Response:
    """Hide a custom field everywhere; its column and data stay (revert brings it back)."""
    require_admin(ctx)
    entity_key, name = ctx.request.path_params["entity"], ctx.request.path_params["field"]
    doc = current(ctx.runtime, "entity", entity_key)
    if not doc or name not in (doc.get("fields") or {}) or doc["fields"][name].get("extend"):
        raise NotFound(unknown(f"{entity_key}.{name}"))
    if doc.get("title") == name:
        ctx.flash(ctx.t("studio_title_stays"), "error")
        return ctx.redirect(f"/admin/studio/{entity_key}")
    doc["fields"][name] = {**doc["fields"][name], "active": False}
    without_field(doc, name)
    changes: dict[tuple[str, str], Any] = {("entity", entity_key): doc}
    try:
        candidate(ctx.runtime, changes)
    except MetadataError as exc:  # e.g. the board or a related tab of another entity uses it
        ctx.flash("; ".join(str(e) for e in exc.errors), "error")
        return ctx.redirect(f"/admin/studio/{entity_key}")
    apply(ctx, changes, f"deactivate {entity_key}.{name}")
    ctx.flash(ctx.t("studio_applied"))
    return ctx.redirect(f"/admin/studio/{entity_key}")


def without_entity(runtime: Runtime, key: str) -> dict[tuple[str, str], dict[str, Any] | None]:
    """The layer changes that take the administrator's entity `key` off every screen: its
    definition removed, and the related tabs and role grants that name it. Its table and data
    stay; the menu keeps naming it (a menu entry of an undefined custom entity is skipped), so
    making its definition current again brings it back where it was."""
    changes: dict[tuple[str, str], dict[str, Any] | None] = {("entity", key): None}
    for doc in load_overlay(runtime.engine):
        kind, data = doc["kind"], doc["data"]
        doc_key = str(data.get(kind) or data.get("extend"))
        if kind == "entity" and doc_key != key:
            tabs = (data.get("layouts") or {}).get("related")
            if tabs and any(t.get("entity") == key for t in tabs):
                data["layouts"]["related"] = [t for t in tabs if t.get("entity") != key]
                changes[("entity", doc_key)] = data
        elif kind == "role":
            permissions = {e: g for e, g in (data.get("permissions") or {}).items() if e != key}
            rules = {f: r for f, r in (data.get("fields") or {}).items() if not f.startswith(key + ".")}
            if permissions != (data.get("permissions") or {}) or rules != (data.get("fields") or {}):
                slim = {"extend": data["extend"], **({"permissions": permissions} if permissions else {}),
                        **({"fields": rules} if rules else {})} if "extend" in data else \
                    {**data, "permissions": permissions, "fields": rules}
                changes[("role", doc_key)] = slim if len(slim) > 1 else None
    return changes


def own_entity(runtime: Runtime, key: str) -> bool:
    """True when the administrator created entity `key` (its definition is in the layer)."""
    return "entity" in (current(runtime, "entity", key) or {})


@page()
def remove_entity(ctx: Ctx) -> Response:
    """Take one of the administrator's entities off every screen (its table and data stay)."""
    require_admin(ctx)
    key = ctx.request.path_params["entity"]
    if not own_entity(ctx.runtime, key):
        raise NotFound(unknown(key))
    changes = without_entity(ctx.runtime, key)
    try:
        candidate(ctx.runtime, changes)
    except MetadataError as exc:  # a field of another entity still links to it
        ctx.flash(ctx.t("studio_entity_in_use") + " " + "; ".join(str(e) for e in exc.errors), "error")
        return ctx.redirect(f"/admin/studio/{key}")
    apply(ctx, changes, f"remove entity {key}")
    ctx.flash(ctx.t("studio_entity_removed"))
    return ctx.redirect("/admin/studio")


@page()
def revert(ctx: Ctx) -> Response:
    """Make an earlier revision current again (as a new revision: the history keeps both)."""
    require_admin(ctx)
    table = ctx.runtime.table("crm_customization")
    revision_id = int(ctx.request.path_params["revision_id"])
    with ctx.runtime.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == revision_id)).mappings().first()
    if row is None or row["kind"] not in KINDS:
        raise NotFound(unknown(str(revision_id)))
    data = json.loads(row["data"]) if row["active"] else None
    before = ctx.param("before")  # "before": undo this revision (the one before it, or nothing)
    if before:
        with ctx.runtime.engine.connect() as conn:
            prior = conn.execute(sa.select(table).where(table.c.kind == row["kind"], table.c.key == row["key"],
                                                        table.c.revision < row["revision"])
                                 .order_by(table.c.revision.desc()).limit(1)).mappings().first()
        data = json.loads(prior["data"]) if prior is not None and prior["active"] else None
    changes: dict[tuple[str, str], dict[str, Any] | None] = {(row["kind"], row["key"]): data}
    if row["kind"] == "entity" and data is None and own_entity(ctx.runtime, row["key"]):
        changes = without_entity(ctx.runtime, row["key"])  # an entity of its own: off every screen
    try:
        candidate(ctx.runtime, changes)
    except MetadataError as exc:
        ctx.flash("; ".join(str(e) for e in exc.errors), "error")
        return ctx.redirect("/admin/studio")
    apply(ctx, changes, f"revert to revision {row['revision']}" if not before else f"undo revision {row['revision']}")
    ctx.flash(ctx.t("studio_applied"))
    return ctx.redirect("/admin/studio")


# -- pick-lists (数据字典) --------------------------------------------------------------------------

@page()
def picklists(ctx: Ctx) -> Response:
    require_admin(ctx)
    custom = {str(d["data"].get("picklist") or d["data"].get("extend")) for d in load_overlay(ctx.runtime.engine)
              if d["kind"] == "picklist"}
    return ctx.render("studio_picklists.html", picklists=sorted(ctx.registry.picklists.values(), key=lambda p: p.key),
                      custom=custom)


def picklist_changes(ctx: Ctx, key: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The layer document an edit of pick-list `key` makes: labels, active flags, order, new options.

    A pick-list the administrator created is rewritten whole; a pack's pick-list gets an
    extension that changes options (`extend: true`), adds new ones and sets their order."""
    assert ctx.form is not None
    picklist = ctx.registry.picklists[key]
    errors: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for i, option in enumerate(picklist.options):
        zh, en = ctx.param(f"zh_{option.key}"), ctx.param(f"en_{option.key}")
        position = ctx.param(f"pos_{option.key}")
        rows.append({"key": option.key, "label": {"en": en or option.label.get("en", option.key),
                                                   "zh": zh or option.label.get("zh", option.key)},
                     "active": f"active_{option.key}" in ctx.form,
                     "pos": float(position) if re.fullmatch(r"-?\d+(\.\d+)?", position) else float(i + 1)})
    new_key = re.sub(r"[^a-z0-9_]", "_", ctx.param("new_key").lower()).strip("_")
    if new_key:
        if any(r["key"] == new_key for r in rows):
            errors["new_key"] = ctx.t("studio_option_exists")
        elif not ctx.param("new_zh") or not ctx.param("new_en"):
            errors["new_key"] = ctx.t("studio_labels_needed")
        else:
            rows.append({"key": new_key, "label": {"en": ctx.param("new_en"), "zh": ctx.param("new_zh")},
                         "active": True, "pos": float(len(rows) + 1), "new": True})
    rows.sort(key=lambda r: r["pos"])
    existing = current(ctx.runtime, "picklist", key)
    if existing is not None and existing.get("picklist") == key:  # created in the studio: rewrite it
        doc = {**existing, "options": [{"key": r["key"], "label": r["label"], **({} if r["active"] else {"active": False})}
                                       for r in rows]}
    else:
        # Compare with the pick-list as the packs alone define it (without this layer document):
        # options the packs lack are new, the others are changed only where they differ.
        originals = {o.key: o for o in candidate(ctx.runtime, {("picklist", key): None}).picklists[key].options}
        options: list[dict[str, Any]] = []
        for r in rows:
            original = originals.get(r["key"])
            if original is None:
                options.append({"key": r["key"], "label": r["label"], **({} if r["active"] else {"active": False})})
            elif dict(original.label) != r["label"] or original.active != r["active"]:
                options.append({"key": r["key"], "extend": True, "label": r["label"], "active": r["active"]})
        doc = {"extend": key, "options": options, "order": [r["key"] for r in rows]}
    return doc, errors


@page()
def picklist_editor(ctx: Ctx) -> Response:
    require_admin(ctx)
    key = ctx.request.path_params["key"]
    if key not in ctx.registry.picklists:
        raise NotFound(unknown(key))
    errors: dict[str, str] = {}
    if ctx.form is not None:
        doc, errors = picklist_changes(ctx, key)
        if not errors:
            try:
                candidate(ctx.runtime, {("picklist", key): doc})
            except MetadataError as exc:
                errors[""] = "; ".join(str(e) for e in exc.errors)
            else:
                apply(ctx, {("picklist", key): doc}, f"edit pick-list {key}")
                ctx.flash(ctx.t("studio_applied"))
                return ctx.redirect(f"/admin/studio/picklists/{key}")
    used_by = [f for e in ctx.registry.entities.values() for f in e.fields.values()
               if f.picklist is not None and f.picklist.key == key]
    return ctx.render("studio_picklist.html", status=422 if errors else 200, picklist=ctx.registry.picklists[key],
                      errors=errors, used_by=used_by)


# -- roles ----------------------------------------------------------------------------------------

@page()
def role_grid(ctx: Ctx) -> Response:
    """A role's scope for every entity and action, as a grid of selects; saved as a role
    extension in the layer holding only what differs from the packs (and audited)."""
    require_admin(ctx)
    key = ctx.request.path_params.get("key") or ""
    if not key:
        return ctx.render("studio_roles.html", roles=ctx.registry.roles, role=None, grid={}, changed=set())
    if key not in ctx.registry.roles:
        raise NotFound(unknown(key))
    base = candidate(ctx.runtime, {("role", key): None}).roles[key]
    entities = sorted(ctx.registry.entities)
    if ctx.form is not None:
        wanted: dict[str, dict[str, str]] = {}
        for entity in entities:
            for action in ACTIONS:
                scope = ctx.param(f"{entity}.{action}")
                if scope in SCOPES and scope != base.scope(entity, action):
                    wanted.setdefault(entity, {})[action] = scope
        rules = (current(ctx.runtime, "role", key) or {}).get("fields")  # field rules are kept as they are
        doc: dict[str, Any] | None = {"extend": key, **({"permissions": wanted} if wanted else {}),
                                      **({"fields": rules} if rules else {})}
        if doc is not None and len(doc) == 1:
            doc = None
        if current(ctx.runtime, "role", key) != doc:
            try:
                candidate(ctx.runtime, {("role", key): doc})
            except MetadataError as exc:
                ctx.flash("; ".join(str(e) for e in exc.errors), "error")
                return ctx.redirect(f"/admin/roles/{key}")
            apply(ctx, {("role", key): doc}, f"permissions of role {key}")
            audit.record(ctx.runtime, "role_permissions_changed", user_id=ctx.actor.user_id,
                         username=ctx.actor.username, detail={"role": key, "differs_from_packs": wanted})
            ctx.flash(ctx.t("studio_applied"))
        return ctx.redirect(f"/admin/roles/{key}")
    role = ctx.registry.roles[key]
    grid = {entity: {action: role.scope(entity, action) for action in ACTIONS} for entity in entities}
    changed = {(e, a) for e in entities for a in ACTIONS if grid[e][a] != base.scope(e, a)}
    rule_counts = {e: sum(1 for f in role.fields if f.startswith(e + ".")) for e in entities}
    return ctx.render("studio_roles.html", roles=ctx.registry.roles, role=role, grid=grid, changed=changed,
                      actions=ACTIONS, scopes=SCOPES, rule_counts=rule_counts)


FIELD_RULES = ("visible", "read_only", "hidden")


@page()
def role_fields(ctx: Ctx) -> Response:
    """A role's field rules on one entity (visible, read-only, hidden), saved in the role's
    extension with what differs from the packs ("visible" lifts a pack's rule); audited."""
    require_admin(ctx)
    key, entity_key = ctx.request.path_params["key"], ctx.request.path_params["entity"]
    role, entity = ctx.registry.roles.get(key), ctx.registry.entities.get(entity_key)
    if role is None or entity is None:
        raise NotFound(unknown(f"{key}/{entity_key}"))
    base = candidate(ctx.runtime, {("role", key): None}).roles[key]
    fields = [f for f in entity.user_fields if not f.internal]
    rules = {f.name: role.fields.get(f"{entity.key}.{f.name}", "visible") for f in fields}
    errors: dict[str, str] = {}
    if ctx.form is not None:
        wanted: dict[str, str] = {}
        creates = role.scope(entity.key, "create") != "none"
        for f in fields:
            level = ctx.param(f"rule.{f.name}") or "visible"
            rules[f.name] = level
            if level not in FIELD_RULES:
                errors[f.name] = ctx.t("studio_bad_rule")
            elif level != "visible" and creates and f.required and f.default is None and f.type != "autonumber":
                errors[f.name] = ctx.t("studio_rule_required")
            elif level != base.fields.get(f"{entity.key}.{f.name}", "visible"):
                wanted[f"{entity.key}.{f.name}"] = level
        if not errors:
            doc = current(ctx.runtime, "role", key) or {"extend": key}
            kept = {k: v for k, v in (doc.get("fields") or {}).items() if not k.startswith(entity.key + ".")}
            doc["fields"] = {**kept, **wanted}
            if not doc["fields"]:
                del doc["fields"]
            new_doc = doc if len(doc) > 1 or "role" in doc else None
            if current(ctx.runtime, "role", key) != new_doc:
                try:
                    candidate(ctx.runtime, {("role", key): new_doc})
                except MetadataError as exc:
                    errors[""] = "; ".join(str(e) for e in exc.errors)
                else:
                    apply(ctx, {("role", key): new_doc}, f"field rules of role {key} on {entity.key}")
                    audit.record(ctx.runtime, "role_permissions_changed", user_id=ctx.actor.user_id,
                                 username=ctx.actor.username,
                                 detail={"role": key, "entity": entity.key, "field_rules_differing_from_packs": wanted})
            if not errors:
                ctx.flash(ctx.t("studio_applied"))
                return ctx.redirect(f"/admin/roles/{key}/fields/{entity.key}")
    changed = {n for n, level in rules.items() if level != base.fields.get(f"{entity.key}.{n}", "visible")}
    return ctx.render("studio_role_fields.html", status=422 if errors else 200, roles=ctx.registry.roles, role=role,
                      entity=entity, fields=fields, rules=rules, changed=changed, levels=FIELD_RULES, errors=errors)


@page()
def settings_form(ctx: Ctx) -> Response:
    require_admin(ctx)
    errors: dict[str, str] = {}
    if ctx.form is not None:
        assert ctx.user is not None
        for key in ctx.registry.settings:
            if key in ctx.form:
                try:
                    ctx.runtime.set_setting(key, ctx.param(key), by=ctx.actor)
                except ValidationFailed as exc:
                    errors[key] = " ".join(m.text(ctx.language) for ms in exc.errors.values() for m in ms)
        if not errors:
            ctx.flash(ctx.t("studio_applied"))
            return ctx.redirect("/admin/settings")
    values = {key: ctx.runtime.setting(key) for key in ctx.registry.settings}
    return ctx.render("studio_settings.html", status=422 if errors else 200, values=values, errors=errors)


@page()
def users_roles(ctx: Ctx) -> Response:
    require_admin(ctx)
    users, user_roles = ctx.runtime.table("crm_user"), ctx.runtime.table("crm_user_role")
    if ctx.form is not None:
        target = load_user(ctx.runtime, int(ctx.param("user") or 0))
        if target is None:
            raise NotFound(unknown(ctx.param("user")))
        set_roles(ctx.runtime, target.id, tuple(str(r) for r in ctx.form.getlist("roles")), by=ctx.actor)
        ctx.flash(ctx.t("studio_applied"))
        return ctx.redirect("/admin/users")
    with ctx.runtime.engine.connect() as conn:
        people = conn.execute(sa.select(users.c.id, users.c.username, users.c.display_name, users.c.is_admin)
                              .order_by(users.c.username)).mappings().all()
        roles: dict[int, set[str]] = {}
        for user_id, role in conn.execute(sa.select(user_roles.c.user_id, user_roles.c.role)):
            roles.setdefault(int(user_id), set()).add(role)
    return ctx.render("studio_users.html", people=people, roles=roles)



# -- the administrator's own entities -------------------------------------------------------------

ENTITY_ROWS = 6  # field rows of the new-entity form (more fields: the entity's page afterwards)
FILTERABLE = ("choice", "multi_choice", "stage", "reference", "user", "boolean", "date")
NEW_GROUP = "__new"


def entity_form(ctx: Ctx) -> dict[str, Any]:
    keys = ("name", "label_en", "label_zh", "title_name", "title_en", "title_zh", "menu", "group_en", "group_zh")
    if ctx.form is None:
        first = ctx.registry.menu[0].key if ctx.registry.menu else NEW_GROUP
        return {"title_name": "name", "title_en": "Name", "title_zh": "名称", "menu": first,
                "rows": [{"type": "string"} for _ in range(ENTITY_ROWS)]}
    form: dict[str, Any] = {k: ctx.param(k) for k in keys}
    form["rows"] = [field_form(ctx, f"f{i}_") for i in range(1, ENTITY_ROWS + 1)]
    return form


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def entity_changes(ctx: Ctx, form: dict[str, Any]) -> tuple[str, dict[tuple[str, str], Any], dict[str, str]]:
    """The layer documents a new entity makes: its definition (fields, sensible default layouts),
    the pick-lists of its choice fields, its place in the menu, tabs on the records it links to."""
    errors: dict[str, str] = {}
    name = form["name"].lower().removeprefix(PREFIX)
    if not NAME.match(name):
        errors["name"] = ctx.t("studio_bad_name")
    key = PREFIX + name
    if key in ctx.registry.entities or current(ctx.runtime, "entity", key) is not None:
        errors["name"] = ctx.t("studio_entity_exists")
    if not form["label_en"] or not form["label_zh"]:
        errors["label_en"] = ctx.t("studio_labels_needed")
    title = form["title_name"].lower() or "name"
    if not NAME.match(title) or title in SYSTEM_FIELDS:
        errors["title_name"] = ctx.t("studio_bad_name")
    fields: dict[str, dict[str, Any]] = {title: {
        "type": "string", "required": True, "max_length": 200,
        "label": {"en": form["title_en"] or form["title_zh"] or "Name", "zh": form["title_zh"] or form["title_en"] or "名称"}}}
    changes: dict[tuple[str, str], Any] = {}
    tabs: list[tuple[str, str]] = []
    for i, row in enumerate(form["rows"], 1):
        if not row["name"]:
            if row["label_en"] or row["label_zh"]:
                errors[f"f{i}_name"] = ctx.t("studio_bad_name")
            continue
        field, spec, picklist, errs = field_spec(ctx, row, prefix="", picklist_key=f"{key}_{slug(row['name'])}")
        errors.update({f"f{i}_{k}": v for k, v in errs.items()})
        if field in fields or field in SYSTEM_FIELDS:
            errors[f"f{i}_name"] = ctx.t("studio_field_exists")
        fields[field] = spec
        if picklist is not None:
            changes[("picklist", picklist["picklist"])] = picklist
        if spec["type"] == "reference" and row["tab"] and not errs:
            tabs.append((spec["entity"], field))
    longer = [n for n, f in fields.items() if f["type"] == "text"]
    basics = [n for n in fields if n not in longer]
    form_layout = [{"section": {"en": "Basic information", "zh": "基本信息"}, "columns": 2, "fields": basics}]
    if longer:
        form_layout.append({"section": {"en": "Notes", "zh": "备注"}, "columns": 1, "fields": longer})
    columns = [title] + [n for n in basics if n != title and fields[n]["type"] != "multi_choice"][:4] + ["owner"]
    doc = {"entity": key, "label": {"en": form["label_en"], "zh": form["label_zh"]}, "title": title,
           "search": [title] + [n for n, f in fields.items() if n != title and f["type"] in ("string", "email", "phone")][:3],
           "fields": fields,
           "layouts": {"form": form_layout,
                       "list": {"columns": columns, "sort": ["-updated_at"],
                                "filters": [n for n, f in fields.items() if f["type"] in FILTERABLE] + ["owner"]}}}
    changes[("entity", key)] = doc
    menu = current(ctx.runtime, "menu", "menu") or {"menu": []}
    groups = {g.key for g in ctx.registry.menu}
    if form["menu"] == NEW_GROUP:
        if not form["group_en"] or not form["group_zh"]:
            errors["menu"] = ctx.t("studio_labels_needed")
        group = PREFIX + (slug(form["group_en"]) or name)
        if group in groups or not NAME.match(group):
            group = key
        menu["menu"].append({"group": group, "label": {"en": form["group_en"], "zh": form["group_zh"]},
                             "entities": [key]})
        changes[("menu", "menu")] = menu
    elif form["menu"] not in groups:
        errors["menu"] = ctx.t("studio_bad_menu")
    else:
        entry = next((g for g in menu["menu"] if g.get("group") == form["menu"]), None)
        if entry is None:
            menu["menu"].append({"group": form["menu"], "entities": [key]})
        elif key not in entry.setdefault("entities", []):
            entry["entities"].append(key)
        changes[("menu", "menu")] = menu
    for target, via in tabs:  # a tab of these records on the record they link to
        ext = changes.get(("entity", target)) or current(ctx.runtime, "entity", target) or {"extend": target}
        ext.setdefault("layouts", {}).setdefault("related", []).append({"entity": key, "via": via})
        changes[("entity", target)] = ext
    return key, changes, errors


@page()
def new_entity(ctx: Ctx) -> Response:
    """Create an entity of the administrator's own (x_NAME): its fields, default layouts, menu
    group and tabs; previewed with its CREATE TABLE, then applied live to every screen and the API."""
    require_admin(ctx)
    form = entity_form(ctx)
    errors: dict[str, str] = {}
    ddl, key, board = "", "", False
    if ctx.form is not None:
        key, changes, errors = entity_changes(ctx, form)
        if not errors:
            try:
                registry = candidate(ctx.runtime, changes)
            except MetadataError as exc:
                errors[""] = "; ".join(str(e) for e in exc.errors)
            else:
                if ctx.param("apply"):
                    apply(ctx, changes, f"add entity {key}")
                    ctx.flash(ctx.t("studio_entity_created"))
                    return ctx.redirect(f"/admin/studio/{key}")
                ddl = effect(ctx.runtime, registry) or ctx.t("studio_no_ddl")
                board = registry.entity(key).board is not None
    return ctx.render("studio_new_entity.html", status=422 if errors else 200, form=form, errors=errors, ddl=ddl,
                      key=key, board=board, types=FIELD_TYPES, new_group=NEW_GROUP,
                      entities=sorted(ctx.registry.entities.values(), key=lambda e: e.key))
