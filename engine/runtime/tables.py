"""SQLAlchemy tables: the engine's own `crm_*` tables and one table per entity of the registry.

Every entity column is nullable: `required` is the record service's rule, so adding a required
field to a table that already holds rows never fails. References are not foreign-key constraints
(SQLite cannot add them to existing tables); the record service checks them and applies on_delete.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from engine.fieldtypes.reference import ID_TYPE
from engine.metadata.registry import Entity, Registry

SYSTEM_TABLES = ("crm_user", "crm_user_role", "crm_history", "crm_counter", "crm_customization", "crm_pack",
                 "crm_session", "crm_login_failure", "crm_api_token", "crm_saved_view", "crm_share", "crm_audit",
                 "crm_setting")


def index_name(table: str, columns: list[str], unique: bool = False) -> str:
    name = f"{'ux' if unique else 'ix'}_{table}_{'_'.join(columns)}"
    if len(name) > 60:  # PostgreSQL truncates at 63; keep names stable and distinct
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:51]}_{digest}"
    return name


def system_tables(metadata: sa.MetaData) -> None:
    sa.Table(
        "crm_user", metadata,
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("is_active", sa.Boolean, nullable=False, default=True),
        sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_login_at", sa.DateTime),
    )
    sa.Table(
        "crm_user_role", metadata,
        sa.Column("user_id", ID_TYPE, primary_key=True),
        sa.Column("role", sa.String(64), primary_key=True),
    )
    sa.Table(
        "crm_history", metadata,
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("record_id", ID_TYPE, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),  # create update delete restore purge
        sa.Column("field", sa.String(64)),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
        sa.Column("comment", sa.Text),
        sa.Column("user_id", ID_TYPE),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Index("ix_crm_history_record", "entity", "record_id", "id"),
    )
    sa.Table(
        "crm_counter", metadata,
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "crm_customization", metadata,
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),  # entity | picklist | role
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("data", sa.Text, nullable=False),  # the document, as JSON
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("created_by", ID_TYPE),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Index("ix_crm_customization_key", "kind", "key", "revision"),
    )
    sa.Table(
        "crm_pack", metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("path", sa.String(500)),  # folder of a pack installed with `crm pack install`
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("installed_at", sa.DateTime, nullable=False),
    )
    # Server-side sessions: the signed cookie carries only the id, so logout really ends a session.
    sa.Table(
        "crm_session", metadata,
        sa.Column("id", sa.String(64), primary_key=True),  # sha256 of the random token in the cookie
        sa.Column("user_id", ID_TYPE, nullable=False, index=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("address", sa.String(64)),
    )
    # Failed sign-ins per account ("user:NAME") and per address ("addr:IP"), for throttling.
    sa.Table(
        "crm_login_failure", metadata,
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime, nullable=False),
        sa.Column("locked_until", sa.DateTime),
    )
    sa.Table(
        "crm_api_token", metadata,
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID_TYPE, nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex; the token is shown once
        sa.Column("prefix", sa.String(12), nullable=False),  # first characters, to tell tokens apart
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_used_at", sa.DateTime),
        sa.Column("revoked_at", sa.DateTime),
    )
    sa.Table(
        "crm_audit", metadata,
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("user_id", ID_TYPE),
        sa.Column("username", sa.String(64), nullable=False, server_default=""),
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
        sa.Column("entity", sa.String(64)),
        sa.Column("record_id", ID_TYPE),
        sa.Column("detail", sa.Text),
        sa.Index("ix_crm_audit_event", "event", "id"),
        sa.Index("ix_crm_audit_user", "username", "id"),
    )
    # Administrators' values of the settings packs declare (absent: the pack's default).
    sa.Table(
        "crm_setting", metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),  # JSON
        sa.Column("updated_by", ID_TYPE),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    # Records shared with users beyond their scope: read, or edit (which includes read).
    sa.Table(
        "crm_share", metadata,
        sa.Column("entity", sa.String(64), primary_key=True),
        sa.Column("record_id", ID_TYPE, primary_key=True),
        sa.Column("user_id", ID_TYPE, primary_key=True),
        sa.Column("access", sa.String(8), nullable=False),
        sa.Column("created_by", ID_TYPE),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Index("ix_crm_share_user", "user_id", "entity", "record_id"),
    )
    # List views a user saved for themselves: filters, search, columns and sort of one entity.
    sa.Table(
        "crm_saved_view", metadata,
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID_TYPE, nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("data", sa.Text, nullable=False),  # JSON: {filters, search, columns, sort}
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Index("ix_crm_saved_view_user", "user_id", "entity"),
    )


def entity_table(metadata: sa.MetaData, entity: Entity) -> sa.Table:
    columns: list[sa.Column[object]] = [sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True)]
    for field in entity.user_fields:
        columns.append(sa.Column(field.name, field.kind.column_type(field), nullable=True))
    columns += [
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", ID_TYPE),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", ID_TYPE),
        sa.Column("owner", ID_TYPE),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("deleted_at", sa.DateTime),
    ]
    table = sa.Table(entity.key, metadata, *columns)
    # The text columns search matches with `%term%` (search_index.py builds their index).
    table.info["search"] = tuple(name for name in entity.search
                                 if "contains" in entity.field(name).kind.operators
                                 and isinstance(table.c[name].type, sa.String))
    wanted: dict[tuple[str, ...], bool] = {}
    for field in entity.fields.values():
        if field.name == "id":
            continue
        if field.unique:
            wanted[(field.name,)] = True
        elif field.index:
            wanted.setdefault((field.name,), False)
    # Lists sort on their default sort key within the caller's scope; index both ways of asking.
    for key in entity.list.sort[:1]:
        name = key.lstrip("-")
        if name != "id" and entity.fields[name].kind.sortable:
            wanted.setdefault((name, "id"), False)
            wanted.setdefault(("owner", name, "id"), False)
    for cols in entity.indexes:
        wanted.setdefault(tuple(cols), False)
    # Every filter a list declares is offered on every page view: give each an index to start from
    # (not long text, which a B-tree entry may not hold on PostgreSQL).
    for name in entity.list.filters:
        column = table.c[name] if name in table.c else None
        if column is None or any(cols[0] == name for cols in wanted):
            continue
        if isinstance(column.type, sa.Text) or (isinstance(column.type, sa.String) and (column.type.length or 10**6) > 255):
            continue
        wanted[(name,)] = False
    for cols, unique in wanted.items():
        sa.Index(index_name(entity.key, list(cols), unique), *[table.c[c] for c in cols], unique=unique)
    return table


def build_metadata(registry: Registry) -> sa.MetaData:
    metadata = sa.MetaData()
    system_tables(metadata)
    for entity in registry.entities.values():
        entity_table(metadata, entity)
    return metadata
