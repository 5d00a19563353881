"""The three servers under test, each a real subprocess on loopback:

- ours: `crm serve --workers N` (uvicorn);
- the floor: bench/floor/app.py under uvicorn with the same number of workers;
- Django admin: bench/django under gunicorn (its own venv), the same number of worker processes.

Each is started in its own process group and stopped by signalling that group only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from bench.common import BENCH, CACHE, CRM, DJANGO_VENV, PYTHON, ROOT, SECRET


class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, cwd: Path,
                 ready_path: str = "/login") -> None:
        self.name, self.argv, self.port, self.cwd, self.ready_path = name, argv, port, cwd, ready_path
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0
        self.log = CACHE / "logs" / f"{name}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> float:
        """Start and wait until the server answers; returns the seconds that took."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        out = open(self.log, "wb")  # noqa: SIM115 - kept open for the server's life
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.base + self.ready_path, timeout=2).status_code < 500:
                    self.start_seconds = time.perf_counter() - started
                    return self.start_seconds
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout} s; see {self.log}")

    def workers(self) -> list[int]:
        """Worker process ids (the server process itself when it has no children)."""
        assert self.proc is not None
        pids = [self.proc.pid]
        found: list[int] = []
        while pids:
            pid = pids.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            pids += [int(c) for c in children]
            if pid != self.proc.pid or not children:
                found.append(pid)
        # uvicorn's multiprocess supervisor and gunicorn's arbiter have workers below them;
        # a multiprocessing resource tracker (tiny) is not a worker.
        return [p for p in found if "resource_tracker" not in _cmdline(p)]

    def rss_mb(self) -> list[float]:
        sizes = []
        for pid in self.workers():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(round(int(line.split()[1]) / 1024, 1))
            except OSError:
                continue
        return sizes

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # our own process group only
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ours(url: str, port: int, workers: int) -> Server:
    # --migrate: other engineers change the packs while the benchmark runs; the data set follows.
    return Server("ours", [CRM, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
                           "--no-access-log", "--migrate"],
                  {"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": SECRET, "CRM_FILES_DIR": str(CACHE / "files")},
                  port, ROOT)


def floor(url: str, port: int, workers: int) -> Server:
    # The same HTTP protocol as `crm serve` (TCP_NODELAY: uvicorn with several workers leaves Nagle
    # on, which added ~40 ms to every small response at one client); a server setting, not app code.
    return Server("floor", [PYTHON, "-m", "uvicorn", "bench.floor.app:create_app", "--factory", "--port", str(port),
                            "--workers", str(workers), "--log-level", "warning", "--no-access-log",
                            "--http", "engine.ui.http:NoDelayHTTPProtocol"],
                  {"BENCH_DATABASE_URL": url, "BENCH_SECRET": SECRET}, port, ROOT)


def django(url: str, port: int, workers: int) -> Server:
    return Server("django", [str(DJANGO_VENV / "bin" / "gunicorn"), "benchsite.wsgi", "--workers", str(workers),
                             "--threads", "8", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
                  {"BENCH_DATABASE_URL": url, "BENCH_SECRET": SECRET}, port, BENCH / "django",
                  ready_path="/admin/login/")


def django_available() -> bool:
    return (DJANGO_VENV / "bin" / "gunicorn").exists()
