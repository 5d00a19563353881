"""stage: a pipeline of ordered stages with probability, outcome, required fields and transitions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import (
    CheckContext,
    FieldType,
    FieldValueError,
    ValueContext,
    label_text,
)
from engine.i18n import Message

if TYPE_CHECKING:
    from engine.metadata.registry import Field

LABEL = {"$ref": "#/$defs/label"}
STAGE_SCHEMA = {
    "type": "object",
    "required": ["key", "label"],
    "additionalProperties": False,
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "label": LABEL,
        "probability": {"type": "integer", "minimum": 0, "maximum": 100},
        "outcome": {"enum": ["won", "lost"]},
        "requires": {"type": "array", "items": {"type": "string"}},
        "to": {"type": "array", "items": {"type": "string"}},
        "after": {"type": "string"},
    },
}


class StageType(FieldType):
    name = "stage"
    schema = {"stages": {"type": "array", "minItems": 1, "items": STAGE_SCHEMA}}
    required_keys = ("stages",)
    widget = "select"

    def cross_check(self, name: str, spec: Mapping[str, Any], ctx: CheckContext) -> Iterator[tuple[str, str]]:
        stages = spec.get("stages") or []
        keys = [s.get("key") for s in stages if isinstance(s, dict)]
        seen: set[str] = set()
        for i, stage in enumerate(stages):
            if not isinstance(stage, dict):
                continue
            if stage.get("key") in seen:
                yield f"stages[{i}].key", f"duplicate stage '{stage.get('key')}'"
            seen.add(stage.get("key", ""))
            for j, required in enumerate(stage.get("requires") or []):
                if required not in ctx.field_names:
                    yield f"stages[{i}].requires[{j}]", f"unknown field '{required}'"
            for j, target in enumerate(stage.get("to") or []):
                if target not in keys:
                    yield f"stages[{i}].to[{j}]", f"unknown stage '{target}'"

    def column_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String(64)

    def coerce(self, field: Field, value: Any, ctx: ValueContext) -> Any:
        key = str(value).strip()
        if field.stage(key) is None:
            match = next((s for s in field.stages if key in (s.label.get("en"), s.label.get("zh"))), None)
            if match is None:
                raise FieldValueError("not_a_stage", value=key)
            key = match.key
        return key

    def format(self, field: Field, value: Any, language: str) -> str:
        stage = field.stage(value) if value else None
        return label_text(stage.label, language) if stage else ("" if value is None else str(value))

    def check_record(self, field: Field, old: Any, new: Any, record: Mapping[str, Any],
                     is_empty: Any) -> Iterator[tuple[str, Message]]:
        """Pipeline rules on a change of stage: allowed transition, and fields the stage requires."""
        if new is None or new == old:
            return
        previous = field.stage(old) if old else None
        if previous is not None and previous.to is not None and new not in previous.to:
            labels = {s.key: dict(s.label) for s in field.stages}
            yield field.name, Message("stage_transition", {"old": labels.get(old, old), "new": labels.get(new, new)})
        stage = field.stage(new)
        if stage is None:
            return
        for required in stage.requires:
            if is_empty(required, record.get(required)):
                yield required, Message("stage_requires", {"stage": dict(stage.label)})
