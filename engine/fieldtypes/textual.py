"""Shared behaviour of the text-valued types (string, text, email, phone, url, autonumber)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from engine.fieldtypes.base import TEXT_OPERATORS, FieldType, FieldValueError, ValueContext

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class TextLike(FieldType):
    operators = TEXT_OPERATORS
    default_max_length: ClassVar[int] = 255
    pattern: ClassVar[re.Pattern[str] | None] = None
    pattern_error: ClassVar[str] = "not_a_string"

    def max_length(self, field: Field) -> int:
        return int(field.options.get("max_length", self.default_max_length))

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String(self.max_length(field))

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldValueError("not_a_string")
        text = self.normalize(str(value).strip())
        if "\x00" in text:  # PostgreSQL cannot store NUL characters
            raise FieldValueError("not_a_string")
        if len(text) > self.max_length(field):
            raise FieldValueError("too_long", max=self.max_length(field))
        if self.pattern is not None and text and not self.pattern.fullmatch(text):
            raise FieldValueError(self.pattern_error, value=text)
        return text

    def normalize(self, text: str) -> str:
        return text
