"""Shared behaviour of date and datetime: parsing, locale formatting and relative date filters.

Datetimes are stored naive, in the deployment's time zone (one firm, one clock); an input that
carries an offset is converted to that zone first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.fieldtypes.base import (
    ORDERED_OPERATORS,
    FieldType,
    FieldValueError,
    ValueContext,
    standard_clause,
)

if TYPE_CHECKING:
    from engine.metadata.registry import Field

RELATIVE = ("today", "yesterday", "tomorrow", "this_week", "last_week", "next_week",
            "this_month", "last_month", "next_month", "this_year", "last_year")
N_DAYS = re.compile(r"(last|next)_n_days:(\d{1,4})")


@dataclass(frozen=True)
class DayRange:
    """A half-open range of days [start, end) that a relative date token stands for."""

    start: date
    end: date


def relative_range(token: str, today: date) -> DayRange | None:
    """The days a relative token such as 'this_week' or 'last_n_days:7' covers, or None."""
    match = N_DAYS.fullmatch(token)
    if match:
        n = int(match.group(2))
        if match.group(1) == "last":  # the last N days, today included
            return DayRange(today - timedelta(days=n - 1), today + timedelta(days=1))
        return DayRange(today, today + timedelta(days=n + 1))  # today and the next N days
    week = today - timedelta(days=today.weekday())
    month = today.replace(day=1)

    def add_months(d: date, n: int) -> date:
        y, m = divmod(d.month - 1 + n, 12)
        return d.replace(year=d.year + y, month=m + 1, day=1)

    table = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "tomorrow": (today + timedelta(days=1), today + timedelta(days=2)),
        "this_week": (week, week + timedelta(days=7)),
        "last_week": (week - timedelta(days=7), week),
        "next_week": (week + timedelta(days=7), week + timedelta(days=14)),
        "this_month": (month, add_months(month, 1)),
        "last_month": (add_months(month, -1), month),
        "next_month": (add_months(month, 1), add_months(month, 2)),
        "this_year": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
        "last_year": (date(today.year - 1, 1, 1), date(today.year, 1, 1)),
    }
    if token in table:
        return DayRange(*table[token])
    return None


class Temporal(FieldType):
    operators = ORDERED_OPERATORS

    def bound(self, day: date) -> Any:
        """The column value at the start of `day` (a date, or midnight for datetimes)."""
        return day

    def filter_value(self, field: Field, raw: Any, ctx: ValueContext) -> Any:
        if isinstance(raw, str):
            span = relative_range(raw.strip(), ctx.today())
            if span is not None:
                return span
        return super().filter_value(field, raw, ctx)

    def filter_clause(self, column: sa.ColumnElement[Any], op: str, values: list[Any]) -> sa.ColumnElement[bool]:
        if not any(isinstance(v, DayRange) for v in values):
            return standard_clause(column, op, values)
        spans = [v if isinstance(v, DayRange) else DayRange(self.day_of(v), self.day_of(v) + timedelta(days=1)) for v in values]
        start, end = self.bound(spans[0].start), self.bound(spans[0].end)
        if op == "eq":
            return sa.and_(column >= start, column < end)
        if op == "ne":
            return sa.or_(column < start, column >= end, column.is_(None))
        if op == "lt":
            return column < start
        if op == "lte":
            return column < end
        if op == "gt":
            return column >= end
        if op == "gte":
            return column >= start
        if op == "between":
            return sa.and_(column >= start, column < self.bound(spans[-1].end))
        if op in ("in", "not_in"):
            clause = sa.or_(*[sa.and_(column >= self.bound(s.start), column < self.bound(s.end)) for s in spans])
            return clause if op == "in" else sa.not_(clause)
        return standard_clause(column, op, values)

    def day_of(self, value: Any) -> date:
        return value.date() if isinstance(value, datetime) else value


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().replace("/", "-").replace(".", "-")
    match = re.fullmatch(r"(\d{4})[-年](\d{1,2})[-月](\d{1,2})日?", text)
    if not match:
        raise FieldValueError("not_a_date", value=value)
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise FieldValueError("not_a_date", value=value) from None


def parse_datetime(value: Any, timezone: str) -> datetime:
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip().replace("/", "-")
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            result = datetime.fromisoformat(text)
        except ValueError:
            raise FieldValueError("not_a_datetime", value=value) from None
    if result.tzinfo is not None:
        result = result.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    return result.replace(microsecond=0)
