"""Shared behaviour of the number-valued types (integer, decimal, money, percent)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from babel import Locale
from babel.numbers import format_decimal

from engine.fieldtypes.base import ORDERED_OPERATORS, FieldType, FieldValueError, ValueContext

if TYPE_CHECKING:
    from engine.metadata.registry import Field

# Parsed once: babel would otherwise parse the locale name again for every value it formats.
BABEL_LOCALES = {"en": Locale.parse("en_US"), "zh": Locale.parse("zh_CN")}


class NumberLike(FieldType):
    operators = ORDERED_OPERATORS
    widget = "number"
    schema = {"min": {"type": "number"}, "max": {"type": "number"}}
    precision: ClassVar[int] = 18
    scale: ClassVar[int] = 4

    def digits(self, field: Field) -> tuple[int, int]:
        return int(field.options.get("precision", self.precision)), int(field.options.get("scale", self.scale))

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        precision, scale = self.digits(field)
        return sa.Numeric(precision, scale, asdecimal=True)

    def parse_number(self, value: Any) -> Decimal:
        if isinstance(value, bool):
            raise FieldValueError("not_a_number", value=value)
        if isinstance(value, str):
            text = value.strip().replace(",", "").replace("，", "").replace("¥", "").replace("￥", "").replace("$", "")
        else:
            text = str(value)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise FieldValueError("not_a_number", value=value) from None
        if not number.is_finite():
            raise FieldValueError("not_a_number", value=value)
        return number

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        number = self.parse_number(value)
        precision, scale = self.digits(field)
        if number.adjusted() >= precision - scale:  # before rounding: quantize fails on huge numbers
            raise FieldValueError("too_many_digits", digits=precision - scale)
        # Half up (四舍五入), as invoices and Chinese accounting practice round.
        number = number.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP) if scale else number.to_integral_value(ROUND_HALF_UP)
        if number.adjusted() >= precision - scale:
            raise FieldValueError("too_many_digits", digits=precision - scale)
        self.check_range(field, number)
        return number

    def check_range(self, field: Field, number: Decimal | int) -> None:
        low, high = field.options.get("min"), field.options.get("max")
        if low is not None and number < Decimal(str(low)):
            raise FieldValueError("too_small", min=low)
        if high is not None and number > Decimal(str(high)):
            raise FieldValueError("too_large", max=high)

    def to_json(self, field: Field, value: Any) -> Any:
        # Decimals travel as strings so no precision is lost in JSON.
        return None if value is None else str(value)

    def format(self, field: Field, value: Any, language: str) -> str:
        if value is None:
            return ""
        return format_decimal(value, locale=BABEL_LOCALES.get(language, BABEL_LOCALES["en"]), decimal_quantization=False)
