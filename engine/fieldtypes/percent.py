"""percent: a percentage stored as its number (12.5 means 12.5%), two decimal places."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.fieldtypes.base import ValueContext
from engine.fieldtypes.numeric import NumberLike

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class PercentType(NumberLike):
    name = "percent"
    precision = 7
    scale = 2

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        if isinstance(value, str):
            value = value.strip().rstrip("%").strip()
        return super().coerce(field, value, ctx)

    def format(self, field: Field, value: Any, language: str) -> str:
        text = super().format(field, value, language)
        return text + "%" if text else ""
