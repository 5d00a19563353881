"""Values as HTML: display by field type (links for references, e-mail, phone and web
addresses) and the string a form widget starts from. Every piece of text is escaped here."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from engine.fieldtypes.text import sanitize
from engine.metadata.registry import Field, text

TEMPLATES = Path(__file__).parent / "templates"


def display(field: Field, record: dict[str, Any], language: str, link: bool = True) -> Markup:
    """The value of `field` in `record` for reading, as safe HTML."""
    value = record.get(field.name)
    if value is None or value == "" or value == []:
        return Markup("")
    if field.type in ("reference", "user") or field.name in ("owner", "created_by", "updated_by"):
        title = (record.get("_titles") or {}).get(field.name)
        shown = escape(title if title not in (None, "") else f"#{value}")
        if field.type == "reference" and link:
            return Markup(f'<a href="/app/{field.target}/{int(value)}">{shown}</a>')
        return shown
    if field.system and isinstance(value, datetime):
        from engine.fieldtypes import get_type

        return escape(get_type("datetime").format(field, value, language))
    if field.system:
        return escape(str(value))
    shown = escape(field.kind.format(field, value, language))
    if not link:
        return shown
    if field.type == "email":
        return Markup(f'<a href="mailto:{escape(value)}">{shown}</a>')
    if field.type == "phone":
        return Markup(f'<a href="tel:{escape(value)}">{shown}</a>')
    if field.type == "url":
        return Markup(f'<a href="{escape(value)}" rel="noopener noreferrer" target="_blank">{shown}</a>')
    if field.type == "attachment" and record.get("id"):
        url = f"/app/{field.entity}/{int(record['id'])}/files/{field.name}"
        return Markup(f'<a href="{url}" download>{shown}</a>')
    if field.type == "text" and field.options.get("rich"):
        return Markup(sanitize(str(value)))  # cleaned on the way in; again here for older data
    if field.type == "text":
        return Markup("<br>").join(escape(line) for line in str(value).splitlines())
    if field.type == "boolean":
        return Markup(f'<span class="bool bool-{"yes" if value else "no"}">{shown}</span>')
    if field.type in ("choice", "stage"):
        return Markup(f'<span class="tag tag-{escape(field.name)}-{escape(value)}">{shown}</span>')
    return shown


def input_value(field: Field, value: Any) -> str:
    """The text a form widget shows for a stored value."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("name", ""))
    return str(value)


def label(value: Any, language: str) -> str:
    """A metadata label ({en, zh}) in `language` (filter for templates)."""
    return text(value, language) if isinstance(value, dict) or hasattr(value, "get") else str(value or "")


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(display=display, input_value=input_value)
    env.filters["label"] = label
    return env
