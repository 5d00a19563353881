"""decimal: an exact decimal number with `precision` digits, `scale` of them after the point."""

from engine.fieldtypes.numeric import NumberLike


class DecimalType(NumberLike):
    name = "decimal"
    schema = {
        **NumberLike.schema,
        "precision": {"type": "integer", "minimum": 1, "maximum": 38},
        "scale": {"type": "integer", "minimum": 0, "maximum": 18},
    }
