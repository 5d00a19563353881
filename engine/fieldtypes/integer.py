"""integer: a whole number, optionally bounded by `min` / `max`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import FieldValueError, ValueContext
from engine.fieldtypes.numeric import NumberLike

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class IntegerType(NumberLike):
    name = "integer"

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.BigInteger().with_variant(sa.Integer(), "sqlite")

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        number = self.parse_number(value)
        if number != number.to_integral_value():
            raise FieldValueError("not_an_integer", value=value)
        result = int(number)
        if abs(result) >= 2**63:
            raise FieldValueError("too_large", max=2**63 - 1)
        self.check_range(field, result)
        return result

    def to_json(self, field: Field, value: Any) -> Any:
        return value
