"""The OpenAPI 3.1 document of the JSON API, generated from the registry.

Every entity gets an output schema `<Entity>` (what the API returns, one property per field,
typed as `RecordService.to_json` writes it), `<Entity>Input` (what POST accepts: the writable
fields, required ones listed), `<Entity>Update` (what PATCH accepts: the same plus `version`),
`<Entity>Page` (a list response) and the five operations on its paths. Field types map to JSON
Schema here rather than in engine/fieldtypes, so a plugin type without a mapping is described
as "any value" instead of breaking the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.fieldtypes.textual import TextLike
from engine.metadata.registry import Entity, Field, Registry, text
from engine.runtime.query import MAX_PAGE
from engine.ui import listing

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
# Datetimes are local times of the deployment's time zone without an offset, so they are not
# RFC 3339 `date-time`s: declaring that format would make strict clients reject them.
DATETIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$"
DECIMAL_TYPES = ("decimal", "money", "percent")
TEXT_TYPES = ("string", "text", "email", "phone", "url", "autonumber")
SESSION_COOKIE = "crm_session"

_cache: tuple[Registry, dict[str, Any]] | None = None


def schema_name(entity: Entity) -> str:
    return "".join(part.capitalize() for part in entity.key.split("_"))


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or null (every column may be empty, even of a required field added later)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    elif isinstance(out.get("type"), list):
        out["type"] = [*out["type"], "null"]
    return out


# -- field types -> JSON Schema -------------------------------------------------------------------

def decimal_schema(f: Field, scale: int | None = None, writing: bool = False) -> dict[str, Any]:
    if writing:  # a JSON number is accepted too, rounded half up to the field's scale
        schema: dict[str, Any] = {"type": ["string", "number"]}
        notes = ["a decimal number, as a string (keeps every digit) or a number"]
    else:
        schema = {"type": "string", "pattern": DECIMAL_PATTERN}
        notes = ["a decimal number as a string (no precision is lost in JSON)"]
    currency = f.options.get("currency") or ("CNY" if f.type == "money" else None)
    if currency:
        notes.append(f"currency {currency}")
    if f.type == "percent":
        notes.append("12.5 means 12.5%")
    if scale is not None:
        notes.append(f"{scale} decimal places")
    schema["x-note"] = "; ".join(notes)
    return schema


def value_schema(f: Field, writing: bool) -> dict[str, Any]:
    """The JSON Schema of one field's value, as the API returns it or (writing) accepts it."""
    kind = f.kind
    t = f.type
    if t in TEXT_TYPES:
        schema: dict[str, Any] = {"type": "string"}
        if isinstance(kind, TextLike):
            schema["maxLength"] = kind.max_length(f)
        if t == "email":
            schema["format"] = "email"
        elif t == "url":
            schema["format"] = "uri"
        return schema
    if t == "integer":
        schema = {"type": "integer"}
        if f.options.get("min") is not None:
            schema["minimum"] = f.options["min"]
        if f.options.get("max") is not None:
            schema["maximum"] = f.options["max"]
        return schema
    if t in DECIMAL_TYPES:
        return decimal_schema(f, int(f.options.get("scale", getattr(kind, "scale", 2))), writing)
    if t == "boolean":
        return {"type": "boolean"}
    if t == "date":
        return {"type": "string", "format": "date"}
    if t == "datetime":
        if writing:
            return {"type": "string", "x-note": "ISO 8601; without an offset it is the server's local time"}
        return {"type": "string", "pattern": DATETIME_PATTERN,
                "x-note": "local time of the server's time zone, without an offset"}
    if t in ("choice", "multi_choice"):
        options = f.picklist.options if f.picklist else ()
        keys = [o.key for o in options if o.active or not writing]
        item = {"type": "string", "enum": keys}
        if t == "choice":
            return item
        return {"type": "array", "items": item, "uniqueItems": True}
    if t == "stage":
        return {"type": "string", "enum": [s.key for s in f.stages]}
    if t in ("reference", "user"):
        if writing:
            return {"type": "integer", "minimum": 1, "x-note": "the id of the linked record" if t == "reference"
                    else "the id of a user"}
        return ref("RecordLink")
    if t == "attachment":
        return ref("FileInfo")
    if t == "computed":
        result = f.options.get("result", "decimal")
        return {"type": "integer"} if result == "integer" else decimal_schema(f, int(f.options.get("scale", 2)))
    if t == "rollup":
        return {"type": "integer"} if f.options.get("aggregate") == "count" else decimal_schema(f, 2)
    return {}  # a plugin type this module does not know: any JSON value


