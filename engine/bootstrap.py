"""Wiring: configuration -> registry (packs + the database's customisation layer) -> Runtime."""

from __future__ import annotations

from engine.config import Config, load_config
from engine.metadata import load_registry
from engine.runtime.customization import load_overlay, revision
from engine.runtime.db import make_engine
from engine.runtime.installer import active_dirs
from engine.runtime.service import Runtime


def open_runtime(config: Config | None = None) -> Runtime:
    config = config or load_config()
    engine = make_engine(config.database_url)
    seen = revision(engine)
    registry = load_registry(active_dirs(config.pack_dirs(), engine), load_overlay(engine))
    runtime = Runtime(registry, engine, timezone=config.timezone, files_dir=config.files_dir)
    runtime.layer_revision = seen
    return runtime
