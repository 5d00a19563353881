"""The three industry packs installed one after another onto a running standard CRM with demo
data, then one of them upgraded to a newer version: every row is kept, the new field appears,
and the four packs work together."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from engine.demo import generate
from engine.metadata import load_registry
from engine.runtime import users as user_accounts
from engine.runtime.db import make_engine
from engine.runtime.installer import active_dirs, install
from engine.runtime.service import Runtime
from tests.conftest import ROOT, make_runtime

STANDARD = ROOT / "packs" / "standard_crm"
INDUSTRY = [ROOT / "packs" / "industry_templates" / name for name in ("project_sales", "membership_retail", "field_service")]


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(user_accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


def counts(engine: sa.Engine, tables: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}


def test_install_all_three_then_upgrade_one_keeps_every_row(db_url: str, tmp_path: Path) -> None:
    runtime = make_runtime(db_url, STANDARD)
    generate(runtime, customers=15, seed=7)
    standard_tables = sorted(runtime.registry.entities)
    before = counts(runtime.engine, standard_tables)
    runtime.engine.dispose()
    engine = make_engine(db_url)
    try:
        for folder in INDUSTRY:
            report = install([STANDARD], folder, engine, timezone="Asia/Shanghai", files_dir=str(tmp_path))
            assert report.previous is None and report.ddl, folder.name
        assert counts(engine, standard_tables) == before
        dirs = active_dirs([STANDARD], engine)
        registry = load_registry(dirs)
        assert [p.name for p in registry.packs] == ["standard_crm", "field_service", "membership_retail", "project_sales"]
        together = Runtime(registry, engine)
        assert together.migration_plan().empty, together.migration_plan().describe()  # installing migrated everything
        # A newer field_service: one more field on the customer asset.
        newer = tmp_path / "field_service"
        shutil.copytree(INDUSTRY[2], newer)
        manifest = newer / "pack.yaml"
        manifest.write_text(manifest.read_text(encoding="utf-8").replace("version: 1.0.0", "version: 1.1.0", 1),
                            encoding="utf-8")
        asset = newer / "entities" / "customer_asset.yaml"
        text = asset.read_text(encoding="utf-8")
        asset.write_text(text.replace("fields:\n", "fields:\n  fs_qr_code: {type: string, max_length: 64, "
                                      "label: {en: QR code, zh: 二维码}}\n", 1), encoding="utf-8")
        upgraded = install([STANDARD], newer, engine, timezone="Asia/Shanghai", files_dir=str(tmp_path), upgrade=True)
        assert (upgraded.previous, upgraded.version) == ("1.0.0", "1.1.0")
        assert any("fs_qr_code" in statement for statement in upgraded.ddl)
        assert counts(engine, standard_tables) == before
        assert "fs_qr_code" in {c["name"] for c in sa.inspect(engine).get_columns("customer_asset")}
    finally:
        engine.dispose()
