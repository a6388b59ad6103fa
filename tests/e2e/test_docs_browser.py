"""The browser tier: /docs and /redoc, opened in Debian's Chromium against a real `crm serve`,
render the operations with every request to a host other than loopback aborted.

Skips with the reason when Chromium (/usr/bin/chromium, `apt-get install chromium`; another path
in CRM_TEST_CHROMIUM) or the Playwright package is missing; Playwright's own browser downloads
are never used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crm.migrate import upgrade
from crm.settings import Settings
from tests.support.server import TEST_SECRET, CrmProcess

CHROMIUM = Path(os.environ.get("CRM_TEST_CHROMIUM", "/usr/bin/chromium"))
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_OUTSIDE_URL = re.compile(r"'https?://(?!127\.0\.0\.1[:/]|localhost[:/])")
RENDER_TIMEOUT_MS = 30_000  # the bound on each wait for the page to show something


def _browser_or_skip() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "browser tier skipped: the playwright package is not installed (pip install -e '.[test]')"
        print(reason)
        pytest.skip(reason)
    if not CHROMIUM.exists():
        reason = f"browser tier skipped: no Chromium at {CHROMIUM} (apt-get install -y chromium)"
        print(reason)
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrmProcess]:
    _browser_or_skip()
    tmp_path = tmp_path_factory.mktemp("docs-browser")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None))  # type: ignore[call-arg]
    process = CrmProcess.serve(tmp_path, url).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def page_factory(server: CrmProcess) -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Visit:
    """One page with every non-loopback request aborted and recorded, and its console errors."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.loaded: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in LOOPBACK:
            self.loaded.append(url)
            route.continue_()
        else:
            self.outside.append(url)
            route.abort("internetdisconnected")

    def own_files_blocked(self) -> list[str]:
        """Console reports of the page's policy blocking something of this server's own (its
        blocking another host, such as ReDoc's footer logo from cdn.redoc.ly, is the point)."""
        return [
            e for e in self.errors if "Content Security Policy" in e and not _OUTSIDE_URL.search(e)
        ]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(page_factory: Any) -> Iterator[Visit]:
    v = Visit(page_factory)
    try:
        yield v
    finally:
        v.close()


def test_swagger_ui_shows_the_operations_offline(server: CrmProcess, visit: Visit) -> None:
    visit.page.goto(f"{server.base_url}/docs", timeout=RENDER_TIMEOUT_MS)
    # Swagger UI shows each operation's summary and, as configured, its operationId.
    visit.page.get_by_text("registerContact", exact=True).first.wait_for(timeout=RENDER_TIMEOUT_MS)
    body = visit.page.inner_text("body")
    for text in ("createContact", "validateOtp", "Register a contact", "Create a contact"):
        assert text in body, text
    assert visit.outside == [], visit.outside
    assert any(url.endswith("/openapi.json") for url in visit.loaded), visit.loaded
    assert not visit.own_files_blocked(), visit.errors


def test_redoc_shows_the_operations_offline(server: CrmProcess, visit: Visit) -> None:
    visit.page.goto(f"{server.base_url}/redoc", timeout=RENDER_TIMEOUT_MS)
    # Each operation is a heading in ReDoc's middle column (the side menu starts collapsed).
    visit.page.locator("h2", has_text="Create a contact").first.wait_for(timeout=RENDER_TIMEOUT_MS)
    body = visit.page.inner_text("body")
    for text in ("Register a contact", "Validate a one-time code (v2 spelling)"):
        assert text in body, text
    assert visit.outside == [], visit.outside
    assert any(url.endswith("/openapi.json") for url in visit.loaded), visit.loaded
    assert not visit.own_files_blocked(), visit.errors
