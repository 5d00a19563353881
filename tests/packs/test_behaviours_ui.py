"""The standard CRM pack's behaviours over HTTP: the generated screens (action buttons, input
forms, views, home cards) and the JSON API (`POST /api/v1/{entity}/{id}/actions/{key}`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from starlette.testclient import TestClient

from tests.packs.conftest import CRM

Web = Callable[[str], TestClient]
Api = Callable[[str], Callable[..., httpx.Response]]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text[:2000]
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else response


# -- 1. mnemonic ------------------------------------------------------------------------------------

def test_mnemonic_over_the_api_and_the_list_search(crm: CRM, web: Web, api: Api) -> None:
    call = api("sales1")
    created = ok(call("POST", "/api/v1/customer", {"name": "杭州恒通机械有限公司"}), 201)
    assert created["mnemonic"] == "HZHTJXYXGS"
    found = ok(call("GET", "/api/v1/customer?q=HZHT"))
    assert [r["id"] for r in found["data"]] == [created["id"]]
    page = web("sales1").get("/app/customer?q=hzht")
    assert page.status_code == 200 and "杭州恒通机械有限公司" in page.text
    refused = call("PATCH", f"/api/v1/customer/{created['id']}", {"mnemonic": "X", "version": created["version"]})
    assert refused.status_code == 422
