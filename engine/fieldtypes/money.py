"""money: an amount in `currency` (ISO code, default CNY), two decimal places."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from babel.numbers import format_currency

from engine.fieldtypes.numeric import BABEL_LOCALES, NumberLike

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class MoneyType(NumberLike):
    name = "money"
    schema = {**NumberLike.schema, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}
    scale = 2

    def format(self, field: Field, value: Any, language: str) -> str:
        if value is None:
            return ""
        currency = field.options.get("currency", "CNY")
        return format_currency(value, currency, locale=BABEL_LOCALES.get(language, BABEL_LOCALES["en"]))
