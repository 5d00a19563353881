"""The user guide's screenshots: the script that makes them works, and docs/user.md shows only
pictures it makes (and that are in docs/screenshots/). `make screenshots` refreshes the docs."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

from tests.browser.conftest import OUTPUT
from tests.browser.make_screenshots import DESKTOP, DOCS_SCREENSHOTS, PHONE, capture
from tests.browser.server import ROOT, CrmServer

USER_GUIDE = ROOT / "docs" / "user.md"


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_user_guide_screenshots_can_be_made(crm_server: CrmServer, browser: Any) -> None:
    out = OUTPUT / "docs-screenshots"
    for old in out.glob("*.png"):
        if not old.name.startswith("studio-"):  # test_studio.py's pictures, maybe being made now
            old.unlink()
    made = {p.name: p for p in capture(browser, crm_server.url, out)}
    for name, path in made.items():
        wanted = PHONE if name.startswith("phone-") else DESKTOP
        assert png_size(path) == (wanted["width"], wanted["height"]), name

    shown = set(re.findall(r"\(screenshots/([\w-]+\.png)\)", USER_GUIDE.read_text(encoding="utf-8")))
    assert shown, "docs/user.md shows no screenshots"
    assert shown <= set(made), f"docs/user.md shows pictures the script does not make: {shown - set(made)}"
    missing = [n for n in sorted(shown) if not (DOCS_SCREENSHOTS / n).is_file()]
    assert not missing, f"not in docs/screenshots (run `make screenshots`): {missing}"
