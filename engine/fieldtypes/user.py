"""user: a link to a login user (the system `owner`, `created_by` and `updated_by` are users)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import FieldType, ValueContext
from engine.fieldtypes.reference import ID_TYPE, coerce_id

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class UserType(FieldType):
    name = "user"
    widget = "user"

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return ID_TYPE

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        if value == "$me":
            return ctx.user_id
        return coerce_id(value)

    def filter_value(self, field: Field, raw: Any, ctx: ValueContext) -> Any:
        return self.coerce(field, raw.strip() if isinstance(raw, str) else raw, ctx)
