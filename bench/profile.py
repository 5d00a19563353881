"""Where a scenario's time goes in our server: py-spy samples `crm serve --workers 1` while wrk
drives one scenario, and the samples are summed per function (own time and time inside).

    python -m bench.profile --db sqlite --customers 100000 list:admin detail:sales

py-spy and pyinstrument are installed into bench/.cache/tools (not the project's dependencies):
    .venv/bin/pip install --target bench/.cache/tools py-spy==0.4.3 pyinstrument==5.1.3
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys

from bench import dataset, load, scenarios, servers
from bench.common import ADMIN_USER, CACHE, SALES_USER

PY_SPY = CACHE / "tools" / "bin" / "py-spy"


def summarize(raw: str, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inside[frame] += n
    interesting = [(f, n) for f, n in inside.most_common() if "/engine/" in f or "jinja2" in f.lower()
                   or "sqlalchemy" in f or "sqlite" in f or "psycopg" in f or "starlette" in f]
    out = [f"{total} samples", "-- most time inside (engine, templates, database):"]
    out += [f"{100 * n / total:5.1f}%  {f}" for f, n in interesting[:top]]
    out.append("-- most own time:")
    out += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("scenarios", nargs="+")
    args = parser.parse_args()
    ds = dataset.prepare(args.db, args.customers)
    facts = scenarios.facts(ds.url)
    server = servers.ours(ds.url, 8709, 1)
    server.start()
    try:
        sales, admin = scenarios.sign_in_ours(server.base, SALES_USER), scenarios.sign_in_ours(server.base, ADMIN_USER)
        chosen = {s.name: s for s in scenarios.ours(sales, admin, facts)}
        worker = server.workers()[0]
        for name in args.scenarios:
            out = CACHE / f"profile-{name.replace(':', '-')}.txt"
            spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(worker), "--format", "raw", "--rate", "250",
                                    "--duration", str(args.seconds + 1), "--output", str(out), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            result = load.run(server.base, chosen[name], connections=1, seconds=args.seconds, max_requests=100000)
            spy.wait(timeout=args.seconds + 30)
            print(f"===== {name}: {result['requests']} requests, p50 {result['p50_ms']} ms")
            print(summarize(out.read_text()))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
