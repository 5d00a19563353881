"""JSON Schema validation of pack documents, with errors located by FILE:LINE: PATH."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from engine.fieldtypes import all_types
from engine.metadata.yamlfile import Document, PackError

SCHEMA_DIR = Path(__file__).parent / "schemas"


@cache
def schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schema(name))


@cache
def field_validator(type_name: str) -> Draft202012Validator:
    """Common field keys plus the type's own keys; anything else is an error."""
    kind = all_types()[type_name]
    base = schema("field")
    combined = {
        **base,
        "properties": {**base["properties"], **kind.schema},
        "required": list(base["required"]) + list(kind.required_keys),
        "additionalProperties": False,
    }
    return Draft202012Validator(combined)


NAME = "a valid name (lower-case letters, digits and _, starting with a letter)"
PATTERNS = {
    "^[a-z][a-z0-9_]*$": NAME,
    "^(?!crm_)[a-z][a-z0-9_]*$": NAME[:-1] + "; not starting with crm_)",
    "^-?[a-z][a-z0-9_]*$": "a field name, optionally with '-' in front for descending order",
    "^\\d+\\.\\d+\\.\\d+$": "a version MAJOR.MINOR.PATCH such as 1.0.0",
    "^[A-Za-z0-9_][A-Za-z0-9_.-]*$": "a valid option key (letters, digits, _ . -)",
    "^[A-Z]{3}$": "a three-letter currency code such as CNY or USD",
    "^([a-z][a-z0-9_]*|\\*)$": "an entity name or *",
    "^[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*$": "of the form entity.field",
    "^[a-z][a-z0-9_.]*$": "a valid message key (lower-case letters, digits, _ and .)",
}
SHAPES = {"object": "a mapping (key: value pairs)", "array": "a list", "string": "text",
          "integer": "a whole number", "number": "a number", "boolean": "true or false"}


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing"
    return repr(value)


def _message(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(repr(e) for e in extra)} (allowed: {allowed})"
    if error.validator == "pattern" and isinstance(error.instance, str):
        return f"{error.instance!r} is not {PATTERNS.get(error.validator_value, 'in the expected form')}"
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"expected {' or '.join(str(SHAPES.get(w, w)) for w in wanted)}, not {_shape(error.instance)}"
    if error.validator == "not" and isinstance(error.instance, dict) and "extend" in error.instance:
        extra = [k for k in ("entity", "title", "picklist", "role") if k in error.instance]
        return f"a document with 'extend:' adds to an existing one; remove {', '.join(repr(k) for k in extra)}"
    if error.validator == "propertyNames" and isinstance(error.instance, str):
        return f"{error.instance!r} is not a valid key"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    return error.message


def check(doc: Document, schema_name: str, data: Any = None, prefix: tuple[Any, ...] = ()) -> Iterator[PackError]:
    """Every schema error of `data` (default: the whole document), located in `doc`."""
    target = doc.data if data is None else data
    v = validator(schema_name) if schema_name != "field" else None
    return _errors(doc, v, target, prefix)


def check_field(doc: Document, spec: Any, prefix: tuple[Any, ...]) -> Iterator[PackError]:
    types = all_types()
    if not isinstance(spec, dict):
        yield doc.error(prefix, "a field must be a mapping of keys (type, label, ...)")
        return
    if spec.get("extend") is True:
        yield from _errors(doc, validator("field_extension"), spec, prefix)
        return
    type_name = spec.get("type")
    if type_name not in types:
        shown = ", ".join(sorted(types))
        if type_name is None:
            yield doc.error(prefix, f"'type' is missing ({shown})")
        else:
            yield doc.error(prefix + ("type",), f"{type_name!r} is not a field type ({shown})")
        return
    yield from _errors(doc, field_validator(type_name), spec, prefix)


def _errors(doc: Document, v: Draft202012Validator | None, data: Any, prefix: tuple[Any, ...]) -> Iterator[PackError]:
    assert v is not None
    for error in sorted(v.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator in ("if", "then", "else"):
            continue
        yield doc.error(prefix + tuple(error.absolute_path), _message(error))
