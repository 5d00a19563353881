"""JSON Schema validation of pack documents, with errors located by FILE:LINE: PATH."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
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
    """Built once per process and schema (jsonschema's validators are reusable and stateless)."""
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


# -- a fast yes/no check ---------------------------------------------------------------------------
# jsonschema walks a document by creating a validator per subschema and resolving every $ref
# through `referencing`: about 60% of compiling the standard pack. Almost every document is valid,
# so each schema is also compiled once into plain Python predicates that only answer "valid?";
# jsonschema runs (for its messages) only on the documents they reject. The predicates know the
# keywords our schemas use; a schema with any other keyword has no fast check (always jsonschema).

Check = Callable[[Any], bool]
ANNOTATIONS = frozenset(("$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples"))
TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


class NoFastCheck(Exception):
    """The schema uses a keyword the fast check does not implement."""


def _equal(a: Any, b: Any) -> bool:
    """JSON equality as JSON Schema means it: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return bool(a == b)


def fast_check(node: Any, root: dict[str, Any]) -> Check:
    """A predicate equivalent to validating against `node` (a subschema of `root`)."""
    if node is True or node == {}:
        return lambda v: True
    if node is False:
        return lambda v: False
    if not isinstance(node, dict):
        raise NoFastCheck(repr(node))
    checks: list[Check] = []
    unknown = set(node) - ANNOTATIONS - {
        "type", "$ref", "properties", "additionalProperties", "required", "propertyNames", "items", "minItems",
        "pattern", "minLength", "maxLength", "enum", "const", "minimum", "maximum", "if", "then", "else", "not",
        "anyOf", "oneOf"}
    if unknown:
        raise NoFastCheck(", ".join(sorted(unknown)))
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/$defs/") or "/" in ref[8:]:
            raise NoFastCheck(str(ref))
        checks.append(fast_check(root["$defs"][ref[8:]], root))
    if "type" in node:
        wanted = [TYPES[t] for t in (node["type"] if isinstance(node["type"], list) else [node["type"]])]
        checks.append(wanted[0] if len(wanted) == 1 else lambda v: any(t(v) for t in wanted))
    if "enum" in node:
        options = list(node["enum"])
        checks.append(lambda v: any(_equal(v, o) for o in options))
    if "const" in node:
        constant = node["const"]
        checks.append(lambda v: _equal(v, constant))
    if "required" in node:
        required = tuple(node["required"])
        checks.append(lambda v: not isinstance(v, dict) or all(k in v for k in required))
    if "properties" in node or "additionalProperties" in node:
        props = {k: fast_check(sub, root) for k, sub in (node.get("properties") or {}).items()}
        extra = fast_check(node.get("additionalProperties", True), root)

        def objects(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for key, value in v.items():
                check = props.get(key, extra)
                if not check(value):
                    return False
            return True
        checks.append(objects)
    if "propertyNames" in node:
        names = fast_check(node["propertyNames"], root)
        checks.append(lambda v: not isinstance(v, dict) or all(names(k) for k in v))
    if "items" in node:
        item = fast_check(node["items"], root)
        checks.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
    if "minItems" in node:
        least = node["minItems"]
        checks.append(lambda v: not isinstance(v, list) or len(v) >= least)
    if "pattern" in node:
        pattern = re.compile(node["pattern"])
        checks.append(lambda v: not isinstance(v, str) or pattern.search(v) is not None)
    if "minLength" in node:
        shortest = node["minLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) >= shortest)
    if "maxLength" in node:
        longest = node["maxLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) <= longest)
    number = TYPES["number"]
    if "minimum" in node:
        low = node["minimum"]
        checks.append(lambda v: not number(v) or v >= low)
    if "maximum" in node:
        high = node["maximum"]
        checks.append(lambda v: not number(v) or v <= high)
    if "if" in node:
        condition = fast_check(node["if"], root)
        then, otherwise = fast_check(node.get("then", True), root), fast_check(node.get("else", True), root)
        checks.append(lambda v: then(v) if condition(v) else otherwise(v))
    if "not" in node:
        negated = fast_check(node["not"], root)
        checks.append(lambda v: not negated(v))
    if "anyOf" in node:
        any_of = [fast_check(sub, root) for sub in node["anyOf"]]
        checks.append(lambda v: any(c(v) for c in any_of))
    if "oneOf" in node:
        one_of = [fast_check(sub, root) for sub in node["oneOf"]]
        checks.append(lambda v: sum(1 for c in one_of if c(v)) == 1)
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


_fast: dict[int, Check | None] = {}


def fast_valid(v: Draft202012Validator, data: Any) -> bool:
    """True when `data` is certainly valid for `v` (no need to ask jsonschema for errors)."""
    key = id(v)  # validators live as long as the process (cached above)
    if key not in _fast:
        try:
            _fast[key] = fast_check(v.schema, v.schema)
        except (NoFastCheck, KeyError, TypeError, re.error):
            _fast[key] = None
    check = _fast[key]
    return check is not None and check(data)


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
    if fast_valid(v, data):
        return
    for error in sorted(v.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator in ("if", "then", "else"):
            continue
        yield doc.error(prefix + tuple(error.absolute_path), _message(error))
