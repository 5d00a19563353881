"""The text form of a filter, shared by views in metadata, the CLI and list URLs: FIELD OP VALUE.

    stage eq won            amount between 1000,5000      owner in 3,4
    name contains 华为       close_on eq this_month        remarks is_empty
    owner eq $me            owner in $subtree             shared eq $me
"""

from __future__ import annotations

from dataclasses import dataclass

# `shared eq $me`: records shared with the current user (not a field: the sharing table).
SHARED = "shared"
# Values of user fields that stand for several users: the current user's department and subtree.
USER_GROUPS = ("$department", "$subtree")

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "starts_with",
             "between", "is_empty", "is_not_empty")
NO_VALUE = ("is_empty", "is_not_empty")
LIST_VALUE = ("in", "not_in", "between")


class FilterSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class FilterSpec:
    field: str
    op: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join([self.field, self.op, ",".join(self.values)]).strip()


def split_values(op: str, raw: str) -> tuple[str, ...]:
    if op in NO_VALUE:
        return ()
    if op in LIST_VALUE:
        parts = tuple(p.strip() for p in raw.replace("，", ",").split(",") if p.strip())
    else:
        parts = (raw.strip(),)
    if not parts or parts == ("",):
        raise FilterSyntaxError(f"operator '{op}' needs a value")
    if op == "between" and len(parts) != 2:
        raise FilterSyntaxError("between needs two values: LOW,HIGH")
    return parts


def parse_filter(text: str) -> FilterSpec:
    parts = text.strip().split(None, 2)
    if len(parts) < 2:
        raise FilterSyntaxError("expected 'FIELD OPERATOR VALUE'")
    field, op = parts[0], parts[1]
    if op not in OPERATORS:
        raise FilterSyntaxError(f"unknown operator '{op}' (use {', '.join(OPERATORS)})")
    if op in NO_VALUE and len(parts) > 2:
        raise FilterSyntaxError(f"operator '{op}' takes no value")
    return FilterSpec(field, op, split_values(op, parts[2] if len(parts) > 2 else ""))
