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

KINDS = ("entity", "picklist", "role", "menu")  # menu: the layer's menu groups (key "menu", data {"menu": [...]})


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


def revision(engine: Engine) -> tuple[int, int]:
    """A fingerprint of the layer (count and newest id of revisions): it changes with every save."""
    table = _table()
    if not sa.inspect(engine).has_table(table.name):
        return 0, 0
    with engine.connect() as conn:
        count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(table.c.id))).one()
    return int(count), int(newest or 0)


def reload(runtime: Any) -> Any:
    """A new Runtime over the same database with the packs of `runtime` and the current layer."""
    from pathlib import Path

    from engine.metadata import load_registry
    from engine.runtime.installer import active_dirs
    from engine.runtime.service import Runtime

    dirs = active_dirs([Path(p.path) for p in runtime.registry.packs if p.path], runtime.engine)
    seen = revision(runtime.engine)
    registry = load_registry(dirs, load_overlay(runtime.engine))
    # The packs' hooks are the same modules when the same packs (and hooks files) are active: a
    # changed customisation layer needs no new hook registry.
    same_hooks = [(p.name, p.hooks) for p in registry.packs if p.hooks] == \
        [(p.name, p.hooks) for p in runtime.registry.packs if p.hooks]
    fresh = Runtime(registry, runtime.engine, timezone=runtime.timezone, files_dir=runtime.files_dir,
                    hooks=runtime.hooks if same_hooks else None)
    fresh.layer_revision = seen
    return fresh
