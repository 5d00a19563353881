"""Query building: validated filters, sorts (own fields or a referenced record's title), search,
offset and keyset pagination, capped counts, with referenced titles joined in the same statement.

Nothing here is built from user text: every field name and operator is checked against the
registry before it becomes a column or an operator, and every value is a bound parameter.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.fieldtypes.base import FieldValueError, ValueContext, escape_like
from engine.i18n import Message
from engine.metadata.filters import SHARED, USER_GROUPS, FilterSpec, FilterSyntaxError, parse_filter
from engine.metadata.registry import Entity, Field, UnknownName
from engine.runtime import search_index
from engine.runtime.errors import BadQuery

if TYPE_CHECKING:
    from engine.runtime.service import Runtime

COUNT_LIMIT = 2_000  # above this, totals are reported as "more than 2,000": counting costs per row counted
MAX_PAGE = 500


@dataclass
class ListQuery:
    filters: Sequence[str | FilterSpec] = ()
    search: str | None = None
    sort: Sequence[str] = ()  # "-field" descending; default: the list layout's sort
    limit: int = 50
    offset: int = 0
    cursor: str | None = None  # keyset: continue after the row this cursor names
    before: str | None = None  # keyset backwards: the page that ends just before this cursor's row
    trash: bool = False  # the recycle bin instead of live records
    count: bool = True
    titles: Sequence[str] | None = None  # reference/user fields whose titles to join (None: all)
    action: str = "read"  # rows must also be within this action's scope (e.g. "export")
    highlight: Sequence[str] = ()  # filters; each row gets "_highlight": whether they all hold


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int | None
    total_exact: bool
    next_cursor: str | None
    sort: tuple[str, ...] = ()
    prev_cursor: str | None = None  # set when rows exist before this page (keyset pages only)
    statements: int = field(default=0, compare=False)


def nullable(expr: sa.ColumnElement[Any]) -> bool:
    """Whether a sort expression may be NULL (a table column says so; anything else may)."""
    return not isinstance(expr, sa.Column) or bool(expr.nullable)


def bad_filter(text: str, reason: str) -> BadQuery:
    return BadQuery(Message("bad_filter", {"filter": text, "reason": reason}))


class QueryBuilder:
    def __init__(self, runtime: Runtime, entity: Entity, ctx: ValueContext, hidden: frozenset[str] = frozenset()) -> None:
        self.runtime = runtime
        self.entity = entity
        self.table = runtime.table(entity.key)
        self.ctx = ctx
        self.hidden = hidden  # fields the caller may not see: not filterable, sortable or searched
        self._aliases: dict[str, Any] = {}

    # -- fields -------------------------------------------------------------------------------
    def field(self, name: str, text: str = "") -> Field:
        try:
            if name in self.hidden:
                raise UnknownName("field", name)  # a hidden field is reported as unknown: no hint
            return self.entity.field(name)
        except UnknownName:
            raise bad_filter(text or name, f"{self.entity.key} has no field '{name}'") from None

    def title_alias(self, f: Field) -> Any:
        """An aliased target table joined for `f`'s title (reference -> title, user -> name)."""
        if f.name not in self._aliases:
            if f.type == "user":
                target, title = self.runtime.table("crm_user"), "display_name"
            else:
                assert f.target is not None
                target, title = self.runtime.table(f.target), self.runtime.registry.entity(f.target).title
            # A two-column stand-in for the target table: aliasing the real Table would build a
            # proxy of every one of its columns, which was most of the cost of reading a record.
            slim = sa.table(target.name, sa.column("id", target.c.id.type), sa.column(title, target.c[title].type),
                            schema=target.schema)
            self._aliases[f.name] = slim.alias(f"t_{f.name}")
        return self._aliases[f.name]

    def title_column(self, f: Field) -> sa.ColumnElement[Any]:
        alias = self.title_alias(f)
        if f.type == "user":
            return alias.c.display_name
        assert f.target is not None
        return alias.c[self.runtime.registry.entity(f.target).title]

    def has_title(self, f: Field) -> bool:
        return f.type in ("reference", "user") or f.name in ("owner", "created_by", "updated_by")

    # -- filters ------------------------------------------------------------------------------
    def filter_clause(self, item: str | FilterSpec) -> sa.ColumnElement[bool]:
        text = str(item)
        try:
            spec = item if isinstance(item, FilterSpec) else parse_filter(item)
        except FilterSyntaxError as exc:
            raise bad_filter(text, str(exc)) from None
        if spec.field == SHARED and not self.entity.has(SHARED):
            return self.shared_clause(spec, text)
        f = self.field(spec.field, text)
        if f.type == "user" or f.name == "owner":
            spec = self.expand_user_groups(spec)
        if spec.op not in f.kind.operators:
            raise bad_filter(text, f"'{spec.op}' does not apply to this field (use {', '.join(f.kind.operators)})")
        try:
            values = [f.kind.filter_value(f, v, self.ctx) for v in spec.values]
        except FieldValueError as exc:
            raise bad_filter(text, exc.message.text("en")) from None
        values = [f.kind.to_db(v) if f.type != "multi_choice" else v for v in values]
        return f.kind.filter_clause(self.table.c[f.name], spec.op, values)

    def shared_clause(self, spec: FilterSpec, text: str) -> sa.ColumnElement[bool]:
        """`shared eq $me`: the records shared with the current user."""
        if (spec.op, spec.values) != ("eq", ("$me",)):
            raise bad_filter(text, "use 'shared eq $me'")
        shares = self.runtime.table("crm_share")
        mine = sa.select(shares.c.record_id).where(shares.c.entity == self.entity.key,
                                                   shares.c.user_id == self.ctx.user_id)
        return self.table.c.id.in_(mine)

    def expand_user_groups(self, spec: FilterSpec) -> FilterSpec:
        """$department / $subtree in a user filter: the users of the caller's department(s) or subtree."""
        if not any(v in USER_GROUPS for v in spec.values):
            return spec
        values: list[str] = []
        for v in spec.values:
            if v in USER_GROUPS and self.ctx.user_id is not None:
                reach = self.runtime.org.reach(self.ctx.user_id)
                values += [str(u) for u in sorted(reach.department if v == "$department" else reach.subtree)]
            elif v not in USER_GROUPS:
                values.append(v)
        op = {"eq": "in", "ne": "not_in"}.get(spec.op, spec.op)
        return FilterSpec(spec.field, op, tuple(values) or ("0",))

    def search_clause(self, text: str) -> sa.ColumnElement[bool] | None:
        """Every word is a case-insensitive substring of one of the (visible) search fields.

        The LIKE conditions are the test on both databases. PostgreSQL's trigram indexes serve
        them as they are; on SQLite the words of 3+ characters first narrow the rows to the FTS5
        trigram index's candidates (search_index.py), a superset of the matches.
        """
        terms = [t for t in text.split() if t][:5]
        if not terms:
            return None
        names = [name for name in self.entity.search
                 if name not in self.hidden and "contains" in self.entity.field(name).kind.operators]
        if not names:
            return None
        columns = [self.table.c[name] for name in names]
        # On PostgreSQL the pattern is sent as a literal (escaped by the dialect, not by us): with a
        # bound parameter the server, after a few executions of the same prepared statement, plans
        # generically and walks the sort index past every row for a rare word (546 ms against 3 ms
        # for contacts at 100k) instead of asking the trigram indexes.
        postgresql = self.runtime.engine.dialect.name == "postgresql"

        def matches(c: sa.ColumnElement[Any], t: str) -> sa.ColumnElement[bool]:
            pattern = sa.bindparam(None, "%" + escape_like(t) + "%", type_=sa.String(), literal_execute=postgresql)
            if postgresql and len(t) < search_index.MIN_TERM:
                # No trigram in the word: the index would return every row to be rechecked (slower
                # than a scan, yet the planner picks it); `col || ''` keeps it out of the plan.
                c = c.op("||", return_type=sa.String())(sa.literal_column("''"))
            return c.ilike(pattern, escape="\\")

        clause = sa.and_(*[sa.or_(*[matches(c, t) for c in columns]) for t in terms])
        long_terms = [t for t in terms if len(t) >= search_index.MIN_TERM]
        if long_terms and set(names) <= set(search_index.fts_columns(self.runtime.engine, self.table.name)):
            candidates = search_index.fts_candidates(self.runtime.engine, self.table.name, names, long_terms)
            if candidates is not None:
                clause = sa.and_(self.table.c.id.in_(candidates), clause)
        return clause

    # -- sorting ------------------------------------------------------------------------------
    def sort_keys(self, sort: Sequence[str]) -> list[tuple[str, sa.ColumnElement[Any], bool]]:
        """(name, expression, descending) for each sort key, with id appended as the tie-breaker."""
        keys: list[tuple[str, sa.ColumnElement[Any], bool]] = []
        for key in sort:
            desc = key.startswith("-")
            name = key.lstrip("-")
            if name == "id":
                break
            try:
                if name in self.hidden:
                    raise UnknownName("field", name)
                f = self.entity.field(name)
            except UnknownName:
                raise BadQuery(Message("bad_sort", {"field": name})) from None
            if not f.kind.sortable:
                raise BadQuery(Message("bad_sort", {"field": name}))
            expr = self.title_column(f) if self.has_title(f) else self.table.c[name]
            keys.append((name, expr, desc))
        # The tie-breaker runs the same way as the first key, so an index on (key, id) serves the
        # whole ORDER BY scanned in one direction.
        explicit = [k for k in sort if k.lstrip("-") == "id"]
        id_desc = explicit[0].startswith("-") if explicit else (keys[0][2] if keys else False)
        keys.append(("id", self.table.c.id, id_desc))
        return keys

    @staticmethod
    def order_by(keys: list[tuple[str, sa.ColumnElement[Any], bool]], reverse: bool = False) -> list[Any]:
        # NULLs last in both directions, on every database, so keyset conditions stay simple;
        # `reverse` is the exact mirror (used to read the page before a cursor). Columns that
        # cannot be NULL get no NULLS clause, which lets PostgreSQL walk their index backwards.
        out = []
        for _, e, d in keys:
            ordered = (e.asc() if d else e.desc()) if reverse else (e.desc() if d else e.asc())
            if nullable(e):
                ordered = ordered.nulls_first() if reverse else ordered.nulls_last()
            out.append(ordered)
        return out

    @staticmethod
    def before(keys: list[tuple[str, sa.ColumnElement[Any], bool]], values: list[Any]) -> sa.ColumnElement[bool]:
        """Rows strictly before `values` in the order `keys` define (NULLs sort last)."""
        ors = []
        for i, (_, expr, desc) in enumerate(keys):
            eqs = [e.is_(None) if v is None else e == v for (_, e, _), v in zip(keys[:i], values[:i], strict=True)]
            value = values[i]
            earlier = expr.is_not(None) if value is None else ((expr > value) if desc else (expr < value))
            ors.append(sa.and_(*eqs, earlier))
        return sa.or_(*ors)

    @staticmethod
    def after(keys: list[tuple[str, sa.ColumnElement[Any], bool]], values: list[Any]) -> sa.ColumnElement[bool]:
        """Rows strictly after `values` in the order `keys` define (NULLs sort last)."""
        ors = []
        for i, (_, expr, desc) in enumerate(keys):
            eqs = [e.is_(None) if v is None else e == v for (_, e, _), v in zip(keys[:i], values[:i], strict=True)]
            value = values[i]
            if value is None:
                continue  # nothing sorts after NULL within this key
            beyond = (expr < value) if desc else (expr > value)
            if i < len(keys) - 1 and nullable(expr):
                beyond = sa.or_(beyond, expr.is_(None))
            ors.append(sa.and_(*eqs, beyond))
        return sa.or_(*ors) if ors else sa.false()

    # -- cursors ------------------------------------------------------------------------------
    @staticmethod
    def encode_cursor(values: list[Any]) -> str:
        def plain(v: Any) -> Any:
            if isinstance(v, Decimal | date | datetime):
                return {"t": type(v).__name__, "v": str(v) if isinstance(v, Decimal) else v.isoformat()}
            return v

        raw = json.dumps([plain(v) for v in values], ensure_ascii=False, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode_cursor(cursor: str, keys: list[tuple[str, sa.ColumnElement[Any], bool]]) -> list[Any]:
        """The sort values a cursor names, each checked against its key's column type."""
        def typed(v: Any) -> Any:
            if isinstance(v, dict):
                kind, text = v.get("t"), str(v.get("v"))
                if kind == "Decimal":
                    return Decimal(text)
                if kind == "date":
                    return date.fromisoformat(text)
                if kind == "datetime":
                    return datetime.fromisoformat(text)
                raise ValueError(kind)
            if v is not None and not isinstance(v, str | int | float | bool):
                raise ValueError(v)
            if isinstance(v, str) and "\x00" in v:
                raise ValueError(v)
            return v

        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            values = [typed(v) for v in json.loads(raw)]
        except (ValueError, TypeError, UnicodeDecodeError):
            raise BadQuery(Message("bad_cursor")) from None
        if len(values) != len(keys):
            raise BadQuery(Message("bad_cursor"))
        for value, (_, expr, _) in zip(values, keys, strict=True):
            try:
                expected = expr.type.python_type
            except NotImplementedError:  # pragma: no cover - every column type we build has one
                continue
            if value is None:
                continue
            if isinstance(value, bool) and expected is not bool:
                raise BadQuery(Message("bad_cursor"))
            if not isinstance(value, expected):
                raise BadQuery(Message("bad_cursor"))
            # Values no row can hold would make the database fail rather than find nothing.
            bits = 31 if type(expr.type) is sa.Integer else 63
            if isinstance(value, int) and not isinstance(value, bool) and not -(2**bits) <= value < 2**bits:
                raise BadQuery(Message("bad_cursor"))
            if isinstance(value, Decimal) and (not value.is_finite() or abs(value.adjusted()) > 100):
                raise BadQuery(Message("bad_cursor"))
        return values

    def highlight_column(self, filters: Sequence[str]) -> sa.ColumnElement[Any]:
        """1 when every filter holds on the row, else 0. Filters on fields hidden from the user
        highlight nothing, so the marker cannot reveal a value the user may not read."""
        try:
            clauses = [self.filter_clause(f) for f in filters]
        except BadQuery:
            return sa.literal(0)
        if not clauses:  # no condition: holds on every row
            return sa.literal(1)
        return sa.case((sa.and_(*clauses), 1), else_=0)

    # -- the statement ------------------------------------------------------------------------
    def title_fields(self, titles: Sequence[str] | None) -> list[Field]:
        return [f for f in self.entity.fields.values()
                if self.has_title(f) and f.name not in self.hidden and (titles is None or f.name in titles)]

    def from_clause(self, only: Sequence[str] | None = None) -> Any:
        """The entity table with every alias registered so far (or only those named) outer-joined."""
        joined: Any = self.table
        for name, alias in self._aliases.items():
            if only is None or name in only:
                joined = joined.outerjoin(alias, alias.c.id == self.table.c[name])
        return joined

    def joined(self) -> tuple[str, ...]:
        """The aliases registered so far: a count needs only those its conditions use."""
        return tuple(self._aliases)
