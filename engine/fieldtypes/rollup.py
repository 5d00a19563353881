"""rollup: an aggregate (count, sum, min, max) over the child records that reference this one.

Example: a quote's total is `{type: rollup, entity: quote_line, via: quote, aggregate: sum,
field: amount}`. The runtime recomputes it whenever a child is saved, moved or deleted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import ORDERED_OPERATORS, CheckContext, FieldType, ValueContext

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class RollupType(FieldType):
    name = "rollup"
    schema = {
        "entity": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "via": {"type": "string"},
        "aggregate": {"enum": ["count", "sum", "min", "max"]},
        "field": {"type": "string"},
        "where": {"type": "array", "items": {"type": "string"}},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    }
    required_keys = ("entity", "via", "aggregate")
    operators = ORDERED_OPERATORS
    derived = True

    def cross_check(self, name: str, spec: Mapping[str, Any], ctx: CheckContext) -> Iterator[tuple[str, str]]:
        child = str(spec.get("entity"))
        if child not in ctx.entities:
            yield "entity", f"unknown entity '{child}'"
            return
        if spec.get("via") not in ctx.entities[child]:
            yield "via", f"'{child}' has no field '{spec.get('via')}'"
        if spec.get("aggregate") != "count":
            if not spec.get("field"):
                yield "field", f"'{spec.get('aggregate')}' needs a field to aggregate"
            elif spec["field"] not in ctx.entities[child]:
                yield "field", f"'{child}' has no field '{spec['field']}'"

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        if field.options.get("aggregate") == "count":
            return sa.BigInteger().with_variant(sa.Integer(), "sqlite")
        return sa.Numeric(18, 2, asdecimal=True)

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        # Never set by callers (derived); used for filter operands: a count or an amount.
        from engine.fieldtypes import get_type

        return get_type("integer" if field.options.get("aggregate") == "count" else "decimal").coerce(field, value, ctx)

    def to_json(self, field: Field, value: Any) -> Any:
        if value is None or field.options.get("aggregate") == "count":
            return value
        return str(value)

    def format(self, field: Field, value: Any, language: str) -> str:
        from engine.fieldtypes import get_type

        if value is None:
            return ""
        kind = "integer" if field.options.get("aggregate") == "count" else (
            "money" if field.options.get("currency") else "decimal")
        return get_type(kind).format(field, value, language)
