"""The generated screens of every entity: list, detail, form, board, recycle bin, bulk actions
and CSV export. Everything they show comes from the registry; every read and write goes through
the record service as the signed-in user, so its scope and rules apply here too."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from starlette.datastructures import QueryParams, UploadFile
from starlette.responses import JSONResponse, Response, StreamingResponse

from engine.fieldtypes.base import FieldValueError
from engine.i18n import Message
from engine.metadata.registry import Action, Entity, Field, Related, Section, text
from engine.runtime import audit, files
from engine.runtime.errors import Conflict, Forbidden, NotFound, RecordError, ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.users import active_users, load_user
from engine.ui import listing
from engine.ui.render import display
from engine.ui.web import Ctx, client_address, page

BOARD_CARDS = 30  # cards shown per board column; the column's count and sums cover all records
EXPORT_BATCH = 500


# -- shared lookups -------------------------------------------------------------------------------

def entity_of(ctx: Ctx) -> Entity:
    entity = ctx.records.entity(ctx.request.path_params["entity"])  # NotFound for unknown keys
    if not ctx.can(entity, "read"):
        raise NotFound(Message("unknown_entity", {"entity": entity.key}))
    return entity


def sections(ctx: Ctx, entity: Entity, kind: str = "detail") -> tuple[Section, ...]:
    """The layout's sections without the fields the user may not see."""
    chosen = entity.detail if kind == "detail" else entity.form
    chosen = chosen or entity.form or entity.detail
    if not chosen:
        chosen = (Section({"en": "Details", "zh": "详细信息"}, tuple(f.name for f in entity.user_fields), 2),)
    hidden = ctx.records.hidden(entity)
    return tuple(Section(s.label, tuple(n for n in s.fields if n not in hidden and entity.has(n)), s.columns)
                 for s in chosen)


def shown_fields(ctx: Ctx, entity: Entity, names: Iterable[str]) -> list[Field]:
    """The fields named, less unknown ones and those hidden from the user."""
    hidden = ctx.records.hidden(entity)
    return [entity.field(n) for n in names if entity.has(n) and n not in hidden]


def editable(f: Field) -> bool:
    return not f.system and not f.kind.derived and not f.read_only


def editor(ctx: Ctx, entity: Entity) -> Callable[[Field], bool]:
    """Whether the user may change a field in a form: by type and by their roles' field rules."""
    rules = ctx.records.field_rules(entity)
    return lambda f: editable(f) and f.name not in rules


def users(ctx: Ctx) -> list[dict[str, Any]]:
    """Active users for user pickers (an SME has a few hundred at most), cached briefly per process."""
    return active_users(ctx.runtime)


def title_of(entity: Entity, record: dict[str, Any]) -> str:
    # A title that is a reference or a user shows the name it points at, not the id.
    value = (record.get("_titles") or {}).get(entity.title) or record.get(entity.title)
    return str(value) if value not in (None, "") else f"#{record.get('id')}"


def errors_text(ctx: Ctx, exc: RecordError) -> str:
    if isinstance(exc, ValidationFailed):
        return " ".join(m.text(ctx.language) for ms in exc.errors.values() for m in ms)
    return exc.message.text(ctx.language)


# -- list -----------------------------------------------------------------------------------------

def list_request(ctx: Ctx, entity: Entity) -> tuple[listing.ListRequest, list[listing.SavedView]]:
    assert ctx.user is not None
    return listing.from_url(ctx.runtime, ctx.records, ctx.user.id, entity, ctx.request.query_params)


