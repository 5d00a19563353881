"""UI strings in every language, read from `locales/<language>.yaml` (flat `key: text` maps).

Labels of entities, fields and options come from metadata; this catalog holds only the screens'
own words (buttons, headings, messages). A missing key falls back to English, then to the key.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from engine.i18n import LANGUAGES

LOCALES = Path(__file__).parent / "locales"


@cache
def catalog(language: str) -> dict[str, str]:
    path = LOCALES / f"{language}.yaml"
    if not path.is_file():
        return {}
    return {str(k): str(v) for k, v in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items()}


def ui_text(key: str, language: str, **params: Any) -> str:
    template = catalog(language).get(key) or catalog("en").get(key) or key
    if not params:
        return template
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


def pick_language(header: str | None, default: str) -> str:
    """The first supported language of an Accept-Language header, else `default`."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag[:2] in LANGUAGES:
            return tag[:2]
    return default