def describe(f: Field, schema: dict[str, Any], writing: bool) -> str:
    """Chinese label, help and type notes: the description of a field's property (the options'
    labels only on the output schema, to keep the document small)."""
    parts = [text(f.label, "zh")]
    if f.help:
        parts.append(" / ".join(v for v in (f.help.get("en"), f.help.get("zh")) if v))
    note = schema.pop("x-note", None)
    parts.append(f"type `{f.type}`" + (f": {note}" if note else ""))
    if not writing and f.type in ("choice", "multi_choice") and f.picklist:
        parts.append("Options: " + ", ".join(f"`{o.key}` {text(o.label, 'en')} / {text(o.label, 'zh')}"
                                             for o in f.picklist.options))
    if not writing and f.type == "stage":
        parts.append("Stages: " + ", ".join(f"`{s.key}` {text(s.label, 'en')} / {text(s.label, 'zh')}"
                                            for s in f.stages))
    if f.target:
        parts.append(f"links to `{f.target}`")
    return " · ".join(p for p in parts if p)


def property_schema(f: Field, writing: bool) -> dict[str, Any]:
    schema = value_schema(f, writing)
    description = describe(f, schema, writing)
    if not (f.name in ("id", "version") and not writing):
        schema = nullable(schema)
    schema = {**schema, "title": text(f.label, "en") or f.name, "description": description}
    if not writing:
        if not writable(f):
            schema["readOnly"] = True
        schema["x-filter-operators"] = list(f.kind.operators)
        schema["x-sortable"] = bool(f.kind.sortable)
    return schema


def writable(f: Field) -> bool:
    """Fields a caller may send; the owner is the one system field that may be set (assign)."""
    return f.name == "owner" or (not f.system and not f.kind.derived and not f.read_only)


def entity_schemas(entity: Entity) -> dict[str, dict[str, Any]]:
    name = schema_name(entity)
    label = f"{text(entity.label, 'en')} · {text(entity.label, 'zh')}"
    fields = [f for f in entity.fields.values() if not f.internal]  # internal fields never leave the server
    inputs = [f for f in fields if writable(f)]
    required = [f.name for f in inputs if f.required and f.default is None]
    input_props = {f.name: property_schema(f, writing=True) for f in inputs}
    output: dict[str, Any] = {
        "type": "object", "title": label,
        "description": f"A {text(entity.label, 'en')} record as the API returns it. References and users are "
                       "{id, title} objects; decimals are strings.",
        "properties": {f.name: property_schema(f, writing=False) for f in fields},
        "required": [f.name for f in fields],
    }
    create: dict[str, Any] = {
        "type": "object", "title": f"{label} (create)",
        "description": f"A new {text(entity.label, 'en')}: writable fields only; omitted fields take their "
                       "defaults. References and users are given by id.",
        "properties": input_props, "additionalProperties": False,
    }
    if required:
        create["required"] = required
    update: dict[str, Any] = {
        "type": "object", "title": f"{label} (update)",
        "description": "The fields to change, plus the version the change is based on (or an If-Match header). "
                       "null empties a field.",
        "properties": {**input_props, "version": {"type": "integer", "minimum": 1, "title": "Version",
                                                  "description": "The record's version as last read; "
                                                                 "a stale one gives 409."}},
        "additionalProperties": False,
    }
    page = {
        "type": "object", "title": f"{label} (page)",
        "required": ["data", "total", "total_exact", "next_cursor", "prev_cursor"],
        "properties": {
            "data": {"type": "array", "items": ref(name)},
            "total": {"type": "integer", "description": "Records matching the query, counted up to 2,000 (see total_exact)."},
            "total_exact": {"type": "boolean", "description": "False when there are more than `total`."},
            "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page."},
            "prev_cursor": {"type": ["string", "null"], "description": "Pass as `before` for the previous page."},
        },
    }
    return {name: output, f"{name}Input": create, f"{name}Update": update, f"{name}Page": page}


