"""The file store behind attachment fields: content-addressed files under `files_dir`.

`store` writes the bytes once per content (sha256) and returns the description an attachment
field stores; `open_file` reads them back. File names never reach the file system.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.fieldtypes.base import FieldValueError
from engine.metadata.registry import Field


def _path(files_dir: str, sha256: str) -> Path:
    return Path(files_dir) / sha256[:2] / sha256


def store(files_dir: str, data: bytes, name: str, content_type: str, field: Field | None = None) -> dict[str, Any]:
    """Save `data` and return {name, size, content_type, sha256}; refuses files over the field's limit."""
    if field is not None:
        limit = int(field.options.get("max_size", 10 * 1024 * 1024))
        if len(data) > limit:
            raise FieldValueError("file_too_large", max=f"{limit // 1024} KiB")
    digest = hashlib.sha256(data).hexdigest()
    target = _path(files_dir, digest)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, target)  # atomic: readers never see half a file
    return {"name": Path(name).name or "file", "size": len(data), "content_type": content_type or "application/octet-stream",
            "sha256": digest}


def open_file(files_dir: str, description: dict[str, Any]) -> bytes:
    return _path(files_dir, str(description["sha256"])).read_bytes()
