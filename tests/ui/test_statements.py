"""SQL statements per request: identifying the user, the list page and the detail page each
cost a fixed, small number of statements, whatever the page size (counted with a SQLAlchemy
`before_cursor_execute` listener on the served application's engine)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from engine.runtime.service import Runtime
from engine.runtime.users import USERS_TTL, User, active_users, create_user, users_changed


class Statements:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(" ".join(statement.split()))

    def __len__(self) -> int:
        return len(self.seen)


@contextmanager
def counting(runtime: Runtime) -> Iterator[Statements]:
    statements = Statements()
    sa.event.listen(runtime.engine, "before_cursor_execute", statements)
    try:
        yield statements
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", statements)


def fewest(runtime: Runtime, client: TestClient, path: str, tries: int = 3) -> Statements:
    """The statements of the cheapest of a few identical requests: the customisation layer's
    revision is checked at most once a second and the organisation chart is read every 30 s,
    so one request now and then carries one of those as well."""
    best: Statements | None = None
    for _ in range(tries):
        with counting(runtime) as statements:
            response = client.get(path)
        assert response.status_code == 200, response.text[:300]
        if best is None or len(statements) < len(best):
            best = statements
    assert best is not None
    return best


@pytest.fixture
def data(crm: Runtime, people: dict[str, User]) -> dict[str, int]:
    records = crm.records()
    mine = records.bulk_create("customer", [{"name": f"华信科技{i:03d}", "owner": people["sales1"].id}
                                            for i in range(250)])
    records.create("contact", {"customer": mine[0], "name": "张伟", "owner": people["sales1"].id})
    records.create("opportunity", {"name": "ERP 项目", "customer": mine[0], "owner": people["sales1"].id})
    return {"customer": mine[0]}


def test_identifying_the_user_is_one_statement(crm: Runtime, client_for: Callable[..., TestClient],
                                                people: dict[str, User]) -> None:
    client = client_for("sales1")
    statements = fewest(crm, client, "/settings")
    session_reads = [s for s in statements.seen if "crm_session" in s]
    assert len(session_reads) == 1
    assert "crm_user" in session_reads[0] and "crm_user_role" in session_reads[0]
    assert not [s for s in statements.seen if "crm_session" not in s and "FROM crm_user" in s]


def test_list_page_statements_are_few_and_constant(crm: Runtime, client_for: Callable[..., TestClient],
                                                   data: dict[str, int]) -> None:
    client = client_for("sales1")
    counts = {}
    for limit in (20, 50, 200):
        statements = fewest(crm, client, f"/app/customer?limit={limit}")
        counts[limit] = len(statements)
        # session + user + roles (one), saved views (one), the capped count and the page
        assert len(statements) == 4, statements.seen
        assert not [s for s in statements.seen if s.startswith("SELECT crm_user.id, crm_user.display_name")]
    assert len(set(counts.values())) == 1


def test_detail_page_statements(crm: Runtime, client_for: Callable[..., TestClient], data: dict[str, int]) -> None:
    client = client_for("sales1")
    statements = fewest(crm, client, f"/app/customer/{data['customer']}")
    # session + user + roles (one), the record, the counts of all 8 related tabs (one), and which
    # of the record's conditional actions apply (one)
    assert len(statements) == 4, statements.seen
    assert not [s for s in statements.seen if s.startswith("SELECT crm_user.id, crm_user.display_name")]


def test_user_pickers_are_cached_and_refreshed_when_users_change(crm: Runtime, people: dict[str, User],
                                                                  client_for: Callable[..., TestClient]) -> None:
    client = client_for("admin")
    assert f'value="{people["sales1"].id}">Sales1<' in client.get("/app/customer").text
    with counting(crm) as statements:
        first = active_users(crm)
        again = active_users(crm)
    assert first == again and len(statements) == 0  # the list page above filled the cache
    newcomer = create_user(crm, "sales3", "demo-sales3", display_name="Newcomer", roles=("salesperson",))
    assert {"id": newcomer.id, "display_name": "Newcomer"} in active_users(crm)  # create_user cleared it
    assert ">Newcomer<" in client.get("/app/customer").text  # the owner filter and the bulk bar
    users = crm.table("crm_user")
    with crm.engine.begin() as conn:  # a change made elsewhere (another process, the database)
        conn.execute(sa.update(users).where(users.c.id == newcomer.id).values(is_active=False))
    assert ">Newcomer<" in client.get("/app/customer").text  # within USERS_TTL: still the cached list
    users_changed(crm)
    assert ">Newcomer<" not in client.get("/app/customer").text
    assert USERS_TTL <= 60


def test_session_user_keeps_roles_and_refuses_inactive_and_expired(crm: Runtime, people: dict[str, User]) -> None:
    from datetime import timedelta

    from engine.ui import sessions

    multi = create_user(crm, "multi", "demo-multi1", roles=("salesperson", "service_agent"))
    token = sessions.start_session(crm, multi, "127.0.0.1")
    user = sessions.session_user(crm, token)
    assert user is not None and user.id == multi.id and sorted(user.roles) == ["salesperson", "service_agent"]
    bare = create_user(crm, "bare", "demo-bare1")
    user = sessions.session_user(crm, sessions.start_session(crm, bare, None))
    assert user is not None and user.roles == () and not user.is_admin
    admin = sessions.session_user(crm, sessions.start_session(crm, people["admin"], None))
    assert admin is not None and admin.is_admin and admin.roles == ("admin",)
    assert sessions.session_user(crm, "no-such-token") is None
    table, users = crm.table("crm_session"), crm.table("crm_user")
    with crm.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == sessions.digest(token))
                     .values(expires_at=crm.now() - timedelta(seconds=1)))
    assert sessions.session_user(crm, token) is None
    token = sessions.start_session(crm, multi, None)
    with crm.engine.begin() as conn:
        conn.execute(sa.update(users).where(users.c.id == multi.id).values(is_active=False))
    assert sessions.session_user(crm, token) is None
