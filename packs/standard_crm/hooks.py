"""Behaviours of the standard CRM pack: hooks, record actions and scheduled jobs.

Everything here uses the public plugin API (engine.plugins, the record service reached through
`ctx.records`, ListQuery and the runtime's errors); docs/standard_crm.md describes each behaviour
for administrators. The pure helpers at the top (mnemonic, name_key, phone_key, next_birthday)
are also used by the demo generator, which fills these values itself because bulk inserts run no
hooks.
"""

from __future__ import annotations

import unicodedata

from pypinyin import Style, lazy_pinyin

from engine.plugins import HookContext, hook

# -- pure helpers -----------------------------------------------------------------------------------


def mnemonic(name: str | None, limit: int = 50) -> str | None:
    """The 助记码 of a name: pinyin initials of its Chinese characters, letters and digits kept,
    upper-case: 重庆长安汽车 -> CQCAQC, ABC科技（上海） -> ABCKJSH."""
    if not name:
        return None
    text = unicodedata.normalize("NFKC", name)
    letters = "".join(ch for part in lazy_pinyin(text, style=Style.FIRST_LETTER) for ch in part
                      if ch.isascii() and ch.isalnum())
    return letters.upper()[:limit] or None


# -- 1. customer mnemonic -------------------------------------------------------------------------------


@hook("customer", "before_save")
def fill_mnemonic(ctx: HookContext) -> None:
    """The mnemonic follows the name (it is read-only on forms, and searchable)."""
    if ctx.changed("name") or not ctx.record.get("mnemonic"):
        ctx.record["mnemonic"] = mnemonic(ctx.record.get("name"))
