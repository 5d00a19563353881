"""text: multi-line text of any length; `rich: true` marks sanitized HTML."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

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
