"""docs/plugins.md shows the example pack's hooks.py exactly (the code is tested in test_hooks.py)."""

from __future__ import annotations

import re

from engine.plugins import EVENTS
from tests.conftest import ROOT
from tests.runtime.conftest import HOOKED


def test_doc_example_is_the_tested_hooks_py() -> None:
    doc = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    code = (HOOKED / "hooks.py").read_text(encoding="utf-8")
    assert code in blocks


def test_doc_names_every_event() -> None:
    doc = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for event in EVENTS:
        assert f"`{event}`" in doc
