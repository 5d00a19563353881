"""multi_choice: several option keys of a named pick-list.

Stored as text '|a|b|' so "has option a" is a portable LIKE '%|a|%' on every database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import FieldValueError, ValueContext, escape_like
from engine.fieldtypes.choice import ChoiceType

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class MultiChoiceType(ChoiceType):
    name = "multi_choice"
    widget = "multiselect"
    operators = ("contains", "in", "is_empty", "is_not_empty")
    sortable = False

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String(1000)

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        if isinstance(value, str):
            value = [v for v in value.replace("，", ",").split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise FieldValueError("not_a_list")
        keys: list[str] = []
        for item in value:
            key = self.option_key(field, item, allow_inactive=False)
            if key not in keys:
                keys.append(key)
        return keys or None

    def parse_form(self, field: Field, raw: str | list[str], ctx: ValueContext) -> Any:
        values = raw if isinstance(raw, list) else [raw]
        return self.coerce(field, [v for v in values if v.strip()], ctx)

    def filter_value(self, field: Field, raw: Any, ctx: ValueContext) -> Any:
        return self.option_key(field, raw, allow_inactive=True)

    def is_empty(self, value: Any) -> bool:
        return not value

    def format(self, field: Field, value: Any, language: str) -> str:
        if not value:
            return ""
        return ", ".join(ChoiceType.format(self, field, key, language) for key in value)

    def to_db(self, value: Any) -> Any:
        return "|" + "|".join(value) + "|" if value else None

    def from_db(self, value: Any) -> Any:
        return [v for v in value.split("|") if v] if value else []

    def filter_clause(self, column: sa.ColumnElement[Any], op: str, values: list[Any]) -> sa.ColumnElement[bool]:
        if op in ("contains", "in"):
            return sa.or_(*[column.like(f"%|{escape_like(v)}|%", escape="\\") for v in values])
        if op == "is_empty":
            return column.is_(None)
        return column.is_not(None)
