"""boolean: yes or no. Forms send a checkbox; the API sends true/false."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import FieldType, FieldValueError, ValueContext

if TYPE_CHECKING:
    from engine.metadata.registry import Field

TRUE = {"true", "1", "yes", "y", "on", "是", "t"}
FALSE = {"false", "0", "no", "n", "off", "否", "f"}


class BooleanType(FieldType):
    name = "boolean"
    widget = "checkbox"
    operators = ("eq", "ne", "is_empty", "is_not_empty")

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.Boolean()

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise FieldValueError("not_a_boolean", value=value)

    def parse_form(self, field: Field, raw: str | list[str], ctx: ValueContext) -> Any:
        # An unchecked checkbox sends nothing; a hidden "0" before the box makes that explicit.
        values = raw if isinstance(raw, list) else [raw]
        return any(self.coerce(field, v, ctx) for v in values if str(v).strip() != "")

    def format(self, field: Field, value: Any, language: str) -> str:
        if value is None:
            return ""
        return ("是" if value else "否") if language == "zh" else ("Yes" if value else "No")
