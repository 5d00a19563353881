"""choice: one option key of a named pick-list (`picklist`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import (
    CheckContext,
    FieldType,
    FieldValueError,
    ValueContext,
    label_text,
)

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class ChoiceType(FieldType):
    name = "choice"
    schema = {"picklist": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}}
    required_keys = ("picklist",)
    widget = "select"

    def cross_check(self, name: str, spec: Mapping[str, Any], ctx: CheckContext) -> Iterator[tuple[str, str]]:
        picklist = spec.get("picklist")
        if picklist and picklist not in ctx.picklists:
            yield "picklist", f"unknown pick-list '{picklist}'"

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String(64)

    def option_key(self, field: Field, value: Any, *, allow_inactive: bool) -> str:
        key = str(value).strip()
        assert field.picklist is not None
        option = field.picklist.option(key)
        if option is None:
            # Accept a label too: imports and people type what they see.
            option = field.picklist.option_by_label(key)
        if option is None:
            raise FieldValueError("not_an_option", value=key, picklist=field.picklist.key)
        if not option.active and not allow_inactive:
            raise FieldValueError("inactive_option", value=key)
        return option.key

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        return self.option_key(field, value, allow_inactive=False)

    def filter_value(self, field: Field, raw: Any, ctx: ValueContext) -> Any:
        return self.option_key(field, raw, allow_inactive=True)

    def format(self, field: Field, value: Any, language: str) -> str:
        if value is None or field.picklist is None:
            return ""
        option = field.picklist.option(value)
        return label_text(option.label, language) if option else str(value)
