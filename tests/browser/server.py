"""The real server for the browser tests and the documentation screenshots: `crm demo` fills a
fresh SQLite file, `crm serve` runs on a free port as a subprocess, and Debian's Chromium is
driven through Playwright (never Playwright's own browser builds, which cannot be downloaded on
these machines)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = os.environ.get("CRM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"]
DEMO_CUSTOMERS = 30
START_TIMEOUT = 60.0

# Demo users made by `crm demo` (engine/demo.py): username -> password.
PASSWORDS = {name: f"demo-{name}" for name in ("admin", "manager", "sales1", "sales2", "marketing1", "service1")}

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


class ServerError(RuntimeError):
    pass


def crm_command() -> list[str]:
    script = Path(sys.executable).with_name("crm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CrmServer:
    """`crm serve` over a demo database in `workdir`; `start()`, then `url`, then `stop()`."""

    workdir: Path
    customers: int = DEMO_CUSTOMERS
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    install: tuple[Path, ...] = ()  # packs installed (`crm pack install`) after the standard demo, with their demo

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def crm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a `crm` command against this server's database (in the workdir, like an operator)."""
        result = subprocess.run(crm_command() + list(args), cwd=self.workdir, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode != 0:
            raise ServerError(f"`crm {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> CrmServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Only this run's settings: no crm.toml (the workdir has none) and no CRM_* of the caller.
        base = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
        self.env = {**base, "CRM_DATABASE_URL": f"sqlite:///{self.workdir / 'crm.sqlite3'}",
                    "CRM_PACKS": "standard_crm", "CRM_SECRET_KEY": "browser-test-secret-key",
                    "CRM_LANGUAGE": "en", "CRM_FILES_DIR": str(self.workdir / "files"),
                    "PYTHONPATH": os.pathsep.join([str(ROOT), base.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self.crm("demo", "--customers", str(self.customers))
        for pack in self.install:  # as an operator adds an industry pack to a running CRM
            self.crm("pack", "install", str(pack))
        if self.install:
            self.crm("demo", *[arg for pack in self.install for arg in ("--pack", pack.name)])
        self.port = self.port or free_port()
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(crm_command() + ["serve", "--port", str(self.port), "--migrate"],
                                        cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"`crm serve` exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/login", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise ServerError(f"`crm serve` did not answer within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def chromium_problem() -> str | None:
    """Why Debian's Chromium cannot be used, or None when it can."""
    if not os.access(CHROMIUM, os.X_OK):
        return (f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. `make test` installs it "
                f"(apt-get install chromium, as root); Playwright's own browser download does not work here.")
    return None


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless, through Playwright's sync API."""
    problem = chromium_problem()
    if problem:
        raise ServerError(problem)
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
