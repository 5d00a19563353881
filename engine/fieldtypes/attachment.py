"""attachment: a stored file, described by {name, size, content_type, sha256}; `max_size` bytes.

The bytes live in the runtime's file store (content-addressed); the column keeps the description.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import FieldType, FieldValueError, ValueContext

if TYPE_CHECKING:
    from engine.metadata.registry import Field

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
SHA256 = re.compile(r"[0-9a-f]{64}")


class AttachmentType(FieldType):
    name = "attachment"
    schema = {"max_size": {"type": "integer", "minimum": 1}}
    widget = "file"
    operators = ("is_empty", "is_not_empty")
    sortable = False

    def max_size(self, field: Field) -> int:
        return int(field.options.get("max_size", DEFAULT_MAX_SIZE))

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String(1000)

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise FieldValueError("bad_attachment") from None
        if not isinstance(value, dict) or not SHA256.fullmatch(str(value.get("sha256", ""))):
            raise FieldValueError("bad_attachment")
        size = value.get("size")
        if not isinstance(size, int) or size < 0:
            raise FieldValueError("bad_attachment")
        if size > self.max_size(field):
            raise FieldValueError("file_too_large", max=f"{self.max_size(field) // 1024} KiB")
        name = str(value.get("name") or "file")[:200].replace("/", "_").replace("\\", "_")
        content_type = str(value.get("content_type") or "application/octet-stream")[:100]
        return {"name": name, "size": size, "content_type": content_type, "sha256": value["sha256"]}

    def to_db(self, value: Any) -> Any:
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None

    def from_db(self, value: Any) -> Any:
        return json.loads(value) if value else None

    def format(self, field: Field, value: Any, language: str) -> str:
        return value["name"] if value else ""
