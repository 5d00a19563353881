"""customization.reload builds a new registry with the layer, keeping the hook registry when the
active packs (and their hooks files) did not change."""

from __future__ import annotations

from engine.runtime import customization
from engine.runtime.service import Runtime
from tests.conftest import ROOT, make_runtime


def test_reload_keeps_hooks_and_sees_the_new_field(db_url: str) -> None:
    runtime: Runtime = make_runtime(db_url, ROOT / "packs" / "standard_crm")
    try:
        customization.save_customization(runtime.engine, "entity", "customer", {"extend": "customer", "fields": {
            "x_note": {"type": "string", "label": {"en": "Note", "zh": "备注"}}}})
        fresh = customization.reload(runtime)
        assert fresh.registry.entity("customer").has("x_note")
        assert fresh.hooks is runtime.hooks
        assert fresh.layer_revision == customization.revision(runtime.engine)
        fresh.migrate()
        record = fresh.records().create("customer", {"name": "重庆华信", "x_note": "n"})
        assert fresh.records().get("customer", record["id"])["mnemonic"] == "CQHX"  # the pack's hooks still run
    finally:
        runtime.engine.dispose()