@page()
def list_view(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    req, saved = list_request(ctx, entity)
    # Join only the titles the page shows: each reference joined costs on every row it reads.
    result = ctx.records.query(entity.key, replace(req.query(), highlight=entity.list.highlight,
                                                   titles=(*req.columns, entity.title)))
    columns = shown_fields(ctx, entity, req.columns)
    filters = shown_fields(ctx, entity, [f.name for f in listing.filter_fields(entity)])
    choosable = shown_fields(ctx, entity, [n for n in entity.fields if n not in ("deleted_at", "version")])
    return ctx.render("list.html", entity=entity, req=req, page=result, columns=columns, saved=saved,
                      filter_fields=filters, users=users(ctx), base=f"/app/{entity.key}", all_columns=choosable)


@page()
def save_view(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    assert ctx.user is not None and ctx.form is not None
    query = str(ctx.form.get("query", ""))
    req = listing.parse(entity, QueryParams(query))
    ctx.records.query(entity.key, listing.resolve_title_filters(ctx.runtime, ctx.records, req).query(count=False))
    name = ctx.param("name") or ctx.t("my_view")
    view_id = listing.save_view(ctx.runtime, ctx.user.id, req, name)
    ctx.flash(ctx.t("view_saved", name=name))
    return ctx.redirect(f"/app/{entity.key}", view=f"s{view_id}")


@page()
def delete_view(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    assert ctx.user is not None
    listing.delete_view(ctx.runtime, ctx.user.id, int(ctx.request.path_params["view_id"]))
    return ctx.redirect(f"/app/{entity.key}")


def csv_cell(text: str) -> str:
    """A cell a spreadsheet would run as a formula (= + - @ tab CR first: CSV injection) gets a
    leading apostrophe, so it shows as text; plain numbers such as -12.50 stay numbers."""
    if text.startswith(("=", "+", "-", "@", "\t", "\r")) and not re.fullmatch(r"[-+]?[\d.,]+", text):
        return "'" + text
    return text


def csv_rows(ctx: Ctx, entity: Entity, query: ListQuery, columns: list[Field]) -> Iterator[str]:
    """The CSV text of every row a query selects, a batch at a time (keyset), with a BOM for Excel.
    The export is audited once all rows are written."""
    out = io.StringIO()
    writer = csv.writer(out)
    out.write("\ufeff")
    writer.writerow([f.title(ctx.language) for f in columns])
    cursor, count = None, 0
    while True:
        query.cursor, query.limit, query.count = cursor, EXPORT_BATCH, False
        page_ = ctx.records.query(entity.key, query)
        for row in page_.rows:
            writer.writerow([csv_cell(str(display(f, row, ctx.language, link=False).unescape())) for f in columns])
        count += len(page_.rows)
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        cursor = page_.next_cursor
        if not cursor:
            break
    assert ctx.user is not None
    audit.record(ctx.runtime, "export", user_id=ctx.user.id, username=ctx.user.username, entity=entity.key,
                 address=client_address(ctx.request),
                 detail={"rows": count, "filters": list(query.filters), "search": query.search or "",
                         "columns": [f.name for f in columns]})


def check_export(ctx: Ctx, entity: Entity) -> None:
    if not ctx.can(entity, "export"):
        raise Forbidden(Message("rejected", {"message": {"en": "You may not export this list.", "zh": "您无权导出此列表。"}}))


def export_response(ctx: Ctx, entity: Entity, query: ListQuery, columns: list[Field]) -> Response:
    query.action = "export"  # the rows the export scope covers, not every readable one
    ctx.records.query(entity.key, ListQuery(filters=query.filters, search=query.search, limit=1, count=False))
    filename = f"{entity.key}-{ctx.runtime.now():%Y%m%d-%H%M}.csv"
    return StreamingResponse(csv_rows(ctx, entity, query, columns), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@page()
def export_csv(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    check_export(ctx, entity)
    req, _ = list_request(ctx, entity)
    return export_response(ctx, entity, req.query(count=False), shown_fields(ctx, entity, req.columns))


@page()
def bulk(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    assert ctx.form is not None
    back = "/app/" + entity.key + ("?" + str(ctx.form.get("query")) if ctx.form.get("query") else "")
    ids = [int(str(i)) for i in ctx.form.getlist("ids") if str(i).isdigit()][:listing.MAX_PAGE * 2]
    action = ctx.param("action")
    if not ids:
        ctx.flash(ctx.t("bulk_none_selected"), "error")
        return ctx.redirect(back)
    if action == "export":
        check_export(ctx, entity)
        columns = shown_fields(ctx, entity, entity.list.columns or [f.name for f in entity.user_fields])
        return export_response(ctx, entity, ListQuery(filters=[f"id in {','.join(map(str, ids))}"]), columns)
    user = ctx.param("user")
    if action in ("owner", "share", "unshare") and not user.isdigit():
        ctx.flash(ctx.t("bulk_choose_user"), "error")  # never a silent "nobody"
        return ctx.redirect(back)
    done, failed = 0, []
    for record_id in ids:
        try:
            if action == "delete":
                ctx.records.delete(entity.key, record_id)
            elif action == "owner":
                record = ctx.records.get(entity.key, record_id)
                ctx.records.update(entity.key, record_id, {"owner": int(user)}, record["version"])
            elif action == "share":
                ctx.records.share(entity.key, record_id, int(user), ctx.param("access") or "read")
            elif action == "unshare":
                ctx.records.unshare(entity.key, record_id, int(user))
            elif action.startswith("act:"):  # a record action the pack marks `bulk: true`
                spec = entity.action(action[4:])
                if spec is None or not spec.bulk:
                    raise NotFound(Message("not_found", {"entity": entity.key, "id": action}))
                ctx.records.run_action(entity.key, record_id, spec.key, {})
            else:
                ctx.flash(ctx.t("bulk_unknown_action"), "error")
                return ctx.redirect(back)
            done += 1
        except RecordError as exc:
            failed.append(f"#{record_id}: {errors_text(ctx, exc)}")
    ctx.flash(ctx.t("bulk_done", count=done))
    if failed:
        ctx.flash(ctx.t("bulk_failed", count=len(failed)) + " " + "; ".join(failed[:5]), "error")
    return ctx.redirect(back)


# -- detail ---------------------------------------------------------------------------------------

def related_tabs(ctx: Ctx, entity: Entity, record_id: int) -> list[dict[str, Any]]:
    """The related tabs the user may read, with their counts (all in one statement)."""
    tabs: list[dict[str, Any]] = []
    for i, rel in enumerate(entity.related):
        child = ctx.registry.entities.get(rel.entity)
        if child is None or not ctx.can(child, "read"):
            continue
        label = text(rel.label, ctx.language) if rel.label else child.name(ctx.language)
        tabs.append({"key": f"r{i}", "rel": rel, "entity": child, "label": label})
    counts = ctx.records.counts([(tab["entity"].key, ListQuery(filters=[f"{tab['rel'].via} eq {record_id}"]))
                                 for tab in tabs])
    for tab, (count, exact) in zip(tabs, counts, strict=True):
        tab["count"] = f"{count}" if exact else f"{count}+"
    return tabs


def history_rows(ctx: Ctx, entity: Entity, record_id: int) -> list[dict[str, Any]]:
    """The record's changes as the user reads them: labels, formatted values, titles of links."""
    raw = ctx.records.history(entity.key, record_id)[:200]
    decoded = [(h, entity.fields.get(h["field"] or ""), load(h["old_value"]), load(h["new_value"])) for h in raw]
    titles = linked_titles(ctx, [(f, v) for _, f, old, new in decoded if f is not None for v in (old, new)]
                           + [(entity.field("owner"), int(h["comment"].split(":")[0])) for h in raw
                              if h["action"] in ("share", "unshare") and (h["comment"] or "").split(":")[0].isdigit()])
    return [{**h, "field_label": f.title(ctx.language) if f else "", "old": shown(ctx, f, old, titles),
             "new": shared_with(ctx, h, titles) if h["action"] in ("share", "unshare") else shown(ctx, f, new, titles)}
            for h, f, old, new in decoded]


def shared_with(ctx: Ctx, h: dict[str, Any], titles: dict[tuple[str, int], str]) -> str:
    """A share entry's comment ("USER_ID:ACCESS") as "Name (Read and edit)"."""
    user, _, access = (h["comment"] or "").partition(":")
    name = titles.get(("crm_user", int(user)), f"#{user}") if user.isdigit() else user
    return f"{name} ({ctx.t('access_' + access)})" if access else name


def load(stored: str | None) -> Any:
    try:
        return None if stored is None else json.loads(stored)
    except ValueError:
        return stored


def linked_titles(ctx: Ctx, values: list[tuple[Field, Any]]) -> dict[tuple[str, int], str]:
    """Titles of the records and users that history values point at: one query per target, and
    only records the user may read (others stay as #id)."""
    wanted: dict[str, set[int]] = {}
    for f, value in values:
        target = "crm_user" if f.type == "user" or f.name in ("owner", "created_by", "updated_by") else f.target
        if target and isinstance(value, int):
            wanted.setdefault(target, set()).add(value)
    titles: dict[tuple[str, int], str] = {}
    for target, ids in wanted.items():
        if target == "crm_user":
            users_table = ctx.runtime.table("crm_user")
            with ctx.runtime.engine.connect() as conn:
                rows = conn.execute(sa.select(users_table.c.id, users_table.c.display_name)
                                    .where(users_table.c.id.in_(ids))).all()
            titles.update({("crm_user", int(r.id)): str(r.display_name) for r in rows})
        elif target in ctx.registry.entities:
            child = ctx.registry.entity(target)
            found = ctx.records.query(target, ListQuery(filters=[f"id in {','.join(map(str, sorted(ids)))}"],
                                                        limit=500, count=False, titles=())).rows
            titles.update({(target, int(r["id"])): title_of(child, r) for r in found})
    return titles


def shown(ctx: Ctx, f: Field | None, value: Any, titles: dict[tuple[str, int], str]) -> str:
    if value is None:
        return ""
    if f is None:
        return str(value)
    target = "crm_user" if f.type == "user" or f.name in ("owner", "created_by", "updated_by") else f.target
    if target:
        return titles.get((target, value), f"#{value}") if isinstance(value, int) else str(value)
    if f.system:
        return str(value)
    try:
        return f.kind.format(f, f.kind.coerce(f, value, ctx.records.value_context()), ctx.language)
    except (FieldValueError, TypeError, ValueError):
        return str(value)


TREE_ROWS = 500  # a tree tab shows the whole tree, so it reads more rows than a flat tab


def nested(rows: list[dict[str, Any]], parent: str) -> list[dict[str, Any]]:
    """Rows in tree order (each after its parent, siblings in their query order), each with its
    "_depth". A row whose parent is not among the rows is a root; a cycle cannot hide rows."""
    ids = {row["id"] for row in rows}
    children: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        up = row.get(parent)
        children.setdefault(up if up in ids and up != row["id"] else None, []).append(row)
    out: list[dict[str, Any]] = []
    placed: set[int] = set()

    def walk(row: dict[str, Any], depth: int) -> None:
        placed.add(row["id"])
        out.append({**row, "_depth": depth})
        for child in children.get(row["id"], []):
            if child["id"] not in placed:
                walk(child, depth + 1)

    for row in children.get(None, []):
        walk(row, 0)
    for row in rows:  # rows caught in a cycle have no root above them: show them flat at the end
        if row["id"] not in placed:
            walk(row, 0)
    return out


@page()
def detail(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    record = ctx.records.get(entity.key, ctx.request.path_params["id"])
    tab = ctx.param("tab")
    tabs = related_tabs(ctx, entity, record["id"])
    active = next((t for t in tabs if t["key"] == tab), None)
    related_rows: list[dict[str, Any]] = []
    related_columns: list[Field] = []
    if active is not None:
        child: Entity = active["entity"]
        rel: Related = active["rel"]
        related_columns = shown_fields(ctx, child, rel.columns or child.list.columns)
        related_rows = ctx.records.query(child.key, ListQuery(filters=[f"{rel.via} eq {record['id']}"],
                                                              limit=TREE_ROWS if rel.tree else 100, count=False,
                                                              highlight=rel.highlight)).rows
        if rel.tree:
            related_rows = nested(related_rows, rel.tree)
    history = history_rows(ctx, entity, record["id"]) if tab == "history" else []
    may_share = ctx.can(entity, "share", record)
    shares = ctx.records.shares(entity.key, record["id"]) if tab == "sharing" and may_share else []
    may_explain = ctx.runtime.access.scope(ctx.actor, entity, "read") == "all"
    decisions, asked = [], None
    if tab == "access" and may_explain and ctx.param("user").isdigit():
        asked = load_user(ctx.runtime, int(ctx.param("user")))
        if asked is not None:
            decisions = ctx.records.explain(entity.key, record["id"], asked.actor(ctx.language))
    return ctx.render("detail.html", entity=entity, record=record, title=title_of(entity, record),
                      actions=actions_for(ctx, entity, record),
                      sections=sections(ctx, entity, "detail"), tabs=tabs, tab=tab, active=active,
                      related_rows=related_rows, related_columns=related_columns, history=history,
                      stage_fields=entity.fields_of_type("stage"), may_share=may_share, shares=shares,
                      users=users(ctx) if tab in ("sharing", "access") else [], may_explain=may_explain,
                      decisions=decisions, asked=asked)


# -- record actions -------------------------------------------------------------------------------

def actions_for(ctx: Ctx, entity: Entity, record: dict[str, Any]) -> list[Action]:
    """The entity's actions this user may run on this record now (permission and `when`)."""
    allowed = [a for a in entity.actions
               if (entity.key, a.key) in ctx.runtime.hooks.actions and ctx.can(entity, a.permission, record)]
    conditional = [a for a in allowed if a.when]
    holds = dict(zip([a.key for a in conditional],
                     ctx.records.which_hold(entity.key, record["id"], [a.when for a in conditional]), strict=True))
    return [a for a in allowed if holds.get(a.key, True)]


def report_outcome(ctx: Ctx, outcome: dict[str, Any]) -> None:
    if "message" in outcome:
        ctx.flash(outcome["message"].text(ctx.language))
    for warning in outcome.get("warnings", []):
        ctx.flash(warning.text(ctx.language), "warn")


@page()
def run_action(ctx: Ctx) -> Response:
    """GET: the action's inputs as a form (or a confirmation); POST: run it."""
    entity = entity_of(ctx)
    record = ctx.records.get(entity.key, ctx.request.path_params["id"])
    action = entity.action(ctx.request.path_params["key"])
    if action is None or action not in actions_for(ctx, entity, record):
        raise NotFound(Message("not_found", {"entity": entity.key, "id": ctx.request.path_params["key"]}))
    back = f"/app/{entity.key}/{record['id']}"
    if ctx.form is None or "_go" not in ctx.form:
        return ctx.render("action.html", entity=entity, record=record, action=action, title=title_of(entity, record),
                          errors={}, raw=None, users=users(ctx), back=back, picks={})
    inputs, errors, picks = read_form(ctx, entity, list(action.inputs))
    if not errors:
        try:
            outcome = ctx.records.run_action(entity.key, record["id"], action.key, inputs)
        except ValidationFailed as exc:
            errors = {k: [m.text(ctx.language) for m in ms] for k, ms in exc.errors.items()}
    if errors:
        return ctx.render("action.html", status=422, entity=entity, record=record, action=action, picks=picks,
                          title=title_of(entity, record), errors=errors, raw=ctx.form, users=users(ctx), back=back)
    report_outcome(ctx, outcome)
    target = outcome.get("open")
    return ctx.redirect(f"/app/{target[0]}/{int(target[1])}" if target else back)


@page()
def share(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    record_id = ctx.request.path_params["id"]
    user = ctx.param("user")
    try:
        if ctx.param("revoke"):
            ctx.records.unshare(entity.key, record_id, int(user) if user.isdigit() else 0)
            ctx.flash(ctx.t("share_revoked"))
        else:
            ctx.records.share(entity.key, record_id, int(user) if user.isdigit() else 0, ctx.param("access") or "read")
            ctx.flash(ctx.t("shared"))
    except ValidationFailed as exc:
        ctx.flash(errors_text(ctx, exc), "error")
    return ctx.redirect(f"/app/{entity.key}/{record_id}", tab="sharing")


@page()
def move_stage(ctx: Ctx) -> Response:
    """Move a record to another stage of one of its pipelines (the runtime enforces the rules)."""
    entity = entity_of(ctx)
    record_id = ctx.request.path_params["id"]
    field = entity.field(ctx.param("field"))
    back = ctx.param("back") if ctx.param("back").startswith("/app/") else f"/app/{entity.key}/{record_id}"
    version = ctx.param("version")
    try:
        ctx.records.update(entity.key, record_id, {field.name: ctx.param("stage")},
                           int(version) if version.isdigit() else None)
        stage = field.stage(ctx.param("stage"))
        ctx.flash(ctx.t("stage_moved", stage=text(stage.label, ctx.language) if stage else ctx.param("stage")))
    except (ValidationFailed, Conflict) as exc:
        ctx.flash(errors_text(ctx, exc), "error")
    return ctx.redirect(back)


@page()
def delete(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    record = ctx.records.get(entity.key, ctx.request.path_params["id"])
    try:
        ctx.records.delete(entity.key, record["id"])
    except ValidationFailed as exc:
        ctx.flash(errors_text(ctx, exc), "error")
        return ctx.redirect(f"/app/{entity.key}/{record['id']}")
    ctx.flash(ctx.t("deleted", title=title_of(entity, record)))
    return ctx.redirect(f"/app/{entity.key}")


# -- form -----------------------------------------------------------------------------------------

def reference_candidates(ctx: Ctx, f: Field, typed: str) -> list[dict[str, Any]]:
    target = ctx.registry.entity(f.target or "")
    rows = ctx.records.query(target.key, ListQuery(search=typed, limit=20, count=False, titles=())).rows
    return [{"id": r["id"], "title": title_of(target, r)} for r in rows]


def read_reference(ctx: Ctx, f: Field, errors: dict[str, list[str]], picks: dict[str, list[dict[str, Any]]]) -> Any:
    """A reference from the form: the id chosen (by script or a pick list), else the typed name.

    Without JavaScript the user types a name; one clear match is taken, otherwise the form
    comes back with the matching records to pick from.
    """
    assert ctx.form is not None
    typed = str(ctx.form.get(f"{f.name}__text", "")).strip()
    chosen = str(ctx.form.get(f.name, "")).strip()
    shown = str(ctx.form.get(f"{f.name}__shown", "")).strip()
    if chosen.isdigit() and (typed == shown or f"{f.name}__text" not in ctx.form):
        return int(chosen)
    if not typed:
        return None
    if typed.startswith("#") and typed[1:].isdigit():
        return int(typed[1:])
    candidates = reference_candidates(ctx, f, typed)
    exact = [c for c in candidates if c["title"] == typed]
    if len(exact) == 1 or len(candidates) == 1:
        return (exact or candidates)[0]["id"]
    errors[f.name] = [ctx.t("reference_none" if not candidates else "reference_pick", text=typed)]
    picks[f.name] = candidates
    return None


def read_form(ctx: Ctx, entity: Entity, fields: list[Field]) -> tuple[dict[str, Any], dict[str, list[str]],
                                                                     dict[str, list[dict[str, Any]]]]:
    """Values of the editable fields, per-field errors, and pick lists for ambiguous references."""
    assert ctx.form is not None
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    picks: dict[str, list[dict[str, Any]]] = {}
    vctx = ctx.records.value_context()
    for f in fields:
        try:
            if f.type == "reference":
                values[f.name] = read_reference(ctx, f, errors, picks)
            elif f.type == "attachment":
                upload = ctx.form.get(f.name)
                if isinstance(upload, UploadFile) and upload.filename:
                    data = upload.file.read()
                    values[f.name] = files.store(ctx.runtime.files_dir, data, upload.filename,
                                                 upload.content_type or "", f)
            elif f.type in ("multi_choice", "boolean"):
                values[f.name] = f.kind.parse_form(f, [str(v) for v in ctx.form.getlist(f.name)], vctx)
            else:
                values[f.name] = f.kind.parse_form(f, str(ctx.form.get(f.name, "")), vctx)
        except FieldValueError as exc:
            errors[f.name] = [exc.message.text(ctx.language)]
    if errors:
        # The runtime is not reached while values are malformed; report missing required fields
        # now too, so the user fixes everything in one round.
        for f in fields:
            if f.required and f.default is None and f.name not in errors and f.kind.is_empty(values.get(f.name)):
                errors[f.name] = [Message("required").text(ctx.language)]
    return values, errors, picks


def form_fields(ctx: Ctx, entity: Entity) -> list[Field]:
    may_edit = editor(ctx, entity)
    return [f for f in shown_fields(ctx, entity, [n for s in sections(ctx, entity, "form") for n in s.fields])
            if may_edit(f)]


def render_form(ctx: Ctx, entity: Entity, record: dict[str, Any] | None, values: dict[str, Any],
                errors: dict[str, list[str]] | None = None, picks: dict[str, Any] | None = None,
                raw: Any = None, status: int = 200, conflict: str = "") -> Response:
    return ctx.render("form.html", status=status, entity=entity, record=record, values=values, errors=errors or {},
                      picks=picks or {}, raw=raw, sections=sections(ctx, entity, "form"), editable=editor(ctx, entity),
                      users=users(ctx), conflict=conflict, back=back_of(ctx),
                      title=title_of(entity, record) if record else ctx.t("new_record", entity=entity.name(ctx.language)))


def back_of(ctx: Ctx) -> str:
    back = ctx.param("back")
    return back if back.startswith("/app/") and "//" not in back else ""


@page()
def new(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    if not ctx.can(entity, "create"):
        raise Forbidden(Message("rejected", {"message": {"en": "You may not create this.", "zh": "您无权新建。"}}))
    if ctx.form is None:
        # The fields' defaults, then what the URL gives (a related tab's "new" button passes the
        # link back to its parent).
        prefill: dict[str, Any] = ctx.records.defaults(entity.key)
        vctx = ctx.records.value_context()
        titles: dict[str, Any] = {}
        for f in form_fields(ctx, entity):
            raw = ctx.request.query_params.get(f.name)
            if raw:
                try:
                    prefill[f.name] = f.kind.parse_form(f, raw, vctx)
                except FieldValueError:
                    continue
                if f.type == "reference":
                    try:
                        parent = ctx.records.get(f.target or "", prefill[f.name])
                        titles[f.name] = title_of(ctx.registry.entity(f.target or ""), parent)
                    except RecordError:
                        prefill.pop(f.name)
        if titles:
            prefill["_titles"] = titles
        return render_form(ctx, entity, None, prefill)
    values, errors, picks = read_form(ctx, entity, form_fields(ctx, entity))
    if not errors:
        try:
            created = ctx.records.create(entity.key, {k: v for k, v in values.items() if v is not None})
        except ValidationFailed as exc:
            errors = {k: [m.text(ctx.language) for m in ms] for k, ms in exc.errors.items()}
        else:
            ctx.flash(ctx.t("created", title=title_of(entity, created)))
            report_outcome(ctx, {"warnings": created.get("_warnings", [])})
            return ctx.redirect(back_of(ctx) or f"/app/{entity.key}/{created['id']}")
    return render_form(ctx, entity, None, values, errors, picks, raw=ctx.form, status=422)


@page()
def edit(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    record = ctx.records.get(entity.key, ctx.request.path_params["id"])
    if not ctx.can(entity, "edit", record):
        raise Forbidden(Message("rejected", {"message": {"en": "You may not edit this record.", "zh": "您无权编辑此记录。"}}))
    if ctx.form is None:
        return render_form(ctx, entity, record, record)
    values, errors, picks = read_form(ctx, entity, form_fields(ctx, entity))
    version = ctx.param("_version")
    if not errors:
        try:
            saved = ctx.records.update(entity.key, record["id"], values, int(version) if version.isdigit() else None)
        except ValidationFailed as exc:
            errors = {k: [m.text(ctx.language) for m in ms] for k, ms in exc.errors.items()}
        except Conflict as exc:
            return render_form(ctx, entity, record, values, {}, picks, raw=ctx.form, status=409,
                               conflict=exc.message.text(ctx.language))
        else:
            ctx.flash(ctx.t("saved", title=title_of(entity, {**record, **values})))
            report_outcome(ctx, {"warnings": saved.get("_warnings", [])})
            return ctx.redirect(back_of(ctx) or f"/app/{entity.key}/{record['id']}")
    return render_form(ctx, entity, record, values, errors, picks, raw=ctx.form, status=422)


@page()
def lookup(ctx: Ctx) -> Response:
    """Search-as-you-type for reference widgets: [{id, title}] of readable records."""
    entity = entity_of(ctx)
    typed = ctx.param("q")
    rows = ctx.records.query(entity.key, ListQuery(search=typed or None, limit=15, count=False, titles=())).rows
    return JSONResponse([{"id": r["id"], "title": title_of(entity, r)} for r in rows])


# -- files ----------------------------------------------------------------------------------------

# Content types shown in the browser as they are; anything else (HTML, SVG, scripts) downloads
# as bytes, so an uploaded file can never run script in the CRM's origin.
INERT_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain")


@page()
def download(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    record = ctx.records.get(entity.key, ctx.request.path_params["id"])
    f = entity.field(ctx.request.path_params["field"]) if entity.has(ctx.request.path_params["field"]) else None
    if f is None or f.type != "attachment" or not record.get(f.name):
        raise NotFound(Message("not_found", {"entity": entity.key, "id": ctx.request.path_params["field"]}))
    described = record[f.name]
    data = files.open_file(ctx.runtime.files_dir, described)
    content_type = described.get("content_type") if described.get("content_type") in INERT_TYPES else None
    name = quote(str(described.get("name") or "file"))
    return Response(data, media_type=content_type or "application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
        "Cache-Control": "private, max-age=3600"})


# -- board ----------------------------------------------------------------------------------------

@page()
def board(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    if entity.board is None and not entity.fields_of_type("stage"):
        raise NotFound(Message("not_found", {"entity": entity.key, "id": "board"}))
    stage_field = entity.field(entity.board.field if entity.board else entity.fields_of_type("stage")[0].name)
    sums = shown_fields(ctx, entity, entity.board.sums if entity.board else ())
    req, _ = list_request(ctx, entity)
    base = req.query(count=False)
    totals = ctx.records.summarize(entity.key, base, stage_field.name, [s.name for s in sums])
    columns = []
    for stage in stage_field.stages:
        q = ListQuery(filters=[*base.filters, f"{stage_field.name} eq {stage.key}"], search=base.search,
                      sort=base.sort, limit=BOARD_CARDS, count=False)
        cards = ctx.records.query(entity.key, q).rows if stage.key in totals else []
        columns.append({"stage": stage, "cards": cards, "count": totals.get(stage.key, {}).get("count", 0),
                        "sums": totals.get(stage.key, {}).get("sums", {})})
    card_fields = shown_fields(ctx, entity, [c for c in req.columns if c not in (entity.title, stage_field.name)])[:3]
    return ctx.render("board.html", entity=entity, stage_field=stage_field, columns=columns, sums=sums,
                      card_fields=card_fields, req=req, base=f"/app/{entity.key}/board")


# -- recycle bin ----------------------------------------------------------------------------------

@page()
def trash(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    cursor = ctx.param("cursor") or None
    result = ctx.records.query(entity.key, ListQuery(trash=True, sort=["-deleted_at"], limit=50, cursor=cursor,
                                                     search=ctx.param("q") or None))
    columns = shown_fields(ctx, entity, entity.list.columns[:5])
    return ctx.render("trash.html", entity=entity, page=result, columns=columns,
                      may_restore=ctx.can(entity, "restore"), may_purge=ctx.can(entity, "purge"))


@page()
def restore(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    try:
        record = ctx.records.restore(entity.key, ctx.request.path_params["id"])
        ctx.flash(ctx.t("restored", title=title_of(entity, record)))
    except ValidationFailed as exc:
        ctx.flash(errors_text(ctx, exc), "error")
    return ctx.redirect(f"/app/{entity.key}/trash")


@page()
def purge(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    try:
        ctx.records.purge(entity.key, ctx.request.path_params["id"])
        ctx.flash(ctx.t("purged"))
    except ValidationFailed as exc:
        ctx.flash(errors_text(ctx, exc), "error")
    return ctx.redirect(f"/app/{entity.key}/trash")
