"""Attachments: bytes in the content-addressed store, the description in the record."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.fieldtypes.base import FieldValueError
from engine.runtime import files
from engine.runtime.errors import ValidationFailed
from engine.runtime.service import Runtime


def test_attachment_round_trip_and_size_limit(runtime: Runtime, tmp_path: Path) -> None:
    logo = runtime.registry.entity("account").field("logo")  # max_size: 1000 bytes
    description = files.store(str(tmp_path), b"\x89PNG small", "../../etc/logo.png", "image/png", logo)
    assert description["name"] == "logo.png" and description["size"] == 10
    record = runtime.records().create("account", {"name": "A", "logo": description})
    stored = runtime.records().get("account", record["id"])["logo"]
    assert stored == description
    assert files.open_file(str(tmp_path), stored) == b"\x89PNG small"
    with pytest.raises(FieldValueError):
        files.store(str(tmp_path), b"x" * 1001, "big.bin", "application/octet-stream", logo)
    with pytest.raises(ValidationFailed) as caught:
        runtime.records().create("account", {"name": "B", "logo": {**description, "size": 5000}})
    assert "logo" in caught.value.errors
