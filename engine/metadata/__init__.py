"""Metadata: pack folders (and the administrator's layer) -> one immutable Registry.

Public surface:
    load_registry(pack_dirs, overlay=()) -> Registry      raises MetadataError
    validate(pack_dirs) -> list[PackError]                every problem, none raised
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.metadata import schemas
from engine.metadata.compile import compile_registry
from engine.metadata.compose import check_references, compose
from engine.metadata.packs import PackSource, document_errors, read_pack
from engine.metadata.registry import Registry
from engine.metadata.yamlfile import Document, PackError

__all__ = ["MetadataError", "OverlayDocument", "PackError", "Registry", "load_registry", "validate"]

CUSTOM_LAYER = "custom"
CUSTOM_PREFIX = "x_"  # the administrator's namespace: entities, fields and pick-lists the studio creates
EXPORT_NAME = "customizations"  # the pack `crm custom export` writes (it may define x_ entities)


class MetadataError(Exception):
    """The packs (or the customisation layer) do not form a valid CRM; `errors` lists every problem."""

    def __init__(self, errors: Sequence[PackError]) -> None:
        self.errors = list(errors)
        shown = "\n".join(str(e) for e in self.errors[:20])
        more = f"\n... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} error(s) in the metadata:\n{shown}{more}")


OverlayDocument = Mapping[str, Any]  # {"kind": "entity"|"picklist"|"role", "data": {...}, "ref": "..."}


def _overlay_pack(docs: Iterable[OverlayDocument], below: list[PackSource]) -> tuple[PackSource, list[PackError]]:
    """The administrator's customisations as one more pack, depending on every active pack.

    A "menu" document holds the layer's menu groups (pack.yaml's `menu:`); its custom entities
    that the layer no longer defines (an entity undone in the studio) are left out."""
    docs = list(docs)
    label = {"en": "Customizations", "zh": "自定义"}
    manifest = Document("pack", "customization:pack", {"name": CUSTOM_LAYER, "version": "0.0.0", "label": label},
                        pack=CUSTOM_LAYER)
    pack = PackSource(CUSTOM_LAYER, "0.0.0", label, [p.name for p in below], "", manifest)
    errors: list[PackError] = []
    defined = {d["data"].get("entity") for d in docs if d["kind"] == "entity"}
    for item in docs:
        if item["kind"] == "menu":
            menu = item["data"].get("menu")
            if isinstance(menu, list):
                menu = [{**g, "entities": [e for e in g.get("entities") or [] if not str(e).startswith(CUSTOM_PREFIX)
                                           or e in defined]} if isinstance(g, dict) else g for g in menu]
            manifest = Document("pack", str(item.get("ref") or "customization:menu"), {**manifest.data, "menu": menu},
                                {(): 1}, pack=CUSTOM_LAYER)
            errors += schemas.check(manifest, "pack")
            pack.manifest = manifest
            continue
        doc = Document(str(item["kind"]), str(item.get("ref") or f"customization:{item['kind']}"),
                       dict(item["data"]), {(): 1}, pack=CUSTOM_LAYER)
        errors += document_errors(doc)
        pack.documents.append(doc)
    return pack, errors


def _reserved_names(pack: PackSource) -> list[PackError]:
    """Entity names starting with x_ are the administrator's (the studio creates them), so a pack
    version can never clash with them; only an exported customisation layer may define them."""
    if pack.name == EXPORT_NAME:
        return []
    return [doc.error(("entity",), f"{doc.data['entity']!r} is not a valid name for a pack's entity "
                                   "(not starting with crm_ or x_: x_ names are the administrator's)")
            for doc in pack.documents
            if doc.kind == "entity" and str(doc.data.get("entity", "")).startswith(CUSTOM_PREFIX)]


def _build(pack_dirs: Sequence[Path], overlay: Iterable[OverlayDocument]) -> tuple[Registry | None, list[PackError]]:
    errors: list[PackError] = []
    sources: list[PackSource] = []
    for folder in pack_dirs:
        pack, errs = read_pack(Path(folder))
        errors += errs
        if pack is not None:
            errors += _reserved_names(pack)
            sources.append(pack)
    overlay = list(overlay)
    if overlay:
        custom, errs = _overlay_pack(overlay, sources)
        errors += errs
        sources.append(custom)
    comp = compose(sources)
    # Cross-references are checked in every document that is well-formed, so one run reports all.
    comp.broken = {(e.file, e.path) for e in errors}
    check_references(comp)
    errors += comp.errors
    if errors:
        return None, errors
    return compile_registry(comp), []


def validate(pack_dirs: Sequence[Path], overlay: Iterable[OverlayDocument] = ()) -> list[PackError]:
    return _build(pack_dirs, overlay)[1]


def load_registry(pack_dirs: Sequence[Path], overlay: Iterable[OverlayDocument] = ()) -> Registry:
    registry, errors = _build(pack_dirs, overlay)
    if registry is None:
        raise MetadataError(errors)
    return registry
