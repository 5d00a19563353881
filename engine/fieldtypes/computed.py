"""computed: a stored value recomputed on every save from `expression` over the record's fields.

`result` picks the stored type (integer, decimal, money or percent); stored so lists can sort and
filter on it with an index like any other column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes import expression
from engine.fieldtypes.base import ORDERED_OPERATORS, CheckContext, FieldType, ValueContext

if TYPE_CHECKING:
    from engine.metadata.registry import Field

RESULT_TYPES = ("integer", "decimal", "money", "percent")


class ComputedType(FieldType):
    name = "computed"
    schema = {
        "expression": {"type": "string", "minLength": 1, "maxLength": 500},
        "result": {"enum": list(RESULT_TYPES)},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "scale": {"type": "integer", "minimum": 0, "maximum": 8},
    }
    required_keys = ("expression",)
    operators = ORDERED_OPERATORS
    derived = True

    def cross_check(self, name: str, spec: Mapping[str, Any], ctx: CheckContext) -> Iterator[tuple[str, str]]:
        try:
            tree = expression.parse(str(spec.get("expression", "")))
        except expression.ExpressionError as exc:
            yield "expression", str(exc)
            return
        for used in sorted(expression.names(tree)):
            if used not in ctx.field_names:
                yield "expression", f"unknown field '{used}'"
            elif used == name:
                yield "expression", "a computed field cannot use itself"

    def result_type(self, field: Field) -> FieldType:
        from engine.fieldtypes import get_type

        return get_type(field.options.get("result", "decimal"))

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return self.result_type(field).column_type(field)

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        # Never set by callers (derived); used for filter operands, typed like the result.
        return self.result_type(field).coerce(field, value, ctx)

    def compute(self, field: Field, values: Mapping[str, Any]) -> Any:
        assert field.compiled_expression is not None
        result = expression.evaluate(field.compiled_expression, values)
        if result is None:
            return None
        if field.options.get("result") == "integer":
            value = result.to_integral_value(ROUND_HALF_UP)
        else:
            value = result.quantize(Decimal(1).scaleb(-int(field.options.get("scale", 2))), ROUND_HALF_UP)
        # A result too large for its column (a campaign's ROI of 150,000%) is left empty: failing
        # would refuse the save of this record, and of every child whose rollup recomputes it.
        precision, scale = self.result_type(field).digits(field)  # type: ignore[attr-defined]
        if value and value.adjusted() >= precision - scale:
            return None
        return int(value) if field.options.get("result") == "integer" else value

    def to_json(self, field: Field, value: Any) -> Any:
        return self.result_type(field).to_json(field, value)

    def format(self, field: Field, value: Any, language: str) -> str:
        return self.result_type(field).format(field, value, language)
