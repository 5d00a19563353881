"""The JSON API under /api/v1/: list, read, create, change and delete the records of every
entity, with the list screen's query syntax (engine.ui.listing), plus the index of entities the
caller may read and the OpenAPI document. docs/api.md describes it with examples.

Authentication, the CSRF check of session-authenticated writes and the mapping of runtime errors
to JSON with their status (422, 409, 404, 403, 400) are the `web.api` decorator's; every read and
write goes through the record service as the caller, so the caller's scope applies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from engine.i18n import Message
from engine.metadata.registry import Entity
from engine.runtime.errors import NotFound, RecordError, ValidationFailed
from engine.ui import listing
from engine.ui.openapi import document, schema_name
from engine.ui.text import pick_language
from engine.ui.web import Ctx, api

MAX_OFFSET = 2**63 - 1  # the databases' OFFSET is a 64-bit integer


class BadRequest(RecordError):
    """The request itself is malformed (a parameter, or a body that is not a JSON object)."""

    status = 400


class ApiJSON(JSONResponse):
    # `default=str`: a referenced record's title may be a date or a decimal (its title field's type).
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, default=str,
                          separators=(",", ":")).encode("utf-8")


def say(en: str, zh: str) -> Message:
    return Message("rejected", {"message": {"en": en, "zh": zh}})


def choose_language(ctx: Ctx) -> None:
    """API language: ?lang=, then Accept-Language, then the user's (what Ctx chose)."""
    asked = ctx.request.query_params.get("lang", "")
    ctx.language = asked if asked in ("en", "zh") else pick_language(ctx.request.headers.get("accept-language"),
                                                                     ctx.language)


def entity_of(ctx: Ctx) -> Entity:
    """The entity of the URL; 404 for unknown ones and for those the caller may not read."""
    choose_language(ctx)
    entity = ctx.records.entity(ctx.request.path_params["entity"])
    if not ctx.can(entity, "read"):
        raise NotFound(Message("unknown_entity", {"entity": entity.key}))
    return entity


def body_object(ctx: Ctx) -> dict[str, Any]:
    if not isinstance(ctx.body, dict):
        raise BadRequest(say("The request body must be a JSON object.", "请求体必须是 JSON 对象。"))
    return dict(ctx.body)


def count_param(ctx: Ctx, name: str) -> int | None:
    raw = ctx.request.query_params.get(name, "").strip()
    if raw == "":
        return None
    if not raw.isdigit() or int(raw) > MAX_OFFSET:
        raise BadRequest(say(f"'{name}' must be a whole number ≥ 0.", f"“{name}”必须是不小于 0 的整数。"))
    return int(raw)


def version_of(ctx: Ctx, data: dict[str, Any]) -> int | None:
    """The version a change is based on: the body's `version`, else the If-Match header."""
    given: Any = data.pop("version", None)
    header = ctx.request.headers.get("if-match", "").strip()
    if header:
        tag = header.removeprefix("W/").strip('"')
        if given is not None and str(given) != tag:
            raise BadRequest(say("The body's version and the If-Match header disagree.",
                                 "请求体中的 version 与 If-Match 头不一致。"))
        given = tag if given is None else given
    if given is None:
        return None
    if isinstance(given, int) and not isinstance(given, bool):
        return given
    if isinstance(given, str) and given.isdigit():
        return int(given)
    raise ValidationFailed({"version": [Message("not_an_integer", {"value": given})]})


def record_response(ctx: Ctx, entity: Entity, record: Mapping[str, Any], status: int = 200,
                    headers: Mapping[str, str] | None = None) -> Response:
    out = ctx.records.to_json(entity.key, record)
    extra = dict(headers or {})
    if record.get("_warnings"):  # saved, but hooks had something to say (e.g. a possible duplicate)
        extra["X-CRM-Warnings"] = json.dumps([m.text(ctx.language) for m in record["_warnings"]])
    return ApiJSON(out, status_code=status, headers={"ETag": f'"{record["version"]}"', **extra})


# -- endpoints ------------------------------------------------------------------------------------

