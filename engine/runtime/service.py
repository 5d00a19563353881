"""The runtime and its record service: the only code path that writes records.

Every write runs in one transaction: coerce -> defaults -> hooks -> validate -> derive
(autonumber, computed) -> save -> history -> rollups of parents -> after-hooks. Any error rolls
all of it back, hooks' own writes included.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from engine.fieldtypes.autonumber import render
from engine.fieldtypes.base import FieldValueError, ValueContext
from engine.i18n import Message
from engine.metadata.filters import parse_filter
from engine.metadata.registry import ACTIONS, Action, Entity, Field, Registry, UnknownName
from engine.runtime import audit, migrate
from engine.runtime import query as query_module
from engine.runtime.access import SHARE_LEVELS, Access, Decision
from engine.runtime.actor import SYSTEM, Actor
from engine.runtime.errors import BadQuery, Conflict, Forbidden, NotFound, ValidationFailed
from engine.runtime.hooks import CREATE_EVENTS, ActionContext, HookContext, HookRegistry, JobContext
from engine.runtime.organization import OrgChart
from engine.runtime.query import MAX_PAGE, ListQuery, Page, QueryBuilder
from engine.runtime.tables import build_metadata

Errors = dict[str, list[Message]]

ROLLUP_BATCH = 2000  # parents recomputed per statement
BULK_CHUNK = 1000  # rows per INSERT round trip in create_many
IN_CHUNK = 5000  # values per IN (...) list


class Runtime:
    """One registry wired to one database: tables, hooks, access rules and the clock."""

    def __init__(self, registry: Registry, engine: Engine, *, timezone: str = "Asia/Shanghai",
                 files_dir: str = "files", hooks: HookRegistry | None = None) -> None:
        self.registry = registry
        self.engine = engine
        # The customisation layer's revision the registry was built with ((0, 0): none), so that
        # the web application can tell when another process changed the layer.
        self.layer_revision: tuple[int, int] = (0, 0)
        self.timezone = timezone
        self.files_dir = files_dir
        self.metadata = build_metadata(registry)
        self.hooks = hooks if hooks is not None else HookRegistry.load(registry.packs)
        self.org = OrgChart(self)
        self.access = Access(registry, self.org, self.metadata.tables["crm_share"])
        # child entity -> rollup fields (in parents) that aggregate it
        self.rollups: dict[str, list[Field]] = defaultdict(list)
        for entity in registry.entities.values():
            for f in entity.fields_of_type("rollup"):
                self.rollups[f.options["entity"]].append(f)

    def table(self, name: str) -> sa.Table:
        return self.metadata.tables[name]

    def now(self) -> datetime:
        return datetime.now(ZoneInfo(self.timezone)).replace(tzinfo=None, microsecond=0)

    def records(self, actor: Actor = SYSTEM, conn: Connection | None = None) -> RecordService:
        return RecordService(self, actor, conn)

    # -- settings -------------------------------------------------------------------------------
    def setting(self, key: str) -> Any:
        """A pack-declared setting: the administrator's value, else the pack's default."""
        spec = self.registry.settings.get(key)
        if spec is None:
            raise KeyError(f"no setting '{key}' (declared: {', '.join(self.registry.settings)})")
        table = self.table("crm_setting")
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(table.c.value).where(table.c.key == key)).scalar()
        return json.loads(stored) if stored is not None else spec.default

    def set_setting(self, key: str, value: Any, by: Actor = SYSTEM) -> Any:
        """Store a setting's value after checking it against its declared type; returns it."""
        spec = self.registry.settings.get(key)
        if spec is None:
            raise ValidationFailed({key: [Message("unknown_field", {"entity": "settings", "value": key})]})
        value = setting_value(spec.type, spec.options, value, key)
        table = self.table("crm_setting")
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.key == key))
            conn.execute(sa.insert(table).values(key=key, value=json.dumps(value), updated_by=by.user_id,
                                                 updated_at=self.now()))
        return value

    def migration_plan(self) -> migrate.MigrationPlan:
        return migrate.plan(self.engine, self.metadata)

    def migrate(self) -> migrate.MigrationPlan:
        plan = self.migration_plan()
        migrate.apply(self.engine, plan)
        if self.engine.dialect.name == "sqlite":
            # SQLite plans well only with statistics; `optimize` gathers them where they are
            # missing or stale, cheaply (PostgreSQL's autovacuum does this by itself).
            with self.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA optimize")
        return plan


def setting_value(kind: str, options: Sequence[str], value: Any, key: str) -> Any:
    """`value` as the setting's type (integer, decimal, boolean, string, choice), or ValidationFailed."""
    try:
        if kind == "integer" and not isinstance(value, bool):
            return int(str(value).strip())
        if kind == "decimal":
            return str(Decimal(str(value).strip()))
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            text_ = str(value).strip().lower()
            if text_ in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return text_ in ("1", "true", "yes", "on")
        if kind == "string":
            return str(value)
        if kind == "choice" and str(value) in options:
            return str(value)
    except (ValueError, ArithmeticError):
        pass
    raise ValidationFailed({key: [Message("rejected", {"message": {
        "en": f"'{value}' is not a valid {kind}" + (f" ({', '.join(options)})" if options else "") + ".",
        "zh": f"“{value}”不是有效的值" + (f"（{', '.join(options)}）" if options else "") + "。"}})]})


