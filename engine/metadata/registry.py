"""The compiled, immutable registry: the one description of the CRM every other layer reads."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.fieldtypes.base import FieldType

Label = Mapping[str, str]  # {"en": ..., "zh": ...}

SYSTEM_FIELDS = ("id", "created_at", "created_by", "updated_at", "updated_by", "owner", "version", "deleted_at")
ACTIONS = ("read", "create", "edit", "delete", "restore", "purge", "export", "import", "assign", "share")
SCOPES = ("none", "own", "department", "subtree", "all")


def text(label: Label | None, language: str) -> str:
    if not label:
        return ""
    return label.get(language) or label.get("en") or ""


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


class UnknownName(LookupError):
    """A name (entity, field, pick-list, role) that the registry does not define."""

    def __init__(self, kind: str, name: str, known: list[str] | None = None) -> None:
        self.kind, self.name = kind, name
        super().__init__(f"unknown {kind} '{name}'")


@dataclass(frozen=True)
class Option:
    key: str
    label: Label
    active: bool = True


@dataclass(frozen=True)
class Picklist:
    key: str
    label: Label
    options: tuple[Option, ...]

    @cached_property
    def _by_key(self) -> dict[str, Option]:
        return {o.key: o for o in self.options}

    def option(self, key: str) -> Option | None:
        return self._by_key.get(key)

    def option_by_label(self, text_: str) -> Option | None:
        return next((o for o in self.options if text_ in o.label.values()), None)


@dataclass(frozen=True)
class Stage:
    key: str
    label: Label
    probability: int | None = None
    outcome: str | None = None
    requires: tuple[str, ...] = ()
    to: tuple[str, ...] | None = None  # allowed next stages; None means any


@dataclass(frozen=True)
class Field:
    entity: str
    name: str
    type: str
    label: Label
    required: bool = False
    default: Any = None
    unique: bool = False
    index: bool = False
    read_only: bool = False
    internal: bool = False  # kept by hooks; hidden from every user (screens, API, exports)
    system: bool = False
    help: Label | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: frozen({}))  # type-specific keys
    picklist: Picklist | None = None
    stages: tuple[Stage, ...] = ()
    source: str = ""  # file that declared it
    compiled_expression: ast.expr | None = field(default=None, compare=False)

    @cached_property
    def kind(self) -> FieldType:
        # Cached: bulk paths ask millions of times. cached_property writes the instance __dict__
        # directly, which a frozen dataclass allows.
        from engine.fieldtypes import get_type

        return get_type(self.type)

    @property
    def target(self) -> str | None:
        """The referenced entity of a reference field."""
        return self.options.get("entity") if self.type == "reference" else None

    def stage(self, key: str | None) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)

    def title(self, language: str) -> str:
        return text(self.label, language)


@dataclass(frozen=True)
class Section:
    label: Label
    fields: tuple[str, ...]
    columns: int = 2


@dataclass(frozen=True)
class View:
    key: str
    label: Label
    filter: tuple[str, ...] = ()
    sort: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListLayout:
    columns: tuple[str, ...]
    sort: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    views: tuple[View, ...] = ()
    highlight: tuple[str, ...] = ()  # filters that all hold on a highlighted row


@dataclass(frozen=True)
class Action:
    """A record action: a button on the detail page (and in bulk), run by a pack's @action
    function. The user needs `permission` on the record; `when` filters say on which records
    it applies; `inputs` are fields asked before running it."""

    key: str
    label: Label
    permission: str = "edit"
    when: tuple[str, ...] = ()
    confirm: Label | None = None
    bulk: bool = False
    inputs: tuple[Field, ...] = ()
    help: Label | None = None


@dataclass(frozen=True)
class Related:
    entity: str
    via: str
    columns: tuple[str, ...] = ()
    label: Label | None = None
    highlight: tuple[str, ...] = ()  # filters that all hold on a highlighted row
    tree: str | None = None  # a self-reference of the child: its rows nest under their parent


@dataclass(frozen=True)
class Board:
    field: str
    sums: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entity:
    key: str
    label: Label
    title: str
    fields: Mapping[str, Field]  # declaration order, system fields last
    search: tuple[str, ...] = ()
    pool: str | None = None
    form: tuple[Section, ...] = ()
    detail: tuple[Section, ...] = ()
    list: ListLayout = ListLayout(columns=())
    related: tuple[Related, ...] = ()
    board: Board | None = None
    actions: tuple[Action, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    pack: str = ""
    source: str = ""

    def field(self, name: str) -> Field:
        try:
            return self.fields[name]
        except KeyError:
            raise UnknownName("field", f"{self.key}.{name}") from None

    def has(self, name: str) -> bool:
        return name in self.fields

    # Cached: the record service asks for these per row in bulk inserts. A frozen dataclass
    # still has an instance __dict__, which is where cached_property keeps the value.
    @cached_property
    def user_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields.values() if not f.system)

    @cached_property
    def _fields_by_type(self) -> dict[str, tuple[Field, ...]]:
        by_type: dict[str, list[Field]] = {}
        for f in self.fields.values():
            by_type.setdefault(f.type, []).append(f)
        return {t: tuple(fs) for t, fs in by_type.items()}

    def fields_of_type(self, *types: str) -> tuple[Field, ...]:
        if len(types) == 1:
            return self._fields_by_type.get(types[0], ())
        return tuple(f for f in self.fields.values() if f.type in types)

    def name(self, language: str) -> str:
        return text(self.label, language)

    def action(self, key: str) -> Action | None:
        return next((a for a in self.actions if a.key == key), None)


@dataclass(frozen=True)
class Role:
    key: str
    label: Label
    permissions: Mapping[str, Mapping[str, str]]  # entity or "*" -> action -> scope
    pool: Mapping[str, tuple[str, ...]]  # entity or "*" -> actions granted on pooled records
    fields: Mapping[str, str]  # "entity.field" -> hidden | read_only

    def scope(self, entity: str, action: str) -> str:
        for key in (entity, "*"):
            if key in self.permissions and action in self.permissions[key]:
                return self.permissions[key][action]
        if action in ("restore", "purge"):  # undeclared: as far as the role may delete
            return self.scope(entity, "delete")
        return "none"

    def pool_actions(self, entity: str) -> tuple[str, ...]:
        return self.pool.get(entity) or self.pool.get("*") or ()


@dataclass(frozen=True)
class MenuGroup:
    key: str
    label: Label
    entities: tuple[str, ...]


@dataclass(frozen=True)
class HomeCard:
    """A card of the home page: a list view of an entity, optionally only the user's own records."""

    entity: str
    view: str
    mine: bool = False
    label: Label | None = None
    roles: tuple[str, ...] = ()  # shown only to users with one of these roles (and admins); () = everyone

    def shown_to(self, roles: tuple[str, ...], is_admin: bool) -> bool:
        return not self.roles or is_admin or bool(set(self.roles) & set(roles))


