"""`crm pack new`: the scaffolded pack validates, its own test passes, and it installs onto a
running standard CRM with demo data and loads its own demo data, as generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import ROOT

CRM = [sys.executable, "-m", "engine.cli"]


def run(cwd: Path, *args: str, db_url: str = "", program: list[str] = CRM) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update({"PYTHONPATH": str(ROOT), "CRM_PACKS": "standard_crm", "CRM_SECRET_KEY": "k"})
    if db_url:
        env["CRM_DATABASE_URL"] = db_url
    return subprocess.run(program + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_new_pack_validates_passes_its_test_and_installs_with_demo_data(tmp_path: Path, db_url: str) -> None:
    made = run(tmp_path, "pack", "new", "acme_dental")
    assert made.returncode == 0, made.stderr
    pack = tmp_path / "packs" / "acme_dental"
    for name in ("pack.yaml", "entities/acme_dental_item.yaml", "entities/customer.yaml", "roles/salesperson.yaml",
                 "roles/acme_dental_user.yaml", "picklists/acme_dental_status.yaml", "locales/en.yaml",
                 "locales/zh.yaml", "hooks.py", "demo.py", "tests/test_acme_dental.py", "README.md"):
        assert (pack / name).is_file(), name
    assert "extend: customer" in (pack / "entities/customer.yaml").read_text(encoding="utf-8")
    checked = run(tmp_path, "pack", "validate", str(pack))
    assert checked.returncode == 0 and checked.stdout.startswith("OK: 2 pack(s)"), checked.stdout + checked.stderr
    tested = run(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pack / "tests"), program=[sys.executable])
    assert tested.returncode == 0 and "2 passed" in tested.stdout, tested.stdout + tested.stderr

    assert run(tmp_path, "demo", "--customers", "5", db_url=db_url).returncode == 0
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            before = conn.execute(sa.text("SELECT count(*) FROM customer")).scalar_one()
        installed = run(tmp_path, "pack", "install", str(pack), db_url=db_url)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        loaded = run(tmp_path, "demo", "--pack", "acme_dental", db_url=db_url)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        assert "acme_dental_item" in loaded.stdout and "acme_dental_demo" in loaded.stdout
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM customer")).scalar_one() == before  # every row kept
            assert conn.execute(sa.text("SELECT count(*) FROM acme_dental_item")).scalar_one() == 5
            assert conn.execute(sa.text("SELECT count(*) FROM customer WHERE acme_dental_note IS NULL")).scalar_one() == before
        again = run(tmp_path, "demo", "--pack", "acme_dental", db_url=db_url)
        assert again.returncode == 0 and "loaded into this database before" in again.stdout
    finally:
        engine.dispose()


def test_a_pack_on_its_own_and_bad_requests(tmp_path: Path) -> None:
    made = run(tmp_path, "pack", "new", "solo", "--extends", "none", "--dir", "solo")
    assert made.returncode == 0, made.stderr
    assert "depends: []" in (tmp_path / "solo" / "pack.yaml").read_text(encoding="utf-8")
    assert run(tmp_path, "pack", "validate", "solo").returncode == 0
    tested = run(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "solo/tests", program=[sys.executable])
    assert tested.returncode == 0, tested.stdout + tested.stderr

    for args, message in ((["Bad-Name"], "is not a pack name"),
                          (["solo", "--dir", "solo"], "exists and is not empty"),
                          (["standard_crm", "--dir", "other"], "is the name of a pack it depends on"),
                          (["fine", "--extends", "no_such_pack"], "pack 'no_such_pack' not found")):
        refused = run(tmp_path, "pack", "new", *args)
        assert refused.returncode != 0 and message in refused.stdout + refused.stderr, args
