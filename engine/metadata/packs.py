"""Finding and reading pack folders into documents (no merging here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.metadata import schemas
from engine.metadata.yamlfile import Document, PackError, read_document

KIND_FOLDERS = {"entities": "entity", "picklists": "picklist", "roles": "role", "locales": "locale"}
LANGUAGES = ("en", "zh")


@dataclass
class PackSource:
    """A pack as read from disk (or from the database customisation layer)."""

    name: str
    version: str
    label: dict[str, str]
    depends: list[str]
    path: str
    manifest: Document
    documents: list[Document] = field(default_factory=list)
    hooks: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return self.manifest.data  # type: ignore[no-any-return]


def shown_path(path: Path) -> str:
    """A path as errors show it: relative to the working directory when below it."""
    try:
        shown = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if shown.startswith("..") else shown


def read_pack(folder: Path) -> tuple[PackSource | None, list[PackError]]:
    """Read one pack folder: pack.yaml plus every document, each checked against its schema."""
    errors: list[PackError] = []
    manifest_path = folder / "pack.yaml"
    if not manifest_path.is_file():
        return None, [PackError(shown_path(folder), 0, "", "not a pack: pack.yaml is missing")]
    manifest, errs = read_document(manifest_path, "pack", shown_path(manifest_path))
    errors += errs
    if manifest is None:
        return None, errors
    errors += schemas.check(manifest, "pack")
    data = manifest.data
    name = str(data.get("name") or folder.name)
    manifest.pack = name
    pack = PackSource(
        name=name,
        version=str(data.get("version", "0.0.0")),
        label=data.get("label") if isinstance(data.get("label"), dict) else {"en": name, "zh": name},
        depends=[d for d in data.get("depends") or [] if isinstance(d, str)] if isinstance(data.get("depends"), list) else [],
        path=str(folder),
        manifest=manifest,
        hooks=str(folder / "hooks.py") if (folder / "hooks.py").is_file() else None,
    )
    for sub, kind in KIND_FOLDERS.items():
        directory = folder / sub
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".yaml", ".yml") or not path.is_file():
                continue
            doc, errs = read_document(path, kind, shown_path(path))
            errors += errs
            if doc is None:
                continue
            doc.pack = name
            if kind == "locale" and path.stem not in LANGUAGES:
                errors.append(doc.error((), f"locale files are named {' or '.join(f'{x}.yaml' for x in LANGUAGES)}"))
                continue
            errors += document_errors(doc)
            pack.documents.append(doc)
    return pack, errors


def document_errors(doc: Document) -> list[PackError]:
    """Schema errors of one document, fields included (each against its own type's schema)."""
    errors = list(schemas.check(doc, doc.kind))
    if doc.kind == "entity" and isinstance(doc.data.get("fields"), dict):
        for name, spec in doc.data["fields"].items():
            errors += schemas.check_field(doc, spec, ("fields", name))
    if doc.kind == "entity" and isinstance(doc.data.get("actions"), list):
        for i, action in enumerate(doc.data["actions"]):
            inputs = action.get("inputs") if isinstance(action, dict) else None
            for name, spec in (inputs or {}).items() if isinstance(inputs, dict) else ():
                errors += schemas.check_field(doc, spec, ("actions", i, "inputs", name))
    return errors


def resolve_pack_dirs(names: list[str], search: list[Path]) -> tuple[list[Path], list[str]]:
    """Turn pack names or folders into folders; returns (folders, names not found)."""
    found: list[Path] = []
    missing: list[str] = []
    for item in names:
        item = item.strip()
        if not item:
            continue
        candidate = Path(item)
        if (candidate / "pack.yaml").is_file():
            found.append(candidate)
            continue
        for root in search:
            matches = [root / item, root / "industry_templates" / item]
            match = next((m for m in matches if (m / "pack.yaml").is_file()), None)
            if match:
                found.append(match)
                break
        else:
            missing.append(item)
    return found, missing


def with_dependencies(folders: list[Path], search: list[Path]) -> list[Path]:
    """`folders` plus the packs they depend on, transitively, found the way active packs are
    (dependencies missing from `search` are left out; validation then names them)."""
    folders = list(folders)
    names: set[str] = set()
    pending = list(folders)
    while pending:
        pack, _ = read_pack(pending.pop())
        if pack is None:
            continue
        names.add(pack.name)
        for dep in pack.depends:
            if dep not in names and not any(f.name == dep for f in folders):
                found, _missing = resolve_pack_dirs([dep], search)
                for folder in found:
                    if folder not in folders:
                        folders.append(folder)
                        pending.append(folder)
    return folders