@dataclass(frozen=True)
class Organization:
    """Where department and subtree scopes look: units form a tree through `parent`; member
    records link login users (`member_user`) to units (`member_unit`)."""

    unit: str
    parent: str
    member: str
    member_user: str
    member_unit: str


@dataclass(frozen=True)
class Setting:
    key: str
    type: str
    label: Label
    default: Any = None
    options: tuple[str, ...] = ()
    help: Label | None = None
    pack: str = ""


@dataclass(frozen=True)
class PackInfo:
    name: str
    version: str
    label: Label
    depends: tuple[str, ...]
    path: str  # folder; "" for the database customisation layer
    hooks: str | None = None  # path of hooks.py, if any


@dataclass(frozen=True)
class Registry:
    packs: tuple[PackInfo, ...]
    entities: Mapping[str, Entity]
    picklists: Mapping[str, Picklist]
    roles: Mapping[str, Role]
    menu: tuple[MenuGroup, ...]
    home: tuple[HomeCard, ...]
    organization: Organization | None
    settings: Mapping[str, Setting]
    messages: Mapping[str, Mapping[str, str]]  # language -> key -> text, from packs' locales

    def entity(self, key: str) -> Entity:
        try:
            return self.entities[key]
        except KeyError:
            raise UnknownName("entity", key) from None

    def role(self, key: str) -> Role:
        try:
            return self.roles[key]
        except KeyError:
            raise UnknownName("role", key) from None

    def referencing(self, target: str) -> tuple[Field, ...]:
        """Reference fields, in any entity, that point at `target`."""
        return tuple(f for e in self.entities.values() for f in e.fields.values() if f.target == target)

    def message(self, key: str, language: str, **params: Any) -> str:
        catalog = self.messages.get(language) or self.messages.get("en") or {}
        template = catalog.get(key) or (self.messages.get("en") or {}).get(key) or key
        try:
            return template.format(**params)
        except (KeyError, IndexError):
            return template
