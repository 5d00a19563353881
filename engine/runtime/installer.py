"""Installing and upgrading packs in a running installation, and exporting the administrator's
customisation layer as a pack.

Packs named in the configuration are always active; `crm pack install DIR` adds a pack folder
for this database (recorded in `crm_pack` with its version and path), `crm pack upgrade DIR`
replaces an installed pack by a newer version. The customisation layer stays on top of both:
where the administrator changed a layout that the new version changes too, the administrator's
version wins and the upgrade reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from engine.metadata import CUSTOM_PREFIX, EXPORT_NAME, MetadataError, load_registry
from engine.metadata.packs import read_pack
from engine.runtime.customization import load_overlay
from engine.runtime.service import Runtime

FOLDERS = {"entity": "entities", "picklist": "picklists", "role": "roles"}


class InstallError(Exception):
    pass


@dataclass
class InstallReport:
    name: str
    version: str
    previous: str | None = None
    ddl: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def installed(engine: Engine) -> dict[str, tuple[str, str | None]]:
    """Installed packs: name -> (version, folder or None for configured packs)."""
    if not sa.inspect(engine).has_table("crm_pack"):
        return {}
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM crm_pack")).mappings().all()
    return {r["name"]: (r["version"], r.get("path")) for r in rows}


def active_dirs(configured: list[Path], engine: Engine) -> list[Path]:
    """The configured pack folders plus those installed into this database."""
    names = {read_pack(d)[0].name for d in configured if read_pack(d)[0] is not None}  # type: ignore[union-attr]
    extra = [Path(path) for name, (_, path) in sorted(installed(engine).items()) if path and name not in names]
    return list(configured) + extra


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _record(runtime: Runtime, name: str, version: str, path: str | None) -> None:
    table = runtime.table("crm_pack")
    with runtime.engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.name == name))
        conn.execute(sa.insert(table).values(name=name, version=version, path=path, installed_at=runtime.now()))


def _open(dirs: list[Path], engine: Engine, timezone: str, files_dir: str) -> Runtime:
    """The runtime of these packs and the layer (MetadataError lists every problem)."""
    return Runtime(load_registry(dirs, load_overlay(engine)), engine, timezone=timezone, files_dir=files_dir)


def install(configured: list[Path], folder: Path, engine: Engine, *, timezone: str, files_dir: str,
            upgrade: bool = False) -> InstallReport:
    """Validate `folder` with the active packs and the customisation layer, migrate, record it."""
    pack, errors = read_pack(folder)
    if pack is None or errors:
        raise MetadataError(errors)
    current = installed(engine).get(pack.name)
    dirs = active_dirs(configured, engine)
    old_dir = next((d for d in dirs if (read_pack(d)[0] or pack).name == pack.name and d.resolve() != folder.resolve()),
                   None)
    if upgrade:
        if current is None and old_dir is None:
            raise InstallError(f"pack '{pack.name}' is not installed; use `crm pack install`")
        if current is not None and _version(pack.version) <= _version(current[0]):
            raise InstallError(f"pack '{pack.name}' {pack.version} is not newer than the installed {current[0]}")
    elif current is not None and current[1] is not None:
        raise InstallError(f"pack '{pack.name}' is installed already ({current[0]}); use `crm pack upgrade`")
    report = InstallReport(pack.name, pack.version, current[0] if current else None)
    if upgrade and old_dir is not None:
        report.conflicts = layout_conflicts(old_dir, folder, load_overlay(engine))
    new_dirs = [d for d in dirs if d != old_dir] + ([folder] if folder not in dirs else [])
    runtime = _open(new_dirs, engine, timezone, files_dir)
    plan = runtime.migration_plan()
    report.ddl = plan.describe()
    runtime.migrate()
    configured_names = {(read_pack(d)[0] or pack).name for d in configured}
    _record(runtime, pack.name, pack.version, None if pack.name in configured_names else str(folder.resolve()))
    return report


def _layouts(folder: Path) -> dict[str, Any]:
    pack, _ = read_pack(folder)
    out: dict[str, Any] = {}
    for doc in pack.documents if pack else []:
        if doc.kind == "entity":
            key = doc.data.get("entity") or doc.data.get("extend")
            out.setdefault(str(key), []).append(doc.data.get("layouts") or {})
    return out


def layout_conflicts(old: Path, new: Path, overlay: list[dict[str, Any]]) -> list[str]:
    """Layouts the new pack version changes where the administrator changed the same layout."""
    before, after = _layouts(old), _layouts(new)
    conflicts = []
    for doc in overlay:
        if doc["kind"] != "entity":
            continue
        data = doc["data"]
        key = str(data.get("extend") or data.get("entity"))
        for kind in (data.get("layouts") or {}):
            old_kind = [ls.get(kind) for ls in before.get(key, [])]
            new_kind = [ls.get(kind) for ls in after.get(key, [])]
            if old_kind != new_kind:
                conflicts.append(f"{key}: layout '{kind}' changed in the new version and by the administrator; "
                                 "the administrator's version wins (review it in the studio)")
    return conflicts


def export_customizations(engine: Engine, folder: Path, depends: list[str]) -> int:
    """Write the customisation layer as a pack folder that `crm pack validate` accepts."""
    docs = load_overlay(engine)
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"name": EXPORT_NAME, "version": "1.0.0",
                                "label": {"en": "Customizations", "zh": "自定义"}, "depends": depends}
    defined = {d["data"].get("entity") for d in docs if d["kind"] == "entity"}
    for doc in docs:
        if doc["kind"] == "menu":  # the layer's menu groups go into pack.yaml
            manifest["menu"] = [{**g, "entities": [e for e in g.get("entities") or []
                                                   if not str(e).startswith(CUSTOM_PREFIX) or e in defined]}
                                for g in doc["data"].get("menu") or []]
    (folder / "pack.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for doc in docs:
        kind, data = doc["kind"], doc["data"]
        if kind not in FOLDERS:
            continue
        sub = folder / FOLDERS[kind]
        sub.mkdir(exist_ok=True)
        key = data.get("extend") or data.get(kind) or "document"
        (sub / f"{key}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return len(docs)  # menu included (in pack.yaml)
