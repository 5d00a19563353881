"""The field type protocol: one subclass per type, one module per subclass.

A field type owns everything about its values: the metadata keys it accepts (a JSON Schema
fragment), the database column, coercion and validation of API/CLI values, parsing of form
strings, display formatting, JSON output and the filter operators it supports. The rest of the
engine asks the type; it never branches on the type's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from engine.i18n import Message

if TYPE_CHECKING:
    from engine.metadata.registry import Field

# Operators in the order the UI offers them.
ALL_OPERATORS = (
    "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "starts_with",
    "between", "is_empty", "is_not_empty",
)
TEXT_OPERATORS = ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_empty", "is_not_empty")
ORDERED_OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "between", "is_empty", "is_not_empty")
KEY_OPERATORS = ("eq", "ne", "in", "not_in", "is_empty", "is_not_empty")


class FieldValueError(ValueError):
    """A value a caller gave does not fit the field; carries a translatable message."""

    def __init__(self, code: str, **params: Any) -> None:
        self.message = Message(code, params)
        super().__init__(str(self.message))


@dataclass(frozen=True)
class CheckContext:
    """What a type may consult when cross-checking its metadata (names only, no registry yet)."""

    entity: str
    field_names: frozenset[str]
    entities: Mapping[str, frozenset[str]]  # entity -> its field names
    picklists: frozenset[str]


@dataclass(frozen=True)
class ValueContext:
    """What coercion may need beyond the value: who is acting and what 'now' is."""

    user_id: int | None = None
    now: datetime | None = None
    timezone: str = "Asia/Shanghai"

    def current_time(self) -> datetime:
        return self.now or datetime.now()

    def today(self) -> date:
        return self.current_time().date()


class FieldType:
    """Base behaviour shared by every type; subclasses override what differs."""

    name: ClassVar[str]
    # JSON Schema properties of the type's own metadata keys (common keys live in field.json).
    schema: ClassVar[dict[str, Any]] = {}
    required_keys: ClassVar[tuple[str, ...]] = ()
    operators: ClassVar[tuple[str, ...]] = KEY_OPERATORS
    widget: ClassVar[str] = "text"
    # True when the value is derived (computed, rollup, autonumber): never accepted from callers.
    derived: ClassVar[bool] = False
    sortable: ClassVar[bool] = True

    # -- metadata -----------------------------------------------------------------------------
    def cross_check(self, name: str, spec: Mapping[str, Any], ctx: CheckContext) -> Iterator[tuple[str, str]]:
        """Yield (sub-path, message) for references this field's metadata makes to unknown things."""
        return iter(())

    # -- storage ------------------------------------------------------------------------------
    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        raise NotImplementedError

    # -- values -------------------------------------------------------------------------------
    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        """Turn an API/CLI value (JSON types or Python objects) into the stored Python value.

        `None` and "" mean empty and are handled by the caller; raise FieldValueError when bad.
        """
        return value

    def parse_form(self, field: Field, raw: str | list[str], ctx: ValueContext) -> Any:
        """Turn an HTML form value into the stored Python value (default: same as coerce)."""
        if isinstance(raw, list):
            raw = raw[-1] if raw else ""
        raw = raw.strip()
        return None if raw == "" else self.coerce(field, raw, ctx)

    def to_json(self, field: Field, value: Any) -> Any:
        return value

    def to_db(self, value: Any) -> Any:
        """The column value for a stored Python value (identity for most types)."""
        return value

    def from_db(self, value: Any) -> Any:
        return value

    def format(self, field: Field, value: Any, language: str) -> str:
        """Plain display text for `value` (the UI adds links and markup around it)."""
        return "" if value is None else str(value)

    def is_empty(self, value: Any) -> bool:
        return value is None or value == "" or value == []

    # -- queries ------------------------------------------------------------------------------
    def filter_value(self, field: Field, raw: Any, ctx: ValueContext) -> Any:
        """Coerce one operand of a filter (a string from a URL, or a JSON value)."""
        if isinstance(raw, str):
            return self.parse_form(field, raw, ctx)
        return self.coerce(field, raw, ctx)

    def filter_clause(self, column: sa.ColumnElement[Any], op: str, values: list[Any]) -> sa.ColumnElement[bool]:
        """SQL for `column OP values` with already-coerced operands."""
        return standard_clause(column, op, values)


def standard_clause(column: sa.ColumnElement[Any], op: str, values: list[Any]) -> sa.ColumnElement[bool]:
    if op == "eq":
        return column == values[0]
    if op == "ne":
        return sa.or_(column != values[0], column.is_(None))
    if op == "lt":
        return column < values[0]
    if op == "lte":
        return column <= values[0]
    if op == "gt":
        return column > values[0]
    if op == "gte":
        return column >= values[0]
    if op == "in":
        return column.in_(values)
    if op == "not_in":
        return sa.or_(column.not_in(values), column.is_(None))
    if op == "between":
        return column.between(values[0], values[1])
    if op == "contains":
        return column.ilike("%" + escape_like(values[0]) + "%", escape="\\")
    if op == "starts_with":
        return column.ilike(escape_like(values[0]) + "%", escape="\\")
    if op == "is_empty":
        return column.is_(None)
    if op == "is_not_empty":
        return column.is_not(None)
    raise ValueError(f"unknown operator {op}")


def escape_like(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def label_text(label: Mapping[str, str] | None, language: str) -> str:
    if not label:
        return ""
    return label.get(language) or label.get("en") or next(iter(label.values()), "")


def names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))
