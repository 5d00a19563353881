"""datetime: a moment, stored in the deployment's time zone to the second."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from babel.dates import format_datetime

from engine.fieldtypes.base import ValueContext
from engine.fieldtypes.numeric import BABEL_LOCALES
from engine.fieldtypes.temporal import Temporal, parse_datetime

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class DateTimeType(Temporal):
    name = "datetime"
    widget = "datetime-local"

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.DateTime()

    def bound(self, day: date) -> Any:
        return datetime(day.year, day.month, day.day)

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        return parse_datetime(value, ctx.timezone)

    def to_json(self, field: Field, value: Any) -> Any:
        return None if value is None else value.isoformat(timespec="seconds")

    def format(self, field: Field, value: Any, language: str) -> str:
        if not isinstance(value, datetime):
            return ""
        return format_datetime(value, format="short" if language == "en" else "yyyy-MM-dd HH:mm",
                               locale=BABEL_LOCALES.get(language, BABEL_LOCALES["en"]))
