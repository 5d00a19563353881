"""string: a single line of text, `max_length` characters (default 255)."""

from engine.fieldtypes.textual import TextLike


class StringType(TextLike):
    name = "string"
    schema = {"max_length": {"type": "integer", "minimum": 1, "maximum": 4000}}