@api
def index(ctx: Ctx) -> Response:
    """GET /api/v1: the entities the caller may read, with their URLs and permissions."""
    choose_language(ctx)
    data = []
    for entity in ctx.registry.entities.values():
        if ctx.can(entity, "read"):
            data.append({"key": entity.key, "label": dict(entity.label), "url": f"/api/v1/{entity.key}",
                         "schema": schema_name(entity),
                         "can": {action: ctx.can(entity, action) for action in ("create", "edit", "delete")}})
    return ApiJSON({"data": data, "openapi": "/api/openapi.json"})


@api
def openapi_document(ctx: Ctx) -> Response:
    """GET /api/openapi.json: the OpenAPI 3.1 document of every entity (the whole registry)."""
    return ApiJSON(document(ctx.registry))


@api
def list_records(ctx: Ctx) -> Response:
    """GET /api/v1/{entity}: a page of records; filters, search, sort and paging as on the list screen."""
    entity = entity_of(ctx)
    assert ctx.user is not None
    if ctx.request.query_params.get("limit", "").strip():
        count_param(ctx, "limit")  # listing caps it at 500; reject what is not a number at all
    offset = count_param(ctx, "offset") or 0
    req, _ = listing.from_url(ctx.runtime, ctx.records, ctx.user.id, entity, ctx.request.query_params)
    query = req.query()
    query.offset = offset
    page = ctx.records.query(entity.key, query)
    return ApiJSON({"data": [ctx.records.to_json(entity.key, r) for r in page.rows], "total": page.total,
                    "total_exact": page.total_exact, "next_cursor": page.next_cursor,
                    "prev_cursor": page.prev_cursor})


@api
def create_record(ctx: Ctx) -> Response:
    """POST /api/v1/{entity}: 201 with the new record and its URL in Location."""
    entity = entity_of(ctx)
    record = ctx.records.create(entity.key, body_object(ctx))
    return record_response(ctx, entity, record, 201, {"Location": f"/api/v1/{entity.key}/{record['id']}"})


@api
def get_record(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    return record_response(ctx, entity, ctx.records.get(entity.key, ctx.request.path_params["id"]))


@api
def update_record(ctx: Ctx) -> Response:
    """PATCH /api/v1/{entity}/{id}: change the given fields; needs the version (409 when stale)."""
    entity = entity_of(ctx)
    data = body_object(ctx)
    version = version_of(ctx, data)
    record = ctx.records.update(entity.key, ctx.request.path_params["id"], data, version)
    return record_response(ctx, entity, record)


@api
def delete_record(ctx: Ctx) -> Response:
    """DELETE /api/v1/{entity}/{id}: to the recycle bin; 200 with the record (deleted_at set)."""
    entity = entity_of(ctx)
    deleted = ctx.records.delete(entity.key, ctx.request.path_params["id"])
    # Read it back for the referenced titles that the delete's own row lacks.
    return record_response(ctx, entity, ctx.records.get(entity.key, deleted["id"], include_deleted=True))


@api
def run_action(ctx: Ctx) -> Response:
    """POST /api/v1/{entity}/{id}/actions/{key}: run a record action with its inputs as the body."""
    entity = entity_of(ctx)
    outcome = ctx.records.run_action(entity.key, ctx.request.path_params["id"], ctx.request.path_params["key"],
                                     body_object(ctx))
    target = outcome.get("open")
    return ApiJSON({"message": outcome["message"].text(ctx.language) if "message" in outcome else None,
                    "open": {"entity": target[0], "id": int(target[1]), "url": f"/api/v1/{target[0]}/{int(target[1])}"}
                    if target else None,
                    "warnings": [m.text(ctx.language) for m in outcome.get("warnings", [])]})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1", index, methods=["GET"]),
        Route("/api/openapi.json", openapi_document, methods=["GET"]),
        Route("/api/v1/{entity}", list_records, methods=["GET"]),
        Route("/api/v1/{entity}", create_record, methods=["POST"]),
        Route("/api/v1/{entity}/{id}", get_record, methods=["GET"]),
        Route("/api/v1/{entity}/{id}", update_record, methods=["PATCH"]),
        Route("/api/v1/{entity}/{id}", delete_record, methods=["DELETE"]),
        Route("/api/v1/{entity}/{id}/actions/{key}", run_action, methods=["POST"]),
    ]
