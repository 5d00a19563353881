"""Project configuration: `crm.toml` in the working directory, overridden by CRM_* variables.

    # crm.toml
    packs = ["standard_crm", "field_service"]       # names (looked up under packs/) or folders
    database_url = "sqlite:///crm.sqlite3"
    files_dir = "files"
    language = "zh"                                   # default UI language: zh or en
    timezone = "Asia/Shanghai"

Environment: CRM_CONFIG (another file), CRM_PACKS (comma-separated), CRM_DATABASE_URL,
CRM_FILES_DIR, CRM_LANGUAGE, CRM_TIMEZONE, CRM_SECRET_KEY (signs session cookies; every worker
must share it), CRM_SECURE_COOKIES (1: cookies over HTTPS only).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_PACKS = Path(__file__).resolve().parent.parent / "packs"


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Config:
    packs: tuple[str, ...] = ("standard_crm",)
    database_url: str = "sqlite:///crm.sqlite3"
    files_dir: str = "files"
    language: str = "zh"
    timezone: str = "Asia/Shanghai"
    secret_key: str = ""
    secure_cookies: bool = False  # send the session cookie over HTTPS only (set behind TLS)
    pack_search: tuple[Path, ...] = field(default=(Path("packs"), PROJECT_PACKS))

    def pack_dirs(self) -> list[Path]:
        from engine.metadata.packs import resolve_pack_dirs

        found, missing = resolve_pack_dirs(list(self.packs), list(self.pack_search))
        if missing:
            raise ConfigError(f"pack(s) not found: {', '.join(missing)} (looked in "
                              f"{', '.join(str(p) for p in self.pack_search)})")
        return found


def load_config(path: str | None = None) -> Config:
    path = path or os.environ.get("CRM_CONFIG") or "crm.toml"
    values: dict[str, object] = {}
    if Path(path).is_file():
        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    env = os.environ
    packs = env.get("CRM_PACKS")
    config = Config(
        packs=tuple(p.strip() for p in packs.split(",") if p.strip()) if packs else tuple(values.get("packs", Config.packs)),  # type: ignore[arg-type]
        database_url=env.get("CRM_DATABASE_URL") or str(values.get("database_url", Config.database_url)),
        files_dir=env.get("CRM_FILES_DIR") or str(values.get("files_dir", Config.files_dir)),
        language=env.get("CRM_LANGUAGE") or str(values.get("language", Config.language)),
        timezone=env.get("CRM_TIMEZONE") or str(values.get("timezone", Config.timezone)),
        secret_key=env.get("CRM_SECRET_KEY") or str(values.get("secret_key", "")),
        secure_cookies=(env.get("CRM_SECURE_COOKIES") or str(values.get("secure_cookies", ""))).lower() in ("1", "true", "yes"),
    )
    if config.language not in ("zh", "en"):
        raise ConfigError(f"language must be zh or en, not {config.language!r}")
    return config
