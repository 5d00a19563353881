"""Record actions in the screens and the API (the `actioned` test pack): buttons, input forms,
bulk runs, warnings shown after saving, highlighted rows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from engine.config import Config
from engine.metadata import load_registry
from engine.runtime.db import make_engine
from engine.runtime.hooks import HookRegistry
from engine.runtime.service import Runtime
from engine.runtime.users import create_user
from engine.ui.app import build_app
from engine.ui.tokens import create_token
from tests.conftest import FIXTURES
from tests.ui.conftest import csrf_of, login

PACKS = [FIXTURES / "sales_basic", FIXTURES / "actioned"]


@pytest.fixture
def setup(db_url: str) -> Iterator[tuple[Runtime, TestClient, int]]:
    registry = load_registry(PACKS)
    runtime = Runtime(registry, make_engine(db_url), hooks=HookRegistry.load(registry.packs, use_entry_points=False))
    runtime.migrate()
    boss = create_user(runtime, "boss", "demo-boss1", roles=("rep",))
    with TestClient(build_app(runtime, Config(language="en", secret_key="k")), follow_redirects=False) as client:
        login(client, "boss", "demo-boss1")
        yield runtime, client, boss.id
    runtime.engine.dispose()


def test_action_buttons_forms_and_bulk(setup: tuple[Runtime, TestClient, int]) -> None:
    runtime, client, boss = setup
    token = csrf_of(client, "/")
    created = client.post("/app/account/new", data={"_csrf": token, "name": "Acme"})
    assert created.status_code == 303
    page = client.get("/").text + client.get(created.headers["location"]).text
    assert "No phone number yet." in page  # the hook's warning, shown after saving
    detail = client.get(created.headers["location"]).text
    assert 'data-test="action-heat"' in detail
    assert 'data-test="action-give_to"' not in detail  # needs assign, which reps lack
    account_id = int(created.headers["location"].rsplit("/", 1)[1])
    ran = client.post(f"/app/account/{account_id}/action/heat", data={"_csrf": token, "_go": "1"})
    assert ran.status_code == 303 and runtime.records().get("account", account_id)["hot"]
    assert "Marked hot." in client.get(ran.headers["location"]).text
    assert 'data-test="action-heat"' not in client.get(f"/app/account/{account_id}").text  # `when` no longer holds
    listed = client.get("/app/account").text
    assert 'class="highlight"' in listed  # hot rows stand out
    others = [runtime.records().create("account", {"name": f"B{i}", "owner": boss, "phone": "010-12345678"})["id"]
              for i in range(2)]
    bulk = client.post("/app/account/bulk", data={"_csrf": token, "action": "act:heat", "ids": [str(i) for i in others]})
    assert bulk.status_code == 303
    assert [runtime.records().get("account", i)["hot"] for i in others] == [True, False]  # the setting caps at 2
    assert "failed" in client.get("/app/account").text


def test_action_input_form_and_api(setup: tuple[Runtime, TestClient, int]) -> None:
    runtime, _, boss = setup
    lead = create_user(runtime, "lead", "demo-lead1", roles=("lead",))
    account = runtime.records().create("account", {"name": "Acme", "owner": boss, "phone": "010-12345678"})
    with TestClient(build_app(runtime, Config(language="en", secret_key="k")), follow_redirects=False) as client:
        login(client, "lead", "demo-lead1")
        detail = client.get(f"/app/account/{account['id']}").text
        assert f'href="/app/account/{account["id"]}/action/give_to"' in detail
        form = client.get(f"/app/account/{account['id']}/action/give_to")
        assert form.status_code == 200 and 'name="user"' in form.text and "Give this account away?" in form.text
        token = csrf_of(client, "/")
        missing = client.post(f"/app/account/{account['id']}/action/give_to",
                              data={"_csrf": token, "_go": "1", "note": "hi"})
        assert missing.status_code == 422 and "This field is required." in missing.text and 'value="hi"' in missing.text
        done = client.post(f"/app/account/{account['id']}/action/give_to",
                           data={"_csrf": token, "_go": "1", "user": str(lead.id), "note": "hi"})
        assert done.status_code == 303 and done.headers["location"].startswith("/app/deal/")
        assert runtime.records().get("account", account["id"])["owner"] == lead.id

        bearer = {"Authorization": f"Bearer {create_token(runtime, lead.id, 't')}", "Content-Type": "application/json"}
        bad = client.post(f"/api/v1/account/{account['id']}/actions/give_to", content=json.dumps({"note": "x" * 40}),
                          headers=bearer)
        assert bad.status_code == 422 and set(bad.json()["fields"]) == {"user", "note"}
        ok = client.post(f"/api/v1/account/{account['id']}/actions/give_to", content=json.dumps({"user": boss}),
                         headers=bearer)
        assert ok.status_code == 200 and ok.json()["message"] == "Given away."
        assert ok.json()["open"]["url"].startswith("/api/v1/deal/")
        assert client.post(f"/api/v1/account/{account['id']}/actions/nope", content="{}",
                           headers=bearer).status_code == 404
        # a rep may not assign: the API says 403, not 404, as the rep can read the account
        rep_bearer = {**bearer, "Authorization": f"Bearer {create_token(runtime, boss, 'r')}"}
        assert client.post(f"/api/v1/account/{account['id']}/actions/give_to", content=json.dumps({"user": boss}),
                           headers=rep_bearer).status_code == 403