# -- operations -----------------------------------------------------------------------------------

def errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/{ERROR_RESPONSES[s][0]}"} for s in statuses}


ERROR_RESPONSES = {
    400: ("BadRequest", "A bad filter, sort, cursor, view or parameter, or a body that is not a JSON object."),
    401: ("Unauthorized", "No credentials, or an unknown or revoked API token."),
    403: ("Forbidden", "Not permitted, or a session-authenticated write without a valid X-CSRF-Token header."),
    404: ("NotFound", "No such entity, or no such record visible to the caller."),
    409: ("Conflict", "The record changed since the given version was read."),
    422: ("ValidationFailed", "Invalid values: `fields` maps each field (\"\" for the whole record) to messages."),
}


def filter_bar_parameters(entity: Entity) -> list[dict[str, Any]]:
    """The list screen's filter-bar parameters (f.FIELD...), as listing.bar_filters reads them."""
    out: list[dict[str, Any]] = []
    for f in listing.filter_fields(entity):
        label = text(f.label, "en")
        key = f"f.{f.name}"
        if f.type in listing.RANGED:
            out.append({"name": f"{key}.from", "in": "query", "schema": {"type": "string"},
                        "description": f"{label}: at least this value (inclusive)."})
            out.append({"name": f"{key}.to", "in": "query", "schema": {"type": "string"},
                        "description": f"{label}: at most this value (inclusive)."})
            if f.type in ("date", "datetime"):
                out.append({"name": key, "in": "query", "schema": {"type": "string"},
                            "description": f"{label}: a relative period such as today, this_week, last_n_days:7."})
        elif f.type in listing.PICKED:
            out.append({"name": key, "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form", "explode": True, "description": f"{label}: any of these keys."})
        else:
            out.append({"name": key, "in": "query", "schema": {"type": "string"},
                        "description": f"{label}: the value (text contains it; a reference by id or name; "
                                       "a user by id or `me`)."})
    return out


