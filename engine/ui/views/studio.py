"""The admin studio: custom fields and pick-lists, fields placed in layouts, settings, users'
roles, and the customisation layer's history with revert.

Every change is a document of the pack shapes saved as a new revision in the customisation
layer, checked by loading the whole registry with it before anything is stored; the studio
shows the DDL it will run, applies it (additive and online: a new nullable column), and every
worker process picks the new registry up on its next request (see AppState.fresh_runtime).
Names the administrator creates carry the `x_` prefix, so a later pack version can never add a
field or pick-list of the same name.
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
from engine.metadata import MetadataError, load_registry
from engine.metadata.registry import ACTIONS, SCOPES, Registry
from engine.runtime import audit, migrate
from engine.runtime.customization import KINDS, load_overlay, reload, save_customization
from engine.runtime.errors import NotFound, ValidationFailed
from engine.runtime.service import Runtime
from engine.runtime.users import load_user, set_roles
from engine.ui.views.admin import require_admin
from engine.ui.web import Ctx, page

PREFIX = "x_"


def unknown(what: str) -> Message:
    return Message("unknown_entity", {"entity": what})



NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
FIELD_TYPES = ("string", "text", "integer", "decimal", "money", "percent", "boolean", "date", "datetime", "email",
               "phone", "url", "choice", "multi_choice", "reference", "user")


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


def field_form(ctx: Ctx) -> dict[str, str]:
    keys = ("name", "type", "label_en", "label_zh", "help_en", "help_zh", "options", "target", "section",
            "default", "required", "in_list", "in_filters", "max_length")
    return {k: ctx.param(k) for k in keys}


def field_changes(ctx: Ctx, entity_key: str, form: dict[str, str]) -> tuple[dict[tuple[str, str], Any], dict[str, str]]:
    """The layer documents a new custom field makes (entity extension, maybe a pick-list)."""
    errors: dict[str, str] = {}
    name = form["name"].lower().removeprefix(PREFIX)
    if not NAME.match(name):
        errors["name"] = ctx.t("studio_bad_name")
    name = PREFIX + name
    if form["type"] not in FIELD_TYPES:
        errors["type"] = ctx.t("studio_bad_type")
    if not form["label_en"] or not form["label_zh"]:
        errors["label_en"] = ctx.t("studio_labels_needed")
    spec: dict[str, Any] = {"type": form["type"], "label": {"en": form["label_en"], "zh": form["label_zh"]}}
    if form["help_en"] or form["help_zh"]:
        spec["help"] = {"en": form["help_en"] or form["help_zh"], "zh": form["help_zh"] or form["help_en"]}
    if form["required"]:
        spec["required"] = True
    if form["default"]:
        spec["default"] = form["default"]
    if form["type"] in ("string",) and form["max_length"].isdigit():
        spec["max_length"] = int(form["max_length"])
    changes: dict[tuple[str, str], Any] = {}
    if form["type"] in ("choice", "multi_choice"):
        options: list[dict[str, Any]] = []
        for line in form["options"].splitlines():
            parts = [p.strip() for p in line.split("|")]
            if not parts[0]:
                continue
            key = re.sub(r"[^a-z0-9_]", "_", parts[0].lower()).strip("_") or f"o{len(options) + 1}"
            zh = parts[1] if len(parts) > 1 and parts[1] else parts[0]
            en = parts[2] if len(parts) > 2 and parts[2] else parts[0]
            options.append({"key": key if key[0].isalpha() else f"o_{key}", "label": {"en": en, "zh": zh}})
        if not options:
            errors["options"] = ctx.t("studio_options_needed")
        spec["picklist"] = name
        changes[("picklist", name)] = {"picklist": name, "label": spec["label"], "options": options}
    if form["type"] == "reference":
        spec["entity"] = form["target"]
        spec["on_delete"] = "set_null"
    doc = current(ctx.runtime, "entity", entity_key) or {"extend": entity_key}
    doc.setdefault("fields", {})[name] = spec
    layouts = doc.setdefault("layouts", {})
    entity = ctx.registry.entity(entity_key)
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
                    apply(ctx, changes, f"add field {PREFIX}{form['name'].removeprefix(PREFIX)} to {entity.key}")
                    ctx.flash(ctx.t("studio_applied"))
                    return ctx.redirect(f"/admin/studio/{entity.key}")
                ddl = effect(ctx.runtime, registry) or ctx.t("studio_no_ddl")
    custom = current(ctx.runtime, "entity", entity.key) or {}
    return ctx.render("studio_entity.html", status=422 if errors else 200, entity=entity, form=form, errors=errors,
                      ddl=ddl, types=FIELD_TYPES, custom_fields=set(custom.get("fields") or {}),
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


@page()
def deactivate_field(ctx: Ctx) -> Response:
    """Hide a custom field everywhere; its column and data stay (revert brings it back)."""
    require_admin(ctx)
    entity_key, name = ctx.request.path_params["entity"], ctx.request.path_params["field"]
    doc = current(ctx.runtime, "entity", entity_key)
    if not doc or name not in (doc.get("fields") or {}):
        raise NotFound(unknown(f"{entity_key}.{name}"))
    doc["fields"][name] = {**doc["fields"][name], "active": False}
    for section in (doc.get("layouts") or {}).get("form", []):
        section["fields"] = [f for f in section.get("fields", []) if f != name]
    lst = (doc.get("layouts") or {}).get("list") or {}
    for key in ("columns", "filters"):
        if key in lst:
            lst[key] = [f for f in lst[key] if f != name]
    doc["layouts"]["form"] = [s for s in doc["layouts"].get("form", []) if s.get("fields")]
    apply(ctx, {("entity", entity_key): doc}, f"deactivate {entity_key}.{name}")
    ctx.flash(ctx.t("studio_applied"))
    return ctx.redirect(f"/admin/studio/{entity_key}")


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
    try:
        candidate(ctx.runtime, {(row["kind"], row["key"]): data})
    except MetadataError as exc:
        ctx.flash("; ".join(str(e) for e in exc.errors), "error")
        return ctx.redirect("/admin/studio")
    apply(ctx, {(row["kind"], row["key"]): data}, f"revert to revision {row['revision']}" if not before
          else f"undo revision {row['revision']}")
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
        doc = {"extend": key, "permissions": wanted} if wanted else None
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
    return ctx.render("studio_roles.html", roles=ctx.registry.roles, role=role, grid=grid, changed=changed,
                      actions=ACTIONS, scopes=SCOPES)


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

