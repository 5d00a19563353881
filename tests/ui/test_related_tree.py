"""Related tabs drawn as trees (`tree:`) and rows highlighted by filters (`highlight:`), in the
list screen and in related tabs (the `treed` test pack), and their validation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from starlette.testclient import TestClient

from engine.config import Config
from engine.metadata import load_registry, validate
from engine.runtime.db import make_engine
from engine.runtime.hooks import HookRegistry
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from engine.runtime.users import create_user
from engine.ui.app import build_app
from engine.ui.views.records import nested
from tests.conftest import FIXTURES
from tests.ui.conftest import login

PACKS = [FIXTURES / "sales_basic", FIXTURES / "treed"]


@pytest.fixture
def setup(db_url: str) -> Iterator[tuple[Runtime, TestClient, int]]:
    registry = load_registry(PACKS)
    runtime = Runtime(registry, make_engine(db_url), hooks=HookRegistry.load(registry.packs, use_entry_points=False))
    runtime.migrate()
    rep = create_user(runtime, "rep1", "demo-rep1-pass", roles=("rep",))
    with TestClient(build_app(runtime, Config(language="en", secret_key="k")), follow_redirects=False) as client:
        login(client, "rep1", "demo-rep1-pass")
        yield runtime, client, rep.id
    runtime.engine.dispose()


def rows_of(page: str) -> list[tuple[str, str, str]]:
    """(class, data-depth, first link text) of each row of the related table."""
    table = page.split('data-test="related"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr class="([^"]*)"(?: data-depth="(\d+)")?><td[^>]*>(?:<span class="branch"[^>]*>└</span>)?'
                      r'<a href="[^"]+">([^<]+)</a>', table)


def test_decision_tree_tab_nests_rows_and_highlights_overdue(setup: tuple[Runtime, TestClient, int]) -> None:
    runtime, client, rep = setup
    records = runtime.records()
    account = records.create("account", {"name": "Acme", "owner": rep})["id"]
    other = records.create("account", {"name": "Other", "owner": rep})["id"]
    past, future = date.today() - timedelta(days=3), date.today() + timedelta(days=3)

    def person(name: str, up: int | None = None, **values: object) -> int:
        return int(records.create("stakeholder", {"name": name, "account": account, "reports_to": up, **values})["id"])

    ceo = person("CEO Zhang", due=future)
    cto = person("CTO Li", ceo, due=past)  # overdue
    person("Engineer Wang", cto, due=past, done=True)  # past but done: not highlighted
    person("CFO Zhao", ceo)
    outsider = records.create("stakeholder", {"name": "Outsider", "account": other})["id"]
    person("Reports outside", outsider)  # parent not on this account: shown as a root
    page = client.get(f"/app/account/{account}?tab=r1")
    assert page.status_code == 200
    assert 'class="grid tree"' in page.text
    assert rows_of(page.text) == [
        (" depth-0", "0", "CEO Zhang"),  # siblings keep the list's sort (name)
        (" depth-1", "1", "CFO Zhao"),
        ("highlight depth-1", "1", "CTO Li"),
        (" depth-2", "2", "Engineer Wang"),
        (" depth-0", "0", "Reports outside"),
    ]


def test_list_highlight_by_filters(setup: tuple[Runtime, TestClient, int]) -> None:
    runtime, client, rep = setup
    records = runtime.records()
    account = records.create("account", {"name": "Acme", "owner": rep})["id"]
    today = runtime.now().date()  # the CRM's time zone, not the test machine's
    late = records.create("stakeholder", {"name": "Late", "account": account, "due": today - timedelta(days=1)})
    records.create("stakeholder", {"name": "On time", "account": account, "due": today})
    rows = records.query("stakeholder", ListQuery(highlight=runtime.registry.entity("stakeholder").list.highlight)).rows
    assert {r["name"]: r["_highlight"] for r in rows} == {"Late": True, "On time": False}
    listed = client.get("/app/stakeholder").text
    assert listed.count('class="highlight"') == 1
    assert f'href="/app/stakeholder/{late["id"]}" class="row-link">Late<' in listed.split('class="highlight"', 1)[1]
    assert "_highlight" not in client.get("/api/v1/stakeholder", headers={"Accept": "application/json"}).text


def test_highlight_on_a_hidden_field_marks_nothing(setup: tuple[Runtime, TestClient, int]) -> None:
    runtime, _, rep = setup
    records = runtime.records()
    account = records.create("account", {"name": "Acme", "owner": rep})["id"]
    records.create("stakeholder", {"name": "Late", "account": account, "due": runtime.now().date() - timedelta(days=1)})
    # A filter the query cannot build (here: an unknown field, as for a field hidden from the user)
    # highlights nothing rather than failing the page.
    rows = records.query("stakeholder", ListQuery(highlight=["secret eq 1"])).rows
    assert [r["_highlight"] for r in rows] == [False]


def test_nested_survives_cycles() -> None:
    rows = [{"id": 1, "up": 2}, {"id": 2, "up": 1}, {"id": 3, "up": None}, {"id": 4, "up": 4}]
    assert [(r["id"], r["_depth"]) for r in nested(rows, "up")] == [(3, 0), (4, 0), (1, 0), (2, 1)]


def test_tree_and_highlight_are_validated() -> None:
    errors = [str(e) for e in validate([FIXTURES / "sales_basic", FIXTURES / "broken_tree"])]
    assert len(errors) == 4, errors
    assert any("home[0].roles[0]: unknown role 'nobody'" in e for e in errors)
    assert any("layouts.list.highlight: 'name' must be a boolean field" in e for e in errors)
    assert any("layouts.related[0].tree: 'deal.account' is not a reference to 'deal' itself" in e for e in errors)
    assert any("layouts.related[0].highlight[1]: bad filter 'nope eq 1': unknown field 'nope'" in e for e in errors)


def test_home_cards_can_be_for_some_roles(setup: tuple[Runtime, TestClient, int]) -> None:
    runtime, client, _ = setup
    home = client.get("/").text  # rep1 is a rep
    assert "Late stakeholders (reps)" in home and "Late stakeholders (everyone)" in home
    assert "Late stakeholders (viewers)" not in home
    create_user(runtime, "both", "demo-both-pass", roles=("rep", "viewer"))
    with TestClient(build_app(runtime, Config(language="en", secret_key="k")), follow_redirects=False) as both:
        login(both, "both", "demo-both-pass")
        assert both.get("/").text.count("Late stakeholders (") == 3  # one of the card's roles is enough
