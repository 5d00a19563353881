"""The partner tutorial in docs/packs.md, typed in from the page: every `File `path`:` block is
written out, and the pack validates, passes its own tests, installs onto a running standard CRM
with demo data (keeping every row) and loads its demo data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import ROOT

TUTORIAL = ROOT / "docs" / "packs.md"
FILE_BLOCK = re.compile(r"^File `([^`]+)`:\n\n```\w*\n(.*?)^```", re.MULTILINE | re.DOTALL)
CRM = [sys.executable, "-m", "engine.cli"]


def tutorial_files() -> dict[str, str]:
    text = TUTORIAL.read_text(encoding="utf-8")
    section = text[text.index("## Partner tutorial"):]
    return {path: body for path, body in FILE_BLOCK.findall(section)}


def run(cwd: Path, db_url: str, *args: str, program: list[str] = CRM) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update({"PYTHONPATH": str(ROOT), "CRM_PACKS": "standard_crm", "CRM_DATABASE_URL": db_url})
    return subprocess.run(program + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_tutorial_pack_works_as_typed_in(tmp_path: Path, db_url: str) -> None:
    files = tutorial_files()
    assert {"packs/auto_service/pack.yaml", "packs/auto_service/hooks.py", "packs/auto_service/demo.py",
            "packs/auto_service/tests/test_auto_service.py"} <= set(files)
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body, encoding="utf-8")
    pack = tmp_path / "packs" / "auto_service"
    checked = run(tmp_path, db_url, "pack", "validate", str(pack))
    assert checked.returncode == 0 and checked.stdout.startswith("OK: 2 pack(s)"), checked.stdout + checked.stderr
    tested = run(tmp_path, db_url, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pack / "tests"),
                 program=[sys.executable])
    assert tested.returncode == 0 and "2 passed" in tested.stdout, tested.stdout + tested.stderr

    assert run(tmp_path, db_url, "demo", "--customers", "10").returncode == 0
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                      for t in ("customer", "service_request", "opportunity")}
        installed = run(tmp_path, db_url, "pack", "install", str(pack))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        loaded = run(tmp_path, db_url, "demo", "--pack", "auto_service")
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        with engine.connect() as conn:
            assert {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in counts} == counts
            assert conn.execute(sa.text("SELECT count(*) FROM vehicle")).scalar_one() == counts["customer"]
            assert conn.execute(sa.text("SELECT count(*) FROM service_request WHERE vehicle IS NOT NULL")).scalar_one() == 0
    finally:
        engine.dispose()