def entity_paths(entity: Entity) -> dict[str, Any]:
    name = schema_name(entity)
    label = text(entity.label, "en")
    tag = [entity.key]
    record = {"content": {"application/json": {"schema": ref(name)}}}
    views = ", ".join(f"`{v.key}` ({text(v.label, 'en')})" for v in entity.list.views)
    view_param = {"name": "view", "in": "query", "schema": {"type": "string"},
                  "description": "A named view (" + (views or "none declared") + ") or `s<ID>` for one of your "
                                 "saved views; its filters and sort apply."}
    list_params: list[dict[str, Any]] = [{"$ref": f"#/components/parameters/{p}"}
                   for p in ("filter", "q", "sort", "limit", "offset", "cursor", "before")]
    list_params += [view_param, *filter_bar_parameters(entity), {"$ref": "#/components/parameters/lang"}]
    item_params = [{"$ref": "#/components/parameters/id"}, {"$ref": "#/components/parameters/lang"}]
    etag = {"ETag": {"description": "The record's version, for If-Match.", "schema": {"type": "string"}}}
    return {
        f"/api/v1/{entity.key}": {
            "get": {
                "operationId": f"list{name}", "tags": tag, "summary": f"List {label} records",
                "description": f"Default sort: `{','.join(entity.list.sort)}`. Search (`q`) looks in: "
                               f"{', '.join(entity.search) or 'nothing'}.",
                "parameters": list_params,
                "responses": {"200": {"description": "A page of records.",
                                      "content": {"application/json": {"schema": ref(f"{name}Page")}}},
                              **errors(400, 401, 404)},
            },
            "post": {
                "operationId": f"create{name}", "tags": tag, "summary": f"Create a {label}",
                "parameters": [{"$ref": "#/components/parameters/lang"}],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": ref(f"{name}Input")}}},
                "responses": {"201": {"description": "Created.", **record,
                                      "headers": {"Location": {"description": "The new record's URL.",
                                                               "schema": {"type": "string"}}, **etag}},
                              **errors(400, 401, 403, 404, 422)},
            },
        },
        f"/api/v1/{entity.key}/{{id}}": {
            "get": {
                "operationId": f"get{name}", "tags": tag, "summary": f"Read a {label}",
                "parameters": item_params,
                "responses": {"200": {"description": "The record.", **record, "headers": etag},
                              **errors(401, 404)},
            },
            "patch": {
                "operationId": f"update{name}", "tags": tag, "summary": f"Change a {label}",
                "parameters": [*item_params, {"$ref": "#/components/parameters/ifMatch"}],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": ref(f"{name}Update")}}},
                "responses": {"200": {"description": "The record as saved.", **record, "headers": etag},
                              **errors(400, 401, 403, 404, 409, 422)},
            },
            "delete": {
                "operationId": f"delete{name}", "tags": tag, "summary": f"Move a {label} to the recycle bin",
                "description": "Children linked with on_delete: cascade go with it; a restricting link gives 422.",
                "parameters": item_params,
                "responses": {"200": {"description": "The record as it is now in the recycle bin "
                                                     "(`deleted_at` set).", **record},
                              **errors(401, 403, 404, 422)},
            },
        },
    }


# -- the document ---------------------------------------------------------------------------------

SHARED_SCHEMAS: dict[str, Any] = {
    "ApiError": {
        "type": "object", "required": ["error", "message", "request_id"],
        "properties": {
            "error": {"type": "string", "description": "ValidationFailed, Conflict, NotFound, Forbidden, "
                                                       "BadQuery, BadRequest, Unauthorized, CsrfFailed, ..."},
            "message": {"type": "string", "description": "For people, in the request's language."},
            "request_id": {"type": "string", "description": "Names the request in the server log."},
            "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                       "description": "Validation messages by field; \"\" holds those about the whole record."},
        },
    },
    "RecordLink": {
        "type": "object", "required": ["id", "title"],
        "description": "A linked record or user: its id and its title (a user's display name).",
        "properties": {"id": {"type": "integer"}, "title": {"type": ["string", "integer", "null"]}},
    },
    "FileInfo": {
        "type": "object", "required": ["name", "size", "content_type", "sha256"],
        "description": "An attachment: the bytes live in the server's file store under their sha256.",
        "properties": {"name": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
                       "content_type": {"type": "string"}, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
    },
    "EntityIndex": {
        "type": "object", "required": ["data"],
        "properties": {"data": {"type": "array", "items": {
            "type": "object", "required": ["key", "label", "url", "schema", "can"],
            "properties": {
                "key": {"type": "string"}, "label": {"type": "object", "additionalProperties": {"type": "string"}},
                "url": {"type": "string"}, "schema": {"type": "string"},
                "can": {"type": "object", "additionalProperties": {"type": "boolean"}},
            }}}},
    },
}