class RecordService:
    """Create, read, update, delete, restore, purge and query records of any entity, as `actor`."""

    def __init__(self, runtime: Runtime, actor: Actor, conn: Connection | None = None) -> None:
        self.runtime = runtime
        self.registry = runtime.registry
        self.actor = actor
        self.conn = conn
        self._rules: dict[str, dict[str, str]] = {}
        self._memo: dict[str, Any] = {}  # per-entity facts derived from the registry and the actor

    # -- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """The caller's transaction if one is open, else a new one committed at the end."""
        if self.conn is not None:
            yield self.conn
            return
        with self.runtime.engine.begin() as conn:
            self.conn = conn
            try:
                yield conn
            finally:
                self.conn = None

    def entity(self, key: str) -> Entity:
        try:
            return self.registry.entity(key)
        except UnknownName:
            raise NotFound(Message("unknown_entity", {"entity": key})) from None

    def value_context(self) -> ValueContext:
        return ValueContext(user_id=self.actor.user_id, now=self.runtime.now(), timezone=self.runtime.timezone)

    def _hook_service(self, conn: Connection) -> RecordService:
        trusted = Actor(self.actor.user_id, self.actor.username, self.actor.roles, True, self.actor.language)
        return RecordService(self.runtime, trusted, conn)

    def _not_found(self, entity: Entity, record_id: Any) -> NotFound:
        return NotFound(Message("not_found", {"entity": entity.label.get("en", entity.key), "id": record_id}))

    def _share_level(self, entity: Entity, record_id: Any) -> str | None:
        """The actor's share on a record ("read", "edit" or None)."""
        if self.actor.user_id is None or record_id is None:
            return None
        shares = self.runtime.table("crm_share")
        stmt = sa.select(shares.c.access).where(shares.c.entity == entity.key, shares.c.record_id == int(record_id),
                                                shares.c.user_id == self.actor.user_id)
        if self.conn is not None:
            return self.conn.execute(stmt).scalar()
        with self.runtime.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def allows(self, entity_key: str, action: str, record: Mapping[str, Any] | None = None) -> bool:
        """Whether this service's actor may do `action` on `record` (or on the entity, without one)
        by their roles: scope, shares and pool. Never raises for a refusal."""
        return self._allows(self.entity(entity_key), action, record)

    def _allows(self, entity: Entity, action: str, record: Mapping[str, Any] | None) -> bool:
        share = (lambda: self._share_level(entity, record.get("id"))) if record is not None else None
        return self.runtime.access.allows(self.actor, entity, action, record, share)

    def _check(self, entity: Entity, action: str, record: dict[str, Any] | None) -> None:
        if not self._allows(entity, action, record):
            if record is not None and record.get("id") is not None and not self._allows(entity, "read", record):
                raise self._not_found(entity, record.get("id"))  # do not reveal that it exists
            raise Forbidden(Message("rejected", {"message": {
                "en": f"You may not {action} this {entity.label['en']}.",
                "zh": f"您无权对此{entity.label['zh']}执行该操作。"}}))

    def field_rules(self, entity: Entity) -> dict[str, str]:
        """Fields of `entity` the actor may not see ("hidden") or change ("read_only")."""
        if entity.key not in self._rules:
            self._rules[entity.key] = self.runtime.access.field_rules(self.actor, entity)
        return self._rules[entity.key]

    def hidden(self, entity: Entity) -> frozenset[str]:
        return frozenset(n for n, rule in self.field_rules(entity).items() if rule == "hidden")

    def _outward(self, entity: Entity, record: dict[str, Any]) -> dict[str, Any]:
        """A record as the actor may see it: hidden fields (and their titles) removed."""
        hidden = self.hidden(entity)
        if not hidden:
            return record
        out = {k: v for k, v in record.items() if k not in hidden}
        if "_titles" in out:
            out["_titles"] = {k: v for k, v in out["_titles"].items() if k not in hidden}
        return out

    # -- reading --------------------------------------------------------------------------------
    def _decode(self, entity: Entity, row: Mapping[str, Any] | sa.RowMapping) -> dict[str, Any]:
        record: dict[str, Any] = {}
        titles: dict[str, Any] = {}
        for key, value in row.items():
            if key.endswith("__title"):
                titles[key[:-7]] = value
            elif key in entity.fields:
                f = entity.fields[key]
                record[key] = f.kind.from_db(value) if not f.system else value
            elif key == "_highlight":
                record[key] = bool(value)
        if titles:
            record["_titles"] = titles
        return record

    def _fetch(self, conn: Connection, entity: Entity, record_id: int, lock: bool = False) -> dict[str, Any] | None:
        table = self.runtime.table(entity.key)
        stmt = sa.select(table).where(table.c.id == record_id)
        if lock and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        return self._decode(entity, row) if row else None

    def get(self, entity_key: str, record_id: Any, *, include_deleted: bool = False) -> dict[str, Any]:
        """One record with referenced titles; NotFound when missing, deleted or not visible."""
        entity = self.entity(entity_key)
        record_id = self._id(entity, record_id)
        qb = QueryBuilder(self.runtime, entity, self.value_context(), self.hidden(entity))
        table = qb.table
        columns = list(table.c) + [qb.title_column(f).label(f"{f.name}__title") for f in qb.title_fields(None)]
        where = [table.c.id == record_id]
        if not include_deleted:
            where.append(table.c.deleted_at.is_(None))
        scope = self.runtime.access.clause(self.actor, entity, table)
        if scope is not None:
            where.append(scope)
        with self.transaction() as conn:
            row = conn.execute(sa.select(*columns).select_from(qb.from_clause()).where(*where)).mappings().first()
        if row is None:
            raise self._not_found(entity, record_id)
        return self._outward(entity, self._decode(entity, row))

    def _id(self, entity: Entity, record_id: Any) -> int:
        try:
            value = int(str(record_id))
        except ValueError:
            raise self._not_found(entity, record_id) from None
        if value <= 0 or value >= 2**63:
            raise self._not_found(entity, record_id)
        return value

    def ids(self, entity_key: str, filters: Sequence[str] = (), limit: int | None = None) -> list[int]:
        """Ids of every live record matching `filters` (oldest first), read page by page."""
        found: list[int] = []
        cursor = None
        while limit is None or len(found) < limit:
            page = self.query(entity_key, ListQuery(filters=list(filters), sort=["id"], limit=MAX_PAGE, cursor=cursor,
                                                    count=False, titles=()))
            found += [int(row["id"]) for row in page.rows]
            cursor = page.next_cursor
            if cursor is None:
                break
        return found if limit is None else found[:limit]

    def query(self, entity_key: str, q: ListQuery | None = None) -> Page:
        """A page of records: filters, search, sort, offset or keyset, scope applied in SQL."""
        q = q or ListQuery()
        entity = self.entity(entity_key)
        qb = QueryBuilder(self.runtime, entity, self.value_context(), self.hidden(entity))
        table = qb.table
        where = self._where(entity, qb, q)
        counted_joins = qb.joined()  # the count joins only what its conditions use, not the titles
        sort = tuple(q.sort) or entity.list.sort
        keys = qb.sort_keys(sort)
        limit = max(1, min(int(q.limit), MAX_PAGE))
        titles = qb.title_fields(q.titles)
        columns = list(table.c) + [qb.title_column(f).label(f"{f.name}__title") for f in titles]
        columns += [expr.label(f"_k{i}") for i, (_, expr, _) in enumerate(keys)]
        if q.highlight:
            columns.append(qb.highlight_column(q.highlight).label("_highlight"))
        page_where = list(where)
        backwards = bool(q.before) and not q.cursor
        if q.cursor:
            page_where.append(qb.after(keys, qb.decode_cursor(q.cursor, keys)))
        elif q.before:
            page_where.append(qb.before(keys, qb.decode_cursor(q.before, keys)))
        stmt = (sa.select(*columns).select_from(qb.from_clause()).where(*page_where)
                .order_by(*qb.order_by(keys, reverse=backwards)).limit(limit + 1))
        if q.offset and not (q.cursor or q.before):
            stmt = stmt.offset(max(0, int(q.offset)))
        with self.transaction() as conn:
            rows = conn.execute(stmt).mappings().all()
            total, exact = None, False
            if q.count:
                total = conn.execute(self._capped_count(qb, where, counted_joins)).scalar_one()
                exact = total <= query_module.COUNT_LIMIT
                total = min(total, query_module.COUNT_LIMIT)
        more = len(rows) > limit
        rows = list(rows[:limit])
        if backwards:
            rows.reverse()

        def cursor_of(row: sa.RowMapping) -> str:
            return qb.encode_cursor([row[f"_k{i}"] for i in range(len(keys))])

        # Going forwards there is a next page when a row beyond the limit came back, and a
        # previous one whenever we started past the first row; backwards, the other way round.
        has_next = True if backwards else more
        has_prev = more if backwards else bool(q.cursor or q.offset)
        next_cursor = cursor_of(rows[-1]) if has_next and rows else None
        prev_cursor = cursor_of(rows[0]) if has_prev and rows else None
        decoded = [self._outward(entity, self._decode(entity, {k: v for k, v in r.items() if not k.startswith("_k")}))
                   for r in rows]
        return Page(decoded, total, exact, next_cursor, tuple(sort), prev_cursor)

    def _where(self, entity: Entity, qb: QueryBuilder, q: ListQuery) -> list[Any]:
        """The conditions of a query: live or binned rows, the caller's scope, filters, search."""
        table = qb.table
        where: list[Any] = [table.c.deleted_at.is_not(None) if q.trash else table.c.deleted_at.is_(None)]
        scope = self.runtime.access.clause(self.actor, entity, table)
        if scope is not None:
            where.append(scope)
        if q.action != "read":  # e.g. an export: only rows that the export scope covers too
            also = self.runtime.access.clause(self.actor, entity, table, q.action)
            if also is not None:
                where.append(also)
        where += [qb.filter_clause(f) for f in q.filters]
        if q.search and q.search.strip():
            # An entity without searchable text fields matches no search (rather than everything).
            clause = qb.search_clause(q.search)
            where.append(clause if clause is not None else sa.false())
        return where

    @staticmethod
    def _capped_count(qb: QueryBuilder, where: list[Any], joins: Sequence[str]) -> sa.Select[Any]:
        """count(*) of the rows `where` selects, reading at most COUNT_LIMIT + 1 of them (joining
        only the title tables the conditions use)."""
        ids = (sa.select(qb.table.c.id).select_from(qb.from_clause(joins)).where(*where)
               .limit(query_module.COUNT_LIMIT + 1).subquery())
        return sa.select(sa.func.count()).select_from(ids)

    def counts(self, queries: Sequence[tuple[str, ListQuery]]) -> list[tuple[int, bool]]:
        """(count, exact) of the records each (entity, query) selects, as `query` would count them
        (scope, filters, capped at COUNT_LIMIT), all in one statement: the detail page's tabs."""
        if not queries:
            return []
        cap = query_module.COUNT_LIMIT
        counted = []
        for entity_key, q in queries:
            entity = self.entity(entity_key)
            qb = QueryBuilder(self.runtime, entity, self.value_context(), self.hidden(entity))
            where = self._where(entity, qb, q)
            counted.append(self._capped_count(qb, where, qb.joined()).scalar_subquery())
        with self.transaction() as conn:
            row = conn.execute(sa.select(*counted)).one()
        return [(min(int(n), cap), int(n) <= cap) for n in row]

    def which_hold(self, entity_key: str, record_id: Any, conditions: Sequence[Sequence[str]]) -> list[bool]:
        """For each list of filters, whether all of them hold on the record (False when the actor
        cannot read it), in one statement: which of a record's actions apply now."""
        if not conditions:
            return []
        entity = self.entity(entity_key)
        qb = QueryBuilder(self.runtime, entity, self.value_context(), self.hidden(entity))
        columns = [qb.highlight_column(filters).label(f"c{i}") for i, filters in enumerate(conditions)]
        where = self._where(entity, qb, ListQuery()) + [qb.table.c.id == self._id(entity, record_id)]
        with self.transaction() as conn:
            row = conn.execute(sa.select(*columns).select_from(qb.from_clause(qb.joined())).where(*where)).first()
        return [bool(v) for v in row] if row is not None else [False] * len(conditions)

    def summarize(self, entity_key: str, q: ListQuery | None, group_by: str,
                  sums: Sequence[str] = ()) -> dict[Any, dict[str, Any]]:
        """Count and sum the records a query selects, grouped by one field: {value: {count, sums}}.

        The same scope and filters as `query`, computed in one GROUP BY statement (kanban columns,
        report tiles), so totals never include records the caller cannot read.
        """
        q = q or ListQuery()
        entity = self.entity(entity_key)
        qb = QueryBuilder(self.runtime, entity, self.value_context(), self.hidden(entity))
        group = qb.table.c[qb.field(group_by).name]
        summed = []
        for name in sums:
            f = qb.field(name)
            if f.type not in ("integer", "decimal", "money", "percent", "rollup", "computed"):
                raise BadQuery(Message("bad_sum", {"field": name}))
            summed.append(f)
        columns = [group.label("g"), sa.func.count().label("n")]
        columns += [sa.func.sum(qb.table.c[f.name]).label(f"s_{i}") for i, f in enumerate(summed)]
        stmt = sa.select(*columns).where(*self._where(entity, qb, q)).group_by(group)
        with self.transaction() as conn:
            rows = conn.execute(stmt).mappings().all()
        return {row["g"]: {"count": int(row["n"]),
                           "sums": {f.name: f.kind.from_db(row[f"s_{i}"]) for i, f in enumerate(summed)}}
                for row in rows}

    def history(self, entity_key: str, record_id: Any) -> list[dict[str, Any]]:
        entity = self.entity(entity_key)
        self.get(entity_key, record_id, include_deleted=True)  # visibility check
        history, users = self.runtime.table("crm_history"), self.runtime.table("crm_user")
        stmt = (sa.select(history, users.c.display_name.label("user_name"))
                .select_from(history.outerjoin(users, users.c.id == history.c.user_id))
                .where(history.c.entity == entity.key, history.c.record_id == int(record_id))
                .order_by(history.c.id.desc()))
        hidden = self.hidden(entity)
        with self.transaction() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings() if r["field"] not in hidden]

    # -- values ---------------------------------------------------------------------------------
    def _settable(self, entity: Entity) -> dict[str, Field]:
        """The fields of `entity` this actor may set: the fast path of _coerce."""
        key = "settable:" + entity.key
        if key not in self._memo:
            rules = self.field_rules(entity)
            self._memo[key] = {
                name: f for name, f in entity.fields.items()
                if rules.get(name) not in ("hidden", "read_only")
                and (name == "owner" or (not f.system and not f.kind.derived and (not f.read_only or self.actor.is_system)))}
        return self._memo[key]  # type: ignore[no-any-return]

    def _coerce(self, entity: Entity, data: Mapping[str, Any], errors: Errors, creating: bool,
                ctx: ValueContext | None = None) -> dict[str, Any]:
        ctx = ctx or self.value_context()
        settable = self._settable(entity)
        values: dict[str, Any] = {}
        for name, raw in data.items():
            f = settable.get(name)
            if f is None:
                if name.startswith("_"):
                    continue  # decorations such as _titles from a previous read
                if name not in entity.fields or self.field_rules(entity).get(name) == "hidden":
                    # a hidden field is as if it did not exist: no hint that it does
                    errors.setdefault(name, []).append(Message("unknown_field", {"entity": entity.key, "value": name}))
                else:
                    errors.setdefault(name, []).append(Message("read_only"))
                continue
            if raw is None or raw == "" or raw == []:
                values[name] = None
                continue
            try:
                values[name] = f.kind.coerce(f, raw, ctx)
            except FieldValueError as exc:
                errors.setdefault(name, []).append(exc.message)
        return values

    def defaults(self, entity_key: str) -> dict[str, Any]:
        """The values a new record starts with: what a blank form shows before the user types."""
        values: dict[str, Any] = {}
        self._defaults(self.entity(entity_key), values, {})
        return values

    def _defaults(self, entity: Entity, values: dict[str, Any], errors: Errors,
                  ctx: ValueContext | None = None) -> None:
        ctx = ctx or self.value_context()
        for f in entity.user_fields:
            if f.name in values or f.default is None or f.kind.derived:
                continue
            try:
                values[f.name] = self._default_of(f, ctx)
            except FieldValueError as exc:
                errors.setdefault(f.name, []).append(exc.message)

    def _default_of(self, f: Field, ctx: ValueContext) -> Any:
        """A field's declared default as a value: $me, $today and $now are read now."""
        if f.default == "$me":
            return self.actor.user_id
        if f.default == "$today":
            return ctx.today()
        if f.default == "$now":
            return ctx.current_time()
        return f.kind.coerce(f, f.default, ctx)

    def _empty(self, entity: Entity, name: str, value: Any) -> bool:
        return entity.fields[name].kind.is_empty(value) if name in entity.fields else value is None

    def _validate(self, conn: Connection, entity: Entity, record: dict[str, Any], old: dict[str, Any] | None,
                  changed: set[str], errors: Errors) -> None:
        self._validate_rows(conn, entity, [(record, old, changed, errors)])

    def _validate_rows(self, conn: Connection, entity: Entity,
                       rows: Sequence[tuple[dict[str, Any], dict[str, Any] | None, set[str], Errors]]) -> None:
        """Check records about to be saved, each given as (record, old or None, changed names,
        its errors so far, which this extends). Required fields and stage rules row by row;
        references with one query per target entity and unique fields with one per field, for
        all the rows together (a batch write gives thousands)."""
        required = [(f.name, f.kind) for f in entity.user_fields if f.required and not f.kind.derived]
        stages = entity.fields_of_type("stage")
        # The fields that link to records (target entity) or users ("crm_user").
        links = [(f.name, str(f.target) if f.type == "reference" else "crm_user") for f in entity.fields.values()
                 if f.type in ("reference", "user") or f.name == "owner"]
        # References: target -> id -> [(the row's errors, field name)]
        wanted: dict[str, dict[int, list[tuple[Errors, str]]]] = defaultdict(lambda: defaultdict(list))
        for record, old, changed, errors in rows:
            for name, kind in required:
                if name not in errors and kind.is_empty(record.get(name)):
                    errors.setdefault(name, []).append(Message("required"))
            for f in stages:
                if f.name in changed:
                    old_value = old.get(f.name) if old else None
                    for name, message in f.kind.check_record(f, old_value, record.get(f.name), record,  # type: ignore[attr-defined]
                                                             lambda n, v: self._empty(entity, n, v)):
                        errors.setdefault(name, []).append(message)
            for name, target in links:
                value = record.get(name)
                if value is not None and name in changed and name not in errors:
                    wanted[target][value].append((errors, name))
        for target, by_id in wanted.items():
            table = self.runtime.table(target)
            scope = None
            if target != "crm_user":
                # A link may only point at a record the caller can read: otherwise its title
                # would leak through the link, and the id would confirm the record exists.
                scope = self.runtime.access.clause(self.actor, self.registry.entities[target], table)
            found: set[int] = set()
            ids = sorted(by_id)
            for start in range(0, len(ids), IN_CHUNK):
                stmt = sa.select(table.c.id).where(table.c.id.in_(ids[start:start + IN_CHUNK]))
                if target != "crm_user":
                    stmt = stmt.where(table.c.deleted_at.is_(None))
                if scope is not None:
                    stmt = stmt.where(scope)
                found |= set(conn.execute(stmt).scalars())
            for missing in set(ids) - found:
                code = "no_such_user" if target == "crm_user" else "no_such_record"
                label = self.registry.entities[target].label["en"] if target != "crm_user" else ""
                for errors, name in by_id[missing]:
                    errors.setdefault(name, []).append(Message(code, {"entity": label, "value": missing}))
        table = self.runtime.table(entity.key)
        for f in entity.user_fields:
            if not f.unique:
                continue
            seen: dict[Any, tuple[dict[str, Any], Errors]] = {}  # stored value -> the first row with it
            for record, _old, changed, errors in rows:
                value = record.get(f.name)
                if f.name not in changed or value is None or f.name in errors:
                    continue
                key = f.kind.to_db(value)
                if key in seen:  # twice in the same batch
                    errors.setdefault(f.name, []).append(Message("not_unique", {"value": value}))
                else:
                    seen[key] = (record, errors)
            keys = list(seen)
            by_text = {str(k): v for k, v in seen.items()}  # the database may hand back another type
            for start in range(0, len(keys), IN_CHUNK):
                stmt = sa.select(table.c.id, table.c[f.name]).where(table.c[f.name].in_(keys[start:start + IN_CHUNK]))
                for other_id, taken in conn.execute(stmt):
                    record, errors = seen.get(taken) or by_text[str(taken)]
                    if other_id != record.get("id") and f.name not in errors:
                        errors[f.name] = [Message("not_unique", {"value": record.get(f.name)})]

    def _derive(self, conn: Connection, entity: Entity, records: Sequence[dict[str, Any]], creating: bool) -> None:
        """Fill the derived fields: autonumbers of new records (one block of numbers for all),
        computed fields, and the rollups of new records (nothing to aggregate yet)."""
        now = self.runtime.now()
        for f in entity.user_fields:
            if f.type == "autonumber" and creating:
                lacking = [record for record in records if not record.get(f.name)]
                if lacking:
                    prefix = render(f.options["pattern"], now)
                    first = self._next_sequence(conn, f"{entity.key}.{f.name}:{prefix}", len(lacking))
                    for n, record in enumerate(lacking):
                        record[f.name] = render(f.options["pattern"], now, first + n)
            elif f.type == "computed":
                for record in records:
                    record[f.name] = f.kind.compute(f, record)  # type: ignore[attr-defined]
            elif f.type == "rollup" and creating:
                for record in records:
                    record[f.name] = 0 if f.options["aggregate"] == "count" else None

    def _next_sequence(self, conn: Connection, key: str, count: int) -> int:
        """Reserve `count` numbers of counter `key` in this transaction; returns the first.

        The upsert locks the counter row until commit, so concurrent inserts wait for each other
        and a rolled-back insert gives its number back: numbers stay unique and gap-free.
        """
        counter = self.runtime.table("crm_counter")
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(counter).values(key=key, value=count)
        stmt = stmt.on_conflict_do_update(index_elements=[counter.c.key],
                                          set_={"value": counter.c.value + count}).returning(counter.c.value)
        last = int(conn.execute(stmt).scalar_one())
        return last - count + 1

    def _to_row(self, entity: Entity, record: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (entity.fields[k].kind.to_db(v) if not entity.fields[k].system else v)
                for k, v in record.items() if k in entity.fields}

    def _json_value(self, entity: Entity, name: str, value: Any) -> str | None:
        if value is None:
            return None
        f = entity.fields[name]
        return json.dumps(f.kind.to_json(f, value) if not f.system else value, ensure_ascii=False, default=str)

    def _history(self, conn: Connection, entity: Entity, record_id: int, action: str,
                 changes: Mapping[str, tuple[Any, Any]], comment: str | None = None) -> None:
        at, user = self.runtime.now(), self.actor.user_id
        rows = [{"entity": entity.key, "record_id": record_id, "action": action, "field": name,
                 "old_value": self._json_value(entity, name, old), "new_value": self._json_value(entity, name, new),
                 "user_id": user, "at": at, "comment": comment}
                for name, (old, new) in changes.items()]
        if not rows:
            rows = [{"entity": entity.key, "record_id": record_id, "action": action, "field": None,
                     "old_value": None, "new_value": None, "user_id": user, "at": at, "comment": comment}]
        conn.execute(sa.insert(self.runtime.table("crm_history")), rows)
        self._written(entity)

    @staticmethod
    def _with_warnings(record: dict[str, Any], warnings: list[Message]) -> dict[str, Any]:
        """Hooks' warnings travel with the saved record as `_warnings` (ignored as input)."""
        return {**record, "_warnings": list(warnings)} if warnings else record

    def _written(self, entity: Entity) -> None:
        """A record of `entity` changed: drop what was derived from such records."""
        if entity.key in self.runtime.org.entities:
            self.runtime.org.invalidate()

    def _run_hooks(self, event: str, ctx: HookContext) -> None:
        self.runtime.hooks.run(event, ctx)

    def _stage_fields(self, entity: Entity, changed: set[str]) -> list[str]:
        return [f.name for f in entity.fields_of_type("stage") if f.name in changed]

    def _prepare(self, conn: Connection, ctx: HookContext, errors: Errors) -> tuple[dict[str, Any], set[str]]:
        """The shared first half of create and update: hooks around validation, then derivation.

        Returns the record to save and the names of the fields this write changes.
        """
        entity, old = ctx.entity, ctx.old
        self._run_hooks("before_validate", ctx)
        record = ctx.record
        if old is None:
            changed = {k for k, v in record.items() if v is not None}
        else:
            changed = {k for k in record if k in entity.fields and record[k] != old.get(k)}
        self._validate(conn, entity, record, old, changed, errors)
        if errors:
            raise ValidationFailed(errors)
        self._run_hooks("after_validate", ctx)
        for name in self._stage_fields(entity, changed):
            ctx.stage_field = name
            self._run_hooks("before_stage_change", ctx)
        self._run_hooks("before_save", ctx)
        self._derive(conn, entity, [record], creating=old is None)
        return record, changed

    # -- writing --------------------------------------------------------------------------------
    def create(self, entity_key: str, data: Mapping[str, Any]) -> dict[str, Any]:
        entity = self.entity(entity_key)
        self._check(entity, "create", None)
        errors: Errors = {}
        values = self._coerce(entity, data, errors, creating=True)
        self._defaults(entity, values, errors)
        if values.get("owner") is None:
            values["owner"] = self.actor.user_id
        elif values["owner"] != self.actor.user_id:
            self._check(entity, "assign", {"owner": values["owner"]})  # may the actor give records to them?
        with self.transaction() as conn:
            ctx = HookContext(entity, "before_validate", values, None, self.actor, self._hook_service(conn), is_new=True)
            record, changed = self._prepare(conn, ctx, errors)
            now = self.runtime.now()
            row = self._to_row(entity, record)
            row.update(created_at=now, updated_at=now, created_by=self.actor.user_id,
                       updated_by=self.actor.user_id, version=1, deleted_at=None)
            table = self.runtime.table(entity.key)
            record_id = int(conn.execute(sa.insert(table).values(**row).returning(table.c.id)).scalar_one())
            record["id"] = record_id
            self._history(conn, entity, record_id, "create",
                          {k: (None, v) for k, v in record.items() if k != "id" and v is not None and k in entity.fields})
            self._refresh_rollups(conn, entity, None, record)
            saved = self._fetch(conn, entity, record_id) or record
            after = HookContext(entity, "after_save", saved, None, self.actor, ctx.records, is_new=True,
                                warnings=ctx.warnings)
            self._run_hooks("after_save", after)
            for name in self._stage_fields(entity, changed):
                after.stage_field = name
                self._run_hooks("after_stage_change", after)
        return self._with_warnings(self.get(entity.key, record_id) if self.conn is None else saved, ctx.warnings)

    def update(self, entity_key: str, record_id: Any, data: Mapping[str, Any], version: int | None) -> dict[str, Any]:
        entity = self.entity(entity_key)
        record_id = self._id(entity, record_id)
        if version is None:
            raise ValidationFailed({"version": [Message("version_required")]})
        errors: Errors = {}
        values = self._coerce(entity, data, errors, creating=False)
        with self.transaction() as conn:
            old = self._fetch(conn, entity, record_id, lock=True)
            if old is None or old.get("deleted_at") is not None:
                raise self._not_found(entity, record_id)
            self._check(entity, "edit", old)
            if int(version) != old["version"]:
                raise Conflict(Message("stale_version", {"current": old["version"], "given": version}))
            if "owner" in values and values["owner"] != old.get("owner"):
                self._check(entity, "assign", old)
            record = {**old, **values}
            ctx = HookContext(entity, "before_validate", record, old, self.actor, self._hook_service(conn))
            record, changed = self._prepare(conn, ctx, errors)
            # The caller must still be allowed to edit the record as it will be saved, and may only
            # hand it to an owner within their assign scope.
            self._check(entity, "edit", record)
            if record.get("owner") != old.get("owner"):
                self._check(entity, "assign", {**record, "id": None})
            changes = {k: (old.get(k), record.get(k)) for k in entity.fields
                       if not entity.fields[k].system or k == "owner"}
            changes = {k: v for k, v in changes.items() if v[0] != v[1]}
            if changes:
                table = self.runtime.table(entity.key)
                row = self._to_row(entity, {k: record[k] for k in changes})
                row.update(updated_at=self.runtime.now(), updated_by=self.actor.user_id, version=old["version"] + 1)
                result = conn.execute(sa.update(table).where(table.c.id == record_id, table.c.version == old["version"]).values(**row))
                if result.rowcount != 1:
                    raise Conflict(Message("stale_version", {"current": "?", "given": version}))
                self._history(conn, entity, record_id, "update", changes)
                self._refresh_rollups(conn, entity, old, record)
            saved = self._fetch(conn, entity, record_id) or record
            after = HookContext(entity, "after_save", saved, old, self.actor, ctx.records, warnings=ctx.warnings)
            if changes:
                self._run_hooks("after_save", after)
                for name in self._stage_fields(entity, set(changes)):
                    after.stage_field = name
                    self._run_hooks("after_stage_change", after)
        return self._with_warnings(self.get(entity.key, record_id) if self.conn is None else saved, ctx.warnings)

    def delete(self, entity_key: str, record_id: Any) -> dict[str, Any]:
        """Move a record to the recycle bin (children with on_delete: cascade go with it)."""
        return self._delete(entity_key, record_id, None)

    def _delete(self, entity_key: str, record_id: Any, at: datetime | None) -> dict[str, Any]:
        # `at`: the moment of the parent's deletion when cascading, so restore can find the
        # children that went to the recycle bin with their parent.
        entity = self.entity(entity_key)
        record_id = self._id(entity, record_id)
        at = at or self.runtime.now()
        with self.transaction() as conn:
            old = self._fetch(conn, entity, record_id, lock=True)
            if old is None or old.get("deleted_at") is not None:
                raise self._not_found(entity, record_id)
            self._check(entity, "delete", old)
            ctx = HookContext(entity, "before_delete", dict(old), old, self.actor, self._hook_service(conn))
            self._run_hooks("before_delete", ctx)
            self._apply_on_delete(conn, entity, record_id, purge=False, at=at)
            table = self.runtime.table(entity.key)
            conn.execute(sa.update(table).where(table.c.id == record_id)
                         .values(deleted_at=at, version=old["version"] + 1,
                                 updated_at=self.runtime.now(), updated_by=self.actor.user_id))
            self._history(conn, entity, record_id, "delete", {})
            self._refresh_rollups(conn, entity, old, None)
            self._run_hooks("after_delete", ctx)
            return self._fetch(conn, entity, record_id) or old

    def _binned(self, conn: Connection, entity: Entity, record_id: int, action: str) -> dict[str, Any]:
        """A record in the recycle bin that the actor may restore or purge (locked for the change)."""
        old = self._fetch(conn, entity, record_id, lock=True)
        if old is None:
            raise self._not_found(entity, record_id)
        self._check(entity, action, old)
        if old.get("deleted_at") is None:
            raise ValidationFailed({"": [Message("not_deleted")]})
        return old

    def restore(self, entity_key: str, record_id: Any) -> dict[str, Any]:
        entity = self.entity(entity_key)
        record_id = self._id(entity, record_id)
        with self.transaction() as conn:
            old = self._binned(conn, entity, record_id, "restore")
            table = self.runtime.table(entity.key)
            conn.execute(sa.update(table).where(table.c.id == record_id)
                         .values(deleted_at=None, version=old["version"] + 1,
                                 updated_at=self.runtime.now(), updated_by=self.actor.user_id))
            self._history(conn, entity, record_id, "restore", {})
            # Children that on_delete: cascade sent to the recycle bin with this record come back.
            service = self._hook_service(conn)
            for ref in self.registry.referencing(entity.key):
                if ref.options.get("on_delete", "restrict") != "cascade":
                    continue
                child = self.runtime.table(ref.entity)
                stmt = sa.select(child.c.id).where(child.c[ref.name] == record_id, child.c.deleted_at == old["deleted_at"])
                for child_id in conn.execute(stmt).scalars().all():
                    service.restore(ref.entity, child_id)
            restored = {**old, "deleted_at": None}
            self._refresh_rollups(conn, entity, None, restored)
            return self._fetch(conn, entity, record_id) or restored

    def purge(self, entity_key: str, record_id: Any) -> None:
        """Delete a record from the recycle bin for good."""
        entity = self.entity(entity_key)
        record_id = self._id(entity, record_id)
        with self.transaction() as conn:
            self._binned(conn, entity, record_id, "purge")  # checks: exists, in the bin, allowed
            self._apply_on_delete(conn, entity, record_id, purge=True)
            table = self.runtime.table(entity.key)
            old = self._fetch(conn, entity, record_id) or {}
            conn.execute(sa.delete(table).where(table.c.id == record_id))
            self._history(conn, entity, record_id, "purge", {})
            audit.record(self.runtime, "purge", user_id=self.actor.user_id, username=self.actor.username,
                         entity=entity.key, record_id=record_id, conn=conn,
                         detail={"title": str(old.get(entity.title, ""))[:200]})

    def _apply_on_delete(self, conn: Connection, entity: Entity, record_id: int, purge: bool,
                         at: datetime | None = None) -> None:
        for ref in self.registry.referencing(entity.key):
            child = self.registry.entities[ref.entity]
            table = self.runtime.table(child.key)
            rule = ref.options.get("on_delete", "restrict")
            live = table.c[ref.name] == record_id
            if not purge:
                live = sa.and_(live, table.c.deleted_at.is_(None))
            if rule == "restrict":
                count = conn.execute(sa.select(sa.func.count()).select_from(table).where(live)).scalar_one()
                if count:
                    raise ValidationFailed({"": [Message("referenced", {"count": count, "entity": child.label["en"]})]})
            elif rule == "cascade":
                service = self._hook_service(conn)
                for child_id in conn.execute(sa.select(table.c.id).where(live)).scalars().all():
                    if purge:
                        conn.execute(sa.update(table).where(table.c.id == child_id).values(deleted_at=self.runtime.now()))
                        service.purge(child.key, child_id)
                    else:
                        service._delete(child.key, child_id, at)
            elif rule == "set_null" and purge:
                now = self.runtime.now()
                for child_id in conn.execute(sa.select(table.c.id).where(table.c[ref.name] == record_id)).scalars().all():
                    conn.execute(sa.update(table).where(table.c.id == child_id).values(
                        {ref.name: None, "version": table.c.version + 1, "updated_at": now, "updated_by": self.actor.user_id}))
                    self._history(conn, child, child_id, "update", {ref.name: (record_id, None)})

    # -- rollups --------------------------------------------------------------------------------
    def _refresh_rollups(self, conn: Connection, child: Entity, before: Mapping[str, Any] | None,
                         after: Mapping[str, Any] | None) -> None:
        """Recompute parents' rollup fields (and their computed fields) after a child changed."""
        self._refresh_rollups_of(conn, child, [side for side in (before, after) if side])

    def _refresh_rollups_of(self, conn: Connection, child: Entity, rows: Sequence[Mapping[str, Any]],
                            depth: int = 0) -> None:
        """Recompute the rollups of every parent the child `rows` (old and new versions) point at.

        Set-based, so a bulk insert of thousands of children costs a few statements per rollup:
        one GROUP BY per rollup field and parent batch, one read of the parents, one executemany
        of the changed ones. Parents whose rollups changed refresh their own parents in turn.
        """
        if depth > 5:
            return
        # parent entity -> rollup field name -> ids of the parents to recompute it for
        wanted: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for f in self.runtime.rollups.get(child.key, []):
            via = f.options["via"]
            for row in rows:
                if row.get(via):
                    wanted[f.entity][f.name].add(int(row[via]))
        ctx = self.value_context()
        child_table = self.runtime.table(child.key)
        for parent_key, by_field in wanted.items():
            parent = self.registry.entities[parent_key]
            table = self.runtime.table(parent.key)
            all_ids = sorted(set().union(*by_field.values()))
            for start in range(0, len(all_ids), ROLLUP_BATCH):
                ids = all_ids[start:start + ROLLUP_BATCH]
                olds = {int(r["id"]): self._decode(parent, r)
                        for r in conn.execute(sa.select(table).where(table.c.id.in_(ids))).mappings()}
                fresh: dict[int, dict[str, Any]] = {i: {} for i in olds}
                for name, field_ids in by_field.items():
                    f = parent.fields[name]
                    batch = [i for i in ids if i in field_ids and i in olds]
                    if not batch:
                        continue
                    via = child_table.c[f.options["via"]]
                    aggregate = f.options["aggregate"]
                    column = sa.func.count() if aggregate == "count" else getattr(sa.func, aggregate)(
                        child_table.c[f.options["field"]])
                    qb = QueryBuilder(self.runtime, child, ctx)
                    where = [via.in_(batch), child_table.c.deleted_at.is_(None)]
                    where += [qb.filter_clause(parse_filter(w)) for w in f.options.get("where", ())]
                    found = {row[0]: row[1] for row in conn.execute(sa.select(via, column).where(*where).group_by(via))}
                    for i in batch:
                        fresh[i][name] = f.kind.from_db(found.get(i, 0 if aggregate == "count" else None))
                changes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
                moved: list[Mapping[str, Any]] = []
                for i, old in olds.items():
                    record = {**old, **fresh[i]}
                    self._derive(conn, parent, [record], creating=False)
                    changed = {k: record[k] for k in record
                               if k in parent.fields and not parent.fields[k].system and record[k] != old.get(k)}
                    if changed:
                        changes[tuple(sorted(changed))].append({"_id": i, **self._to_row(parent, changed)})
                        moved += [old, record]
                for columns, params in changes.items():
                    conn.execute(sa.update(table).where(table.c.id == sa.bindparam("_id"))
                                 .values({c: sa.bindparam(c) for c in columns}), params)
                if moved:
                    self._refresh_rollups_of(conn, parent, moved, depth + 1)

    # -- many at once --------------------------------------------------------------------------
    def create_many(self, entity_key: str, rows: Sequence[Mapping[str, Any]], *, hooks: bool = True,
                    history: bool = True, comment: str | None = None) -> list[dict[str, Any]]:
        """Create many records, all or none: what create() does for each row, a batch at a time.

        Each step runs for all the rows before the next one: coerce and defaults; the
        before_validate hooks; validation (one query per referenced entity and per unique field);
        the after_validate, before_stage_change and before_save hooks; derivation (autonumbers as
        one block); one INSERT per BULK_CHUNK rows; one history row per record (`comment` on it);
        the parents' rollups, set-based; the after_save and after_stage_change hooks. A hook with
        a prefetch function (plugins.hook) has it called once per step, for all the rows.

        Problems in any row raise ValidationFailed keyed "<row index>.<field>", and nothing is
        saved. Returns the saved records, with `_warnings` where hooks warned.
        `hooks=False` (demo data, benchmarks: the caller fills what the hooks would) skips them.
        """
        entity = self.entity(entity_key)
        self._check(entity, "create", None)
        if hooks and not self.runtime.hooks.batch_safe(entity.key, CREATE_EVENTS):
            return self._create_each(entity, rows)
        value_ctx = self.value_context()
        records: list[dict[str, Any]] = []
        errors: list[Errors] = []
        may_assign: dict[Any, Message | None] = {}
        for data in rows:
            row_errors: Errors = {}
            values = self._coerce(entity, data, row_errors, creating=True, ctx=value_ctx)
            self._defaults(entity, values, row_errors, value_ctx)
            owner = values.get("owner")
            if owner is None:
                values["owner"] = self.actor.user_id
            elif owner != self.actor.user_id:  # may the actor give records to them?
                if owner not in may_assign:
                    may_assign[owner] = self._refusal(entity, "assign", {"owner": owner})
                if may_assign[owner] is not None:
                    row_errors.setdefault("owner", []).append(may_assign[owner])  # type: ignore[arg-type]
            records.append(values)
            errors.append(row_errors)

        def failed() -> ValidationFailed:
            return ValidationFailed({f"{i}.{name}": messages for i, found in enumerate(errors)
                                     for name, messages in found.items()})

        with self.transaction() as conn:
            shared: dict[str, Any] = {}
            service = self._hook_service(conn)
            contexts = {i: HookContext(entity, "before_validate", record, None, self.actor, service, is_new=True,
                                       batch=shared) for i, record in enumerate(records)}

            def run_hooks(event: str, which: Mapping[int, HookContext]) -> None:
                if not hooks:
                    return
                alive = {i: ctx for i, ctx in which.items() if not errors[i]}
                for i, found in self.runtime.hooks.run_each(event, alive).items():
                    for name, messages in found.items():
                        errors[i].setdefault(name, []).extend(messages)
                for i, ctx in alive.items():
                    records[i] = ctx.record

            stage_fields = [f.name for f in entity.fields_of_type("stage")]

            def run_stage_hooks(event: str, which: Mapping[int, HookContext]) -> None:
                """Once per stage field, for the rows that set it."""
                for name in stage_fields:
                    moving = {i: ctx for i, ctx in which.items() if name in changed[i]}
                    for ctx in moving.values():
                        ctx.stage_field = name
                    run_hooks(event, moving)

            run_hooks("before_validate", contexts)
            changed = [{k for k, v in record.items() if v is not None} for record in records]
            self._validate_rows(conn, entity, [(record, None, changed[i], errors[i]) for i, record in enumerate(records)])
            run_hooks("after_validate", contexts)
            run_stage_hooks("before_stage_change", contexts)
            run_hooks("before_save", contexts)
            if any(errors):
                raise failed()
            self._derive(conn, entity, records, creating=True)
            now = self.runtime.now()
            stamps = {"created_at": now, "updated_at": now, "created_by": self.actor.user_id,
                      "updated_by": self.actor.user_id, "version": 1, "deleted_at": None}
            empty_row: dict[str, Any] = {f.name: None for f in entity.user_fields}
            table = self.runtime.table(entity.key)
            ids = self._insert_many(conn, table, [{**empty_row, **self._to_row(entity, record), **stamps}
                                                  for record in records])
            saved = [{**record, **stamps, "id": record_id} for record, record_id in zip(records, ids, strict=True)]
            if history:
                conn.execute(sa.insert(self.runtime.table("crm_history")), [
                    {"entity": entity.key, "record_id": i, "action": "create", "field": None, "old_value": None,
                     "new_value": None, "user_id": self.actor.user_id, "at": now, "comment": comment} for i in ids])
            self._refresh_rollups_of(conn, entity, records)
            if hooks:
                after = {i: HookContext(entity, "after_save", record, None, self.actor, service, is_new=True,
                                        warnings=contexts[i].warnings, batch=shared) for i, record in enumerate(saved)}
                run_hooks("after_save", after)
                run_stage_hooks("after_stage_change", after)
                if any(errors):
                    raise failed()
        self._written(entity)
        return [self._with_warnings(record, contexts[i].warnings) for i, record in enumerate(saved)]

    def _create_each(self, entity: Entity, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """create_many for entities with hooks that must see each row saved before the next
        (plugins.hook's `batch`): one create() after another, all or none."""
        saved: list[dict[str, Any]] = []
        errors: dict[str, list[Message]] = {}
        with self.transaction():
            for i, data in enumerate(rows):
                try:
                    saved.append(self.create(entity.key, data))
                except ValidationFailed as exc:
                    for name, messages in exc.errors.items():
                        errors[f"{i}.{name}"] = messages
                except (Forbidden, NotFound) as exc:
                    errors[f"{i}."] = [exc.message]
            if errors:
                raise ValidationFailed(errors)
        return saved

    def bulk_create(self, entity_key: str, rows: Sequence[Mapping[str, Any]], *, history: bool = False) -> list[int]:
        """Insert many records without hooks (demo data, benchmarks, pack data loaders): the
        ids of create_many(rows, hooks=False)."""
        saved = self.create_many(entity_key, rows, hooks=False, history=history, comment="import")
        return [int(record["id"]) for record in saved]

    def _refusal(self, entity: Entity, action: str, record: dict[str, Any]) -> Message | None:
        """Why the actor may not do `action` on `record`, or None when they may."""
        try:
            self._check(entity, action, record)
        except (Forbidden, NotFound) as exc:
            return exc.message
        return None

    def _insert_many(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
        """Insert `rows`, returning their ids in order."""
        ids: list[int] = []
        if conn.dialect.name == "sqlite":
            # SQLAlchemy can only match RETURNING rows to parameters on SQLite by inserting row by
            # row. Without RETURNING it is one executemany; a transaction holds SQLite's single
            # write lock from its first insert on, so the new rowids are max(id)+1, +2, ...
            for start in range(0, len(rows), BULK_CHUNK):
                chunk = rows[start:start + BULK_CHUNK]
                first = conn.execute(sa.insert(table).returning(table.c.id), chunk[0]).scalar_one()
                if len(chunk) > 1:
                    conn.execute(sa.insert(table), chunk[1:])
                last = conn.execute(sa.select(sa.func.max(table.c.id))).scalar_one()
                if last != first + len(chunk) - 1:  # cannot happen while we hold the write lock
                    raise RuntimeError(f"bulk insert into {table.name}: ids {first}..{last} for {len(chunk)} rows")
                ids += range(first, last + 1)
            return ids
        # PostgreSQL: INSERT ... RETURNING over many rows goes as huge multi-VALUES statements that
        # psycopg cannot cache (6x slower, measured). Take the ids from the table's sequence
        # first, then send the rows with COPY, in the same transaction: PostgreSQL's bulk-load
        # path, without a statement per row (the values are plain Python values that psycopg
        # adapts itself, as in an INSERT).
        preparer = conn.dialect.identifier_preparer
        sequence = sa.func.pg_get_serial_sequence(preparer.format_table(table), "id")
        columns = ["id", *[name for name in rows[0] if name != "id"]] if rows else []
        copy_sql = f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in columns)}) FROM STDIN"
        for start in range(0, len(rows), BULK_CHUNK):
            chunk = rows[start:start + BULK_CHUNK]
            taken = [int(i) for i in conn.execute(sa.select(sa.func.nextval(sequence))
                                                  .select_from(sa.func.generate_series(1, len(chunk)))).scalars()]
            with conn.connection.driver_connection.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
                for record_id, row in zip(taken, chunk, strict=True):
                    copy.write_row((record_id, *[row[c] for c in columns[1:]]))
            ids += taken
        return ids

    # -- actions --------------------------------------------------------------------------------
    def run_action(self, entity_key: str, record_id: Any, key: str, inputs: Mapping[str, Any] | None = None,
                   *, form: bool = False) -> dict[str, Any]:
        """Run record action `key`: the user needs its permission on the record, the record must
        match its `when` filters, inputs are coerced and validated like fields; the pack's
        @action function then runs in one transaction. Returns {message?, open?, warnings}."""
        entity = self.entity(entity_key)
        action = entity.action(key)
        fn = self.runtime.hooks.actions.get((entity.key, key))
        if action is None or fn is None:
            raise NotFound(Message("not_found", {"entity": entity.label.get("en", entity.key), "id": key}))
        record = self.get(entity.key, record_id)
        self._check(entity, action.permission, record)
        if action.when and not self.query(entity.key, ListQuery(filters=[f"id eq {record['id']}", *action.when],
                                                                limit=1, count=False, titles=())).rows:
            raise ValidationFailed({"": [Message("rejected", {"message": {
                "en": f"'{action.label['en']}' does not apply to this record now.",
                "zh": f"“{action.label['zh']}”当前不适用于此记录。"}})]})
        values = self._action_inputs(action, inputs or {}, form)
        with self.transaction() as conn:
            full = self._fetch(conn, entity, record["id"], lock=True) or record
            ctx = ActionContext(entity, action, full, values, self.actor, self._hook_service(conn))
            fn(ctx)
        return {**ctx.outcome, "warnings": ctx.warnings}

    def _action_inputs(self, action: Action, inputs: Mapping[str, Any], form: bool) -> dict[str, Any]:
        errors: Errors = {}
        values: dict[str, Any] = {}
        vctx = self.value_context()
        known = {f.name: f for f in action.inputs}
        for name in inputs:
            if name not in known and not name.startswith("_"):
                errors.setdefault(name, []).append(Message("unknown_field", {"entity": action.key, "value": name}))
        for f in action.inputs:
            raw = inputs.get(f.name)
            try:
                if form:
                    value = f.kind.parse_form(f, raw if raw is not None else "", vctx)
                else:
                    value = None if raw in (None, "", []) else f.kind.coerce(f, raw, vctx)
            except FieldValueError as exc:
                errors.setdefault(f.name, []).append(exc.message)
                continue
            if value is None and f.default is not None:
                try:
                    value = self._default_of(f, vctx)
                except FieldValueError as exc:
                    errors.setdefault(f.name, []).append(exc.message)
                    continue
            if f.required and f.kind.is_empty(value):
                errors.setdefault(f.name, []).append(Message("required"))
            values[f.name] = value
        if errors:
            raise ValidationFailed(errors)
        return values

    def run_job(self, name: str) -> list[str]:
        """Run a pack's @job as the system; returns the lines it reported."""
        fn = self.runtime.hooks.jobs.get(name)
        if fn is None:
            raise NotFound(Message("rejected", {"message": {
                "en": f"No job '{name}' (jobs: {', '.join(sorted(self.runtime.hooks.jobs)) or 'none'}).",
                "zh": f"不存在作业“{name}”。"}}))
        ctx = JobContext(name, self.runtime.records(SYSTEM))
        fn(ctx)
        return ctx.report

    # -- sharing --------------------------------------------------------------------------------
    def share(self, entity_key: str, record_id: Any, user_id: int, access: str = "read") -> None:
        """Give a user read or edit access to one record beyond their scope (needs 'share')."""
        entity = self.entity(entity_key)
        record = self.get(entity.key, record_id)
        self._check(entity, "share", record)
        if access not in SHARE_LEVELS:
            raise ValidationFailed({"access": [Message("not_an_option", {"value": access, "picklist": "read, edit"})]})
        users, shares = self.runtime.table("crm_user"), self.runtime.table("crm_share")
        with self.transaction() as conn:
            if conn.execute(sa.select(users.c.id).where(users.c.id == user_id, users.c.is_active.is_(True))).first() is None:
                raise ValidationFailed({"user": [Message("no_such_user", {"value": user_id})]})
            key = (shares.c.entity == entity.key) & (shares.c.record_id == record["id"]) & (shares.c.user_id == user_id)
            conn.execute(sa.delete(shares).where(key))
            conn.execute(sa.insert(shares).values(entity=entity.key, record_id=record["id"], user_id=user_id,
                                                  access=access, created_by=self.actor.user_id,
                                                  created_at=self.runtime.now()))
            self._history(conn, entity, record["id"], "share", {}, comment=f"{user_id}:{access}")

    def unshare(self, entity_key: str, record_id: Any, user_id: int) -> None:
        entity = self.entity(entity_key)
        record = self.get(entity.key, record_id)
        self._check(entity, "share", record)
        shares = self.runtime.table("crm_share")
        with self.transaction() as conn:
            done = conn.execute(sa.delete(shares).where(shares.c.entity == entity.key, shares.c.record_id == record["id"],
                                                        shares.c.user_id == user_id))
            if done.rowcount:
                self._history(conn, entity, record["id"], "unshare", {}, comment=str(user_id))

    def shares(self, entity_key: str, record_id: Any) -> list[dict[str, Any]]:
        """Who a record is shared with: [{user_id, name, access, created_at}] (needs read)."""
        entity = self.entity(entity_key)
        record = self.get(entity.key, record_id)
        shares, users = self.runtime.table("crm_share"), self.runtime.table("crm_user")
        stmt = (sa.select(shares.c.user_id, users.c.display_name.label("name"), shares.c.access, shares.c.created_at)
                .select_from(shares.join(users, users.c.id == shares.c.user_id))
                .where(shares.c.entity == entity.key, shares.c.record_id == record["id"]).order_by(users.c.display_name))
        with self.transaction() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def explain(self, entity_key: str, record_id: Any, actor: Actor) -> list[Decision]:
        """Why `actor` may or may not do each action on a record ("why can I see this?").

        For administrators: the caller needs 'all' read scope on the entity.
        """
        entity = self.entity(entity_key)
        if self.runtime.access.scope(self.actor, entity, "read") != "all":
            raise Forbidden(Message("rejected", {"message": {"en": "Only administrators may ask why.",
                                                             "zh": "只有管理员可以查看权限原因。"}}))
        record = self.runtime.records(SYSTEM, self.conn).get(entity.key, record_id, include_deleted=True)
        other = RecordService(self.runtime, actor, self.conn)
        return [self.runtime.access.decide(actor, entity, action, record,
                                           lambda: other._share_level(entity, record["id"]))
                for action in ACTIONS]

    # -- output ---------------------------------------------------------------------------------
    def to_json(self, entity_key: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """A record as JSON-ready data: typed values, references as {id, title}."""
        entity = self.entity(entity_key)
        titles = record.get("_titles") or {}
        out: dict[str, Any] = {}
        for name, f in entity.fields.items():
            if name not in record:
                continue
            value = record[name]
            if f.system:
                value = value.isoformat(timespec="seconds") if isinstance(value, datetime) else value
            else:
                value = f.kind.to_json(f, value)
            if name in titles and value is not None:
                value = {"id": value, "title": titles[name]}
            out[name] = value
        return out
