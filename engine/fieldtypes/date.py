"""date: a calendar day (YYYY-MM-DD), with relative filters such as today or last_n_days:7."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from babel.dates import format_date

from engine.fieldtypes.base import ValueContext
from engine.fieldtypes.numeric import BABEL_LOCALES
from engine.fieldtypes.temporal import Temporal, parse_date

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class DateType(Temporal):
    name = "date"
    widget = "date"

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.Date()

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        return parse_date(value)

    def to_json(self, field: Field, value: Any) -> Any:
        return None if value is None else value.isoformat()

    def format(self, field: Field, value: Any, language: str) -> str:
        if not isinstance(value, date):
            return ""
        return format_date(value, format="medium", locale=BABEL_LOCALES.get(language, BABEL_LOCALES["en"]))
