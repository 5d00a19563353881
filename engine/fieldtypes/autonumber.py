"""autonumber: a code generated on create from a pattern such as 'KH{YYYY}{MM}-{seq:5}'.

The counter is keyed by the text the pattern renders before {seq}, so 'KH{YYYY}{MM}-' restarts
every month. The runtime draws numbers inside the inserting transaction, so they are gap-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from engine.fieldtypes.base import CheckContext
from engine.fieldtypes.textual import TextLike

TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|seq(?::(\d{1,2}))?)\}")


def render(pattern: str, when: datetime, seq: int | None = None) -> str:
    """The pattern with dates filled in; up to {seq} only when `seq` is None (the counter key)."""
    out: list[str] = []
    pos = 0
    for match in TOKEN.finditer(pattern):
        out.append(pattern[pos:match.start()])
        token = match.group(1)
        if token.startswith("seq"):
            if seq is None:
                return "".join(out)
            out.append(str(seq).zfill(int(match.group(2) or 1)))
        else:
            out.append({"YYYY": f"{when.year:04d}", "YY": f"{when.year % 100:02d}",
                        "MM": f"{when.month:02d}", "DD": f"{when.day:02d}"}[token])
        pos = match.end()
    out.append(pattern[pos:])
    return "".join(out)


class AutonumberType(TextLike):
    name = "autonumber"
    schema = {"pattern": {"type": "string", "minLength": 1, "maxLength": 60}}
    required_keys = ("pattern",)
    derived = True
    default_max_length = 64

    def cross_check(self, name: str, spec: Mapping[str, Any], ctx: CheckContext) -> Iterator[tuple[str, str]]:
        pattern = str(spec.get("pattern", ""))
        seqs = [m for m in TOKEN.finditer(pattern) if m.group(1).startswith("seq")]
        if len(seqs) != 1:
            yield "pattern", "must contain exactly one {seq} or {seq:N} token"
        leftover = TOKEN.sub("", pattern)
        if "{" in leftover or "}" in leftover:
            yield "pattern", "unknown token (use {YYYY} {YY} {MM} {DD} {seq:N})"
