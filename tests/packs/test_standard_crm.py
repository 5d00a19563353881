"""The standard CRM pack validates, compiles and migrates on every database."""

from __future__ import annotations

from engine.metadata import load_registry, validate
from engine.runtime.db import make_engine
from engine.runtime.service import Runtime
from tests.conftest import ROOT

STANDARD = ROOT / "packs" / "standard_crm"
CONTRACT = ("department", "employee", "customer", "contact", "lead", "campaign", "activity", "follow_up",
            "opportunity", "product", "price_list", "quote", "quote_line", "order", "order_line",
            "service_request", "knowledge_article", "competitor", "partner", "sales_target", "expense")
ROLES = ("admin", "sales_manager", "salesperson", "marketing", "service_agent")


def test_standard_pack_is_valid() -> None:
    assert validate([STANDARD]) == []


def test_standard_pack_declares_the_public_contract() -> None:
    registry = load_registry([STANDARD])
    assert set(CONTRACT) <= set(registry.entities)
    assert set(ROLES) <= set(registry.roles)
    for entity in registry.entities.values():
        assert entity.label["en"] and entity.label["zh"]
        for field in entity.user_fields:
            assert field.label["en"] and field.label["zh"], f"{entity.key}.{field.name}"


def test_standard_pack_migrates_and_stores_a_customer(db_url: str) -> None:
    runtime = Runtime(load_registry([STANDARD]), make_engine(db_url))
    runtime.migrate()
    assert runtime.migration_plan().empty
    customer = runtime.records().create("customer", {"name": "上海示例贸易有限公司"})
    assert customer["id"] and customer["version"] == 1
    runtime.engine.dispose()