PARAMETERS: dict[str, Any] = {
    "filter": {"name": "filter", "in": "query", "style": "form", "explode": True,
               "schema": {"type": "array", "items": {"type": "string"}},
               "description": "`FIELD OP VALUE`, repeatable (all must hold), e.g. `annual_revenue gte 1000000`, "
                              "`industry in it,retail`, `next_follow_up_at eq this_week`, `owner eq $me`, "
                              "`phone is_empty`. Each property's `x-filter-operators` lists its operators."},
    "q": {"name": "q", "in": "query", "schema": {"type": "string"},
          "description": "Search text: every word must appear in one of the entity's search fields."},
    "sort": {"name": "sort", "in": "query", "schema": {"type": "string"},
             "description": "Comma-separated fields, `-` for descending, e.g. `-annual_revenue,name`. "
                            "References sort by their title."},
    "limit": {"name": "limit", "in": "query",
              "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
              "description": f"Records per page (at most {MAX_PAGE}; larger values are capped)."},
    "offset": {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0},
               "description": "Records to skip (ignored with `cursor` or `before`; prefer cursors for deep pages)."},
    "cursor": {"name": "cursor", "in": "query", "schema": {"type": "string"},
               "description": "The `next_cursor` of the previous response: the page after it, same query."},
    "before": {"name": "before", "in": "query", "schema": {"type": "string"},
               "description": "The `prev_cursor` of a response: the page before it, same query."},
    "lang": {"name": "lang", "in": "query", "schema": {"type": "string", "enum": ["en", "zh"]},
             "description": "Language of messages (else Accept-Language, else the user's language)."},
    "id": {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
    "ifMatch": {"name": "If-Match", "in": "header", "schema": {"type": "string"},
                "description": "The version the change is based on (the ETag of the read), if the body has no "
                               "`version`."},
}

DESCRIPTION = """\
The records of every entity, with the list screen's filters, sorts, search and paging.
See docs/api.md for examples.

**Authentication**: `Authorization: Bearer <token>` with a personal API token (create one on the
Settings page, /settings), or the signed-in browser session, whose writes need the page's CSRF
token in an `X-CSRF-Token` header.

**Errors** are JSON `{error, message, request_id, fields?}`; messages follow `?lang=en|zh`, else
`Accept-Language`, else the user's language.
"""


def build_document(registry: Registry) -> dict[str, Any]:
    schemas: dict[str, Any] = dict(SHARED_SCHEMAS)
    paths: dict[str, Any] = {
        "/api/v1": {"get": {
            "operationId": "listEntities", "summary": "The entities you may read",
            "parameters": [{"$ref": "#/components/parameters/lang"}],
            "responses": {"200": {"description": "Entities with their URLs and your permissions.",
                                  "content": {"application/json": {"schema": ref("EntityIndex")}}},
                          **errors(401)}}},
        "/api/openapi.json": {"get": {
            "operationId": "openapiDocument", "summary": "This document",
            "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **errors(401)}}},
    }
    tags = []
    for entity in registry.entities.values():
        schemas.update(entity_schemas(entity))
        paths.update(entity_paths(entity))
        tags.append({"name": entity.key, "description": f"{text(entity.label, 'en')} · {text(entity.label, 'zh')}"})
    error_content = {"application/json": {"schema": ref("ApiError")}}
    packs = ", ".join(f"{p.name} {p.version}" for p in registry.packs if p.path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "CRM JSON API", "version": f"v1 ({packs})" if packs else "v1", "description": DESCRIPTION},
        "security": [{"bearer": []}, {"session": []}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": PARAMETERS,
            "responses": {name: {"description": text_, "content": error_content}
                          for name, text_ in ERROR_RESPONSES.values()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A personal API token (Settings)."},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                            "description": "The browser session; writes also need the X-CSRF-Token header."},
            },
        },
    }


def document(registry: Registry) -> Mapping[str, Any]:
    """The document for `registry`, built once per registry (a customisation makes a new one)."""
    global _cache
    if _cache is None or _cache[0] is not registry:
        _cache = (registry, build_document(registry))
    return _cache[1]
