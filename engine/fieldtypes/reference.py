"""reference: many-to-one link to a record of `entity`; `on_delete` restrict, set_null or cascade."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import CheckContext, FieldType, FieldValueError, ValueContext

if TYPE_CHECKING:
    from engine.metadata.registry import Field

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def coerce_id(value: Any) -> int:
    if isinstance(value, bool):
        raise FieldValueError("not_an_id", value=value)
    if isinstance(value, dict) and "id" in value:  # {"id": 5, "title": ...} as the API returns it
        value = value["id"]
    try:
        number = int(str(value).strip())
    except ValueError:
        raise FieldValueError("not_an_id", value=value) from None
    if number <= 0 or number >= 2**63:
        raise FieldValueError("not_an_id", value=value)
    return number


class ReferenceType(FieldType):
    name = "reference"
    schema = {
        "entity": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "on_delete": {"enum": ["restrict", "set_null", "cascade"]},
    }
    required_keys = ("entity",)
    widget = "reference"

    def cross_check(self, name: str, spec: Mapping[str, Any], ctx: CheckContext) -> Iterator[tuple[str, str]]:
        target = spec.get("entity")
        if target and target not in ctx.entities:
            yield "entity", f"unknown entity '{target}'"
        if spec.get("on_delete") == "set_null" and spec.get("required"):
            yield "on_delete", "set_null cannot apply to a required field"

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return ID_TYPE

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        return coerce_id(value)
