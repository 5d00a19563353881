"""Fixtures of the browser tests: one real `crm serve` over a demo database for the session, one
headless Debian Chromium, a fresh browser context (cookies) per test, and screenshots of every
screen a test visits under test-output/screenshots/<test>-<step>.png."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.server import ROOT, CrmServer, ServerError, chromium_problem, launch

OUTPUT = ROOT / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000

Shot = Callable[..., Path]


@pytest.fixture(scope="session")
def crm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrmServer]:
    server = CrmServer(tmp_path_factory.mktemp("crm-server"))
    try:
        server.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


INDUSTRY_PACKS = ("project_sales", "membership_retail", "field_service")


@pytest.fixture(scope="session")
def industry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrmServer]:
    """A second real server: the standard demo, then the industry packs installed onto it with
    `crm pack install` and their demo data loaded with `crm demo --pack`."""
    packs = tuple(ROOT / "packs" / "industry_templates" / name for name in INDUSTRY_PACKS)
    server = CrmServer(tmp_path_factory.mktemp("crm-industry-server"), install=packs)
    try:
        server.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = chromium_problem()
    if problem:
        pytest.fail(problem, pytrace=False)  # fail, never skip: `make test` installs Chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """new_page(width=..., height=...) -> a page in a fresh context (its own cookies)."""
    contexts: list[Any] = []
    problems: list[str] = []

    def make(width: int = VIEWPORT["width"], height: int = VIEWPORT["height"]) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text else None)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems, "the browser reported problems:\n" + "\n".join(problems)


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """shot(page, "step") -> a full-page screenshot as test-output/screenshots/<test>-<nn>-<step>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^\w.-]+", "_", request.node.name)
    for old in SCREENSHOTS.glob(f"{test}-*.png"):
        old.unlink()
    counter = iter(range(1, 100))

    def take(page: Any, step: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{test}-{next(counter):02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
