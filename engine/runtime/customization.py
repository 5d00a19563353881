"""The administrator's customisation layer: documents of the pack shapes, stored in the database.

Each save is a new revision of (kind, key); the newest active revision of each is applied as
the last layer over the packs. Reverting is saving an earlier revision again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.runtime.tables import system_tables

KINDS = ("entity", "picklist", "role")


def _table() -> sa.Table:
    metadata = sa.MetaData()
    system_tables(metadata)
    return metadata.tables["crm_customization"]


def load_overlay(engine: Engine) -> list[dict[str, Any]]:
    """The current customisation documents, oldest key first; empty before the first migration."""
    table = _table()
    if not sa.inspect(engine).has_table(table.name):
        return []
    latest = (sa.select(table.c.kind, table.c.key, sa.func.max(table.c.revision).label("revision"))
              .group_by(table.c.kind, table.c.key).subquery())
    stmt = (sa.select(table).join(latest, sa.and_(table.c.kind == latest.c.kind, table.c.key == latest.c.key,
                                                  table.c.revision == latest.c.revision))
            .where(table.c.active.is_(True)).order_by(table.c.id))
    with engine.connect() as conn:
        return [{"kind": r["kind"], "data": json.loads(r["data"]), "ref": f"customization:{r['kind']}/{r['key']}@{r['revision']}"}
                for r in conn.execute(stmt).mappings()]


def save_customization(engine: Engine, kind: str, key: str, data: dict[str, Any] | None, *,
                       user_id: int | None = None, comment: str | None = None) -> int:
    """Store a new revision (data None = remove the customisation); returns the revision number."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    table = _table()
    with engine.begin() as conn:
        current = conn.execute(sa.select(sa.func.max(table.c.revision)).where(table.c.kind == kind, table.c.key == key)).scalar()
        revision = int(current or 0) + 1
        conn.execute(sa.insert(table).values(kind=kind, key=key, data=json.dumps(data or {}, ensure_ascii=False),
                                             revision=revision, active=data is not None, comment=comment,
                                             created_by=user_id, created_at=datetime.now().replace(microsecond=0)))
    return revision
