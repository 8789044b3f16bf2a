"""Fixtures of the browser tests: the built UI, a real service, the fake sales systems, headless Chromium.

The browser tests need `ui/dist` (make ui) and Debian's Chromium (make test installs both). Without
them the tests are skipped, unless FLOWLINK_REQUIRE_BROWSER=1 (set by `make test`) makes that a failure.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from connectors.sdk.sandbox import SandboxServer
from tests.browser.fake_sales import FakeSales
from tests.browser.service import ROOT, Service

CHROMIUM = Path(os.environ.get("FLOWLINK_CHROMIUM", "/usr/bin/chromium"))
DIST = ROOT / "ui" / "dist" / "index.html"
SCREENSHOTS = ROOT / "docs" / "screenshots"


def _missing() -> str | None:
    if not DIST.exists():
        return f"{DIST} is not built (make ui)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (make test installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Skip (or fail under make test) when the UI build, Chromium or playwright is missing."""
    problem = _missing()
    if problem:
        if os.environ.get("FLOWLINK_REQUIRE_BROWSER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def fake_sales() -> Iterator[tuple[FakeSales, SandboxServer]]:
    """The fake CRM and robot, served on 127.0.0.1."""
    fake = FakeSales()
    with SandboxServer(fake.app) as server:
        yield fake, server


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, browser_ready: None) -> Iterator[Service]:
    """A real `flowlink serve`, started once for the browser tests (each test uses its own flows and connections)."""
    svc = Service(tmp_path_factory.mktemp("service")).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def browser(browser_ready: None) -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright (never Playwright's own downloaded browsers).

    Module-scoped on purpose: Playwright's sync API runs an event loop on the main thread while
    it is started, which would break every asyncio test collected after the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: object, service: Service) -> Iterator[object]:
    """A fresh page (1440x900, zh-CN) on the service; console errors are collected in `page.errors`."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", base_url=service.url)  # type: ignore[attr-defined]
    context.set_default_timeout(15_000)
    pg = context.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()
