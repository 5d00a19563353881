"""Installing and upgrading packs in a database, and exporting the customisation layer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.metadata import load_registry, validate
from engine.runtime.customization import load_overlay, save_customization
from engine.runtime.db import make_engine
from engine.runtime.installer import (
    InstallError,
    active_dirs,
    export_customizations,
    install,
    installed,
)
from engine.runtime.service import Runtime
from tests.conftest import FIXTURES

SALES = FIXTURES / "sales_basic"


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    engine = make_engine(db_url)
    Runtime(load_registry([SALES]), engine).migrate()
    return engine


def opened(engine: sa.Engine) -> Runtime:
    return Runtime(load_registry(active_dirs([SALES], engine), load_overlay(engine)), engine)


def test_install_activates_a_pack_for_this_database(engine: sa.Engine) -> None:
    report = install([SALES], FIXTURES / "actioned", engine, timezone="Asia/Shanghai", files_dir="files")
    assert (report.name, report.version, report.previous) == ("actioned", "1.0.0", None)
    assert installed(engine)["actioned"][0] == "1.0.0"
    assert opened(engine).registry.entity("account").action("heat") is not None
    with pytest.raises(InstallError, match="installed already"):
        install([SALES], FIXTURES / "actioned", engine, timezone="Asia/Shanghai", files_dir="files")


def test_upgrade_keeps_the_administrators_layout_and_reports_the_conflict(engine: sa.Engine, tmp_path: Path) -> None:
    install([SALES], FIXTURES / "actioned", engine, timezone="Asia/Shanghai", files_dir="files")
    save_customization(engine, "entity", "account", {
        "extend": "account", "fields": {"x_region": {"type": "string", "label": {"en": "Region", "zh": "区域"}}},
        "layouts": {"list": {"columns": ["x_region"]}}})
    newer = tmp_path / "actioned"
    shutil.copytree(FIXTURES / "actioned", newer)
    manifest = newer / "pack.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("version: 1.0.0", "version: 1.1.0"), encoding="utf-8")
    doc = newer / "entities" / "account.yaml"
    doc.write_text(doc.read_text(encoding="utf-8").replace(
        "layouts:\n  list:\n    highlight: hot\n",
        "fields:\n  rank: {type: integer, label: {en: Rank, zh: 排名}}\nlayouts:\n  list:\n    highlight: hot\n"
        "    columns: [rank]\n"), encoding="utf-8")
    with pytest.raises(InstallError, match="not newer"):
        install([SALES], FIXTURES / "actioned", engine, timezone="Asia/Shanghai", files_dir="files", upgrade=True)
    report = install([SALES], newer, engine, timezone="Asia/Shanghai", files_dir="files", upgrade=True)
    assert report.previous == "1.0.0" and report.version == "1.1.0"
    assert any("account: layout 'list'" in c for c in report.conflicts)
    assert any("rank" in line for line in report.ddl)  # the new field's column
    account = opened(engine).registry.entity("account")
    assert account.has("rank") and "x_region" in account.list.columns and "rank" in account.list.columns


def test_export_writes_a_valid_pack(engine: sa.Engine, tmp_path: Path) -> None:
    save_customization(engine, "picklist", "x_level", {"picklist": "x_level", "label": {"en": "Level", "zh": "级别"},
                                                       "options": [{"key": "gold", "label": {"en": "Gold", "zh": "金牌"}}]})
    save_customization(engine, "entity", "account", {
        "extend": "account", "fields": {"x_level": {"type": "choice", "picklist": "x_level",
                                                    "label": {"en": "Level", "zh": "级别"}}}})
    out = tmp_path / "custom"
    assert export_customizations(engine, out, ["sales_basic"]) == 2
    assert validate([SALES, out]) == []
    assert load_registry([SALES, out]).entity("account").field("x_level").picklist is not None
