"""SQL statements per request, counted in a separate, instrumented run: the application runs
in this process (Starlette's TestClient) with a SQLAlchemy `before_cursor_execute` listener on
its engine; each scenario is counted after one warm-up request, as the smaller count of two
requests (so caches that fill now and then, such as the organisation chart every 30 s, are not
counted).

    counts(app, engine, login, scenarios)  ->  {scenario: statements per request}
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from bench.load import Scenario


class Counter:
    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self.statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.count += 1
        self.statements.append(statement)


def csrf_of(html: str) -> str:
    found = re.search(r'name="(?:_csrf|csrfmiddlewaretoken)" value="([^"]+)"', html)
    return found.group(1) if found else ""


def count(client: TestClient, counter: Counter, scenario: Scenario, index: int = 0) -> tuple[int, list[str]]:
    method, path, body = scenario.requests[index % len(scenario.requests)]
    headers = {k: v for k, v in scenario.headers.items() if k.lower() != "cookie"}
    counter.count, counter.statements = 0, []
    response = client.request(method, path, content=body.encode() if body else None, headers=headers,
                              follow_redirects=False)
    if response.status_code != scenario.expect:
        raise RuntimeError(f"{scenario.name}: {method} {path} -> {response.status_code}")
    return counter.count, list(counter.statements)
