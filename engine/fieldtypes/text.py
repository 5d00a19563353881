"""text: multi-line text of any length; `rich: true` holds HTML, sanitized on the way in.

Rich text goes through nh3 (the Rust ammonia sanitizer) with an allow-list of formatting tags:
scripts, event handlers, styles, iframes and javascript: links never reach the database, and the
screens clean it once more when showing it, so older or imported values are safe as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import nh3
import sqlalchemy as sa

from engine.fieldtypes.base import ValueContext
from engine.fieldtypes.textual import TextLike

if TYPE_CHECKING:
    from engine.metadata.registry import Field


class TextType(TextLike):
    name = "text"
    schema = {"rich": {"type": "boolean"}, "max_length": {"type": "integer", "minimum": 1}}
    widget = "textarea"
    default_max_length = 100_000

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.Text()

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        text = super().coerce(field, value, ctx)
        return sanitize(text) if field.options.get("rich") else text


RICH_TAGS = {"p", "br", "b", "strong", "i", "em", "u", "s", "h2", "h3", "h4", "ul", "ol", "li", "blockquote",
             "pre", "code", "a", "table", "thead", "tbody", "tr", "th", "td", "hr", "span"}


def sanitize(html: str) -> str:
    """HTML with only formatting tags, links limited to http(s)/mailto, and no attributes that run code."""
    return nh3.clean(html, tags=RICH_TAGS, attributes={"a": {"href", "title"}, "td": {"colspan", "rowspan"},
                                                       "th": {"colspan", "rowspan"}},
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")
