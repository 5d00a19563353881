"""Field type plugins: one module per type, looked up by name.

Third-party types register through the `crm.fieldtypes` entry point group (a FieldType subclass).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from engine.fieldtypes.attachment import AttachmentType
from engine.fieldtypes.autonumber import AutonumberType
from engine.fieldtypes.base import FieldType, FieldValueError, ValueContext
from engine.fieldtypes.boolean import BooleanType
from engine.fieldtypes.choice import ChoiceType
from engine.fieldtypes.computed import ComputedType
from engine.fieldtypes.date import DateType
from engine.fieldtypes.datetime import DateTimeType
from engine.fieldtypes.decimal import DecimalType
from engine.fieldtypes.email import EmailType
from engine.fieldtypes.integer import IntegerType
from engine.fieldtypes.money import MoneyType
from engine.fieldtypes.multi_choice import MultiChoiceType
from engine.fieldtypes.percent import PercentType
from engine.fieldtypes.phone import PhoneType
from engine.fieldtypes.reference import ReferenceType
from engine.fieldtypes.rollup import RollupType
from engine.fieldtypes.stage import StageType
from engine.fieldtypes.string import StringType
from engine.fieldtypes.text import TextType
from engine.fieldtypes.url import UrlType
from engine.fieldtypes.user import UserType

__all__ = ["FieldType", "FieldValueError", "ValueContext", "all_types", "get_type"]

BUILT_IN: tuple[type[FieldType], ...] = (
    StringType, TextType, IntegerType, DecimalType, MoneyType, PercentType, BooleanType,
    DateType, DateTimeType, EmailType, PhoneType, UrlType, ChoiceType, MultiChoiceType,
    ReferenceType, UserType, StageType, AutonumberType, AttachmentType, ComputedType, RollupType,
)


@cache
def all_types() -> dict[str, FieldType]:
    types = {cls.name: cls() for cls in BUILT_IN}
    for ep in entry_points(group="crm.fieldtypes"):
        cls = ep.load()
        types.setdefault(cls.name, cls())
    return types


def get_type(name: str) -> FieldType:
    return all_types()[name]
