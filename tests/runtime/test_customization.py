"""The administrator's layer: revisions stored in the database, applied last, revertible."""

from __future__ import annotations

from engine.metadata import load_registry
from engine.runtime.customization import load_overlay, save_customization
from engine.runtime.service import Runtime
from tests.conftest import FIXTURES

FIELD = {"x_region": {"type": "string", "label": {"en": "Region", "zh": "区域"}}}


def test_customisations_are_stored_applied_last_and_revertible(runtime: Runtime) -> None:
    assert load_overlay(runtime.engine) == []
    first = save_customization(runtime.engine, "entity", "account", {"extend": "account", "fields": FIELD}, comment="add region")
    assert first == 1
    overlay = load_overlay(runtime.engine)
    assert [o["ref"] for o in overlay] == ["customization:entity/account@1"]
    registry = load_registry([FIXTURES / "sales_basic"], overlay)
    assert registry.entity("account").field("x_region").label["zh"] == "区域"

    extended = Runtime(registry, runtime.engine)
    extended.migrate()
    record = extended.records().create("account", {"name": "A", "x_region": "华东"})

    # Reverting = a new revision without the document; the column and its data stay.
    assert save_customization(runtime.engine, "entity", "account", None, comment="revert") == 2
    assert load_overlay(runtime.engine) == []
    reverted = Runtime(load_registry([FIXTURES / "sales_basic"], load_overlay(runtime.engine)), runtime.engine)
    assert not reverted.registry.entity("account").has("x_region")
    assert reverted.migration_plan().kept == ["column account.x_region"]
    with runtime.engine.connect() as conn:
        table = extended.table("account")
        assert conn.execute(table.select().where(table.c.id == record["id"])).mappings().one()["x_region"] == "华东"
