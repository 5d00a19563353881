"""The load generator: wrk (Debian's package), a separate process driven by a generated Lua script.

A scenario is a list of requests (method, path, body); wrk's threads take them in turn (thread
t sends requests t, t+T, t+2T, ...), so scenarios that must not repeat a request (creating a
customer, updating a version) hand each request out once. Every run is bounded twice: a
duration and a number of responses. The script counts responses whose status is not the
expected one (a redirect to the sign-in page would otherwise look like a fast page).

    run(base, scenario, connections=1, ...)  ->  {"requests", "rps", "p50_ms", "p95_ms", ...}
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import CACHE

Request = tuple[str, str, str | None]  # method, path, body


@dataclass
class Scenario:
    name: str
    requests: list[Request]
    headers: dict[str, str] = field(default_factory=dict)
    expect: int = 200  # the status every response must have
    once: bool = False  # each request may be sent only once (writes)


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench does this)")
    return path


def _escape(text: str) -> str:
    """A Lua string literal for any text (bytes outside printable ASCII as decimal escapes)."""
    out = []
    for b in text.encode():
        ch = chr(b)
        if 32 <= b < 127 and ch not in "\\'":
            out.append(ch)
        else:
            out.append(f"\\{b:03d}")
    return "'" + "".join(out) + "'"


LUA = """
local R = {%(requests)s}
local H = {%(headers)s}
local EXPECT = %(expect)d
local LIMIT = %(limit)d
local threads = {}
local stride = 1
local counter = 0
local seen = 0
bad = 0
statuses = ""

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  stride = tonumber(args[1])
end

function request()
  local i = offset + counter * stride
  counter = counter + 1
  local r = R[(i %% #R) + 1]
  return wrk.format(r[1], r[2], H, r[3])
end

function response(status, headers, body)
  seen = seen + 1
  if status ~= EXPECT then
    bad = bad + 1
    if bad <= 3 then statuses = statuses .. status .. " " end
  end
  if seen >= LIMIT then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local wrong, codes = 0, ""
  for _, t in ipairs(threads) do
    wrong = wrong + t:get("bad")
    codes = codes .. t:get("statuses")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%%d,"duration_us":%%d,"socket_errors":%%d,"timeouts":%%d,"wrong_status":%%d,' ..
    '"statuses":"%%s","p50_us":%%d,"p95_us":%%d,"p99_us":%%d,"mean_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write, e.timeout, wrong, codes,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
"""


def script(scenario: Scenario, limit: int) -> Path:
    requests = ",".join(f"{{{_escape(m)},{_escape(p)},{_escape(b) if b is not None else 'nil'}}}"
                        for m, p, b in scenario.requests)
    headers = ",".join(f"[{_escape(k)}]={_escape(v)}" for k, v in scenario.headers.items())
    path = CACHE / "wrk" / f"{scenario.name}.lua"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LUA % {"requests": requests, "headers": headers, "expect": scenario.expect, "limit": limit})
    return path


def run(base: str, scenario: Scenario, connections: int = 1, seconds: float = 5, max_requests: int = 1000,
        timeout: int = 60) -> dict[str, float | int | str]:
    """One bounded wrk run; latencies in ms, throughput in requests per second."""
    threads = min(2, connections)
    per_thread = max(1, max_requests // threads)
    if scenario.once:  # never hand a request out twice, in-flight ones included
        per_thread = max(1, min(per_thread, len(scenario.requests) // threads - connections // threads))
    lua = script(scenario, per_thread)
    argv = [wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", f"{timeout}s", "-s", str(lua), base, "--", str(threads)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout + 30)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(line[6:])
    seconds_taken = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"], "seconds": round(seconds_taken, 2),
        "rps": round(raw["requests"] / seconds_taken, 1) if seconds_taken else 0.0,
        "p50_ms": raw["p50_us"] / 1000, "p95_ms": raw["p95_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": round(raw["mean_us"] / 1000, 2), "max_ms": raw["max_us"] / 1000,
        "errors": raw["socket_errors"] + raw["timeouts"] + raw["wrong_status"],
        "statuses": raw["statuses"].strip(),
    }
