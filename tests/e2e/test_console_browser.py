"""The console in Debian's Chromium against a real `crm serve`: an agent's journey (sign in,
create a contact with its own id and code, add an email credential, see the change in the audit
trail with the operator as actor, end the contact's session), an admin's erase, and an admin
configuring a webhook SMS provider whose test message reaches a local sink.

One server process for the module; a screenshot of the page is written to tmp/artifacts (or
CRM_TEST_ARTIFACTS) when a step fails. Skips like the docs browser tier without Chromium.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm.migrate import upgrade
from crm.operators import service as operators
from crm.operators.activity import CLI_ACTOR
from crm.runtime import Runtime
from crm.settings import Settings
from crm.tenants import service as tenants
from tests.e2e.test_docs_browser import CHROMIUM, _browser_or_skip
from tests.support.http_sink import HttpSink
from tests.support.server import TEST_SECRET, CrmProcess

PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(os.environ.get("CRM_TEST_ARTIFACTS", "tmp/artifacts"))
WAIT_MS = 15_000


async def _seed(url: str) -> dict[str, Any]:
    runtime = Runtime.build(Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None))  # type: ignore[call-arg]
    try:
        async with runtime.sessions() as session:
            tenant = await tenants.create_tenant(session, runtime.clock, "Browser Shop")
            for role in ("agent", "admin"):
                await operators.create_operator(
                    session,
                    runtime.clock,
                    tenant_id=tenant.id,
                    email=f"{role}@shop.example.com",
                    role=role,
                    password=PASSWORD,
                    actor=CLI_ACTOR,
                )
            await session.commit()
    finally:
        await runtime.close()
    return {"id": tenant.id, "keys": tenant.keys}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _browser_or_skip()
    tmp_path = tmp_path_factory.mktemp("console-browser")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None))  # type: ignore[call-arg]
    seeded = asyncio.run(_seed(url))
    process = CrmProcess.serve(tmp_path, url).start()
    try:
        yield {**seeded, "server": process, "base": process.base_url}
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser(shop: dict[str, Any]) -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def screenshot_on_failure(page: Any, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def _page(browser: Any, **options: Any) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(**options)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return context, page, problems


def _sign_in(page: Any, base: str, email: str, start: str = "/console/") -> None:
    page.goto(base + start)
    assert "/console/login" in page.url  # unauthenticated pages send you to sign in
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(base + start) + r"$"))


def test_an_agent_and_an_admin_look_after_a_contact(browser: Any, shop: dict[str, Any]) -> None:
    base = shop["base"]
    context, page, problems = _page(browser, viewport={"width": 360, "height": 780})
    with screenshot_on_failure(page, "agent-journey"):
        _sign_in(page, base, "agent@shop.example.com", "/console/contacts")
        # No sideways scrolling at 360 px: wide tables scroll inside their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= 362
        form = page.locator("form[action='/console/contacts'][method='post']")
        form.get_by_label("Your id").fill("ext-77")
        form.get_by_label("Code").fill("CRM-77")
        form.get_by_label("First name").fill("Maria")
        form.get_by_label("Last name").fill("Georgiou")
        form.get_by_label("Email").fill("maria@example.com")
        form.get_by_role("button", name="Create contact").click()
        page.wait_for_url(base + "/console/contacts/ext-77?done=Contact%20created.")
        assert page.locator("#contact-code").inner_text() == "CRM-77"

        adding = page.locator("form[action$='/identities']")
        adding.get_by_label("Email (for Email)").fill("maria@example.com")
        adding.get_by_label("Password (optional, Email only)").fill("a long and unusual phrase")
        adding.get_by_label("Mark verified").check()
        adding.get_by_role("button", name="Add credentials").click()
        page.wait_for_url(re.compile(r".*done=Credentials"))
        audit = page.locator("#audit")
        added = audit.locator("tr", has_text="IDENTITY_ADDED")
        assert "agent@shop.example.com" in added.inner_text()

        # Maria signs in through the Self-Service API; the agent ends that session.
        signed = httpx.post(
            f"{base}/self-service/v2/contacts/authenticate",
            headers={"api_key": shop["keys"]["public_test"]},
            json={
                "provider": "EMAIL",
                "username": "maria@example.com",
                "password": "a long and unusual phrase",
            },
            timeout=10,
        )
        assert signed.status_code == 200, signed.text
        page.goto(base + "/console/contacts/CRM-77")  # by code, too
        assert page.locator("tr.contact-session").count() == 1
        page.get_by_role("button", name=re.compile("^End session")).click()
        page.wait_for_url(re.compile(r".*done=Session"))
        assert page.locator("tr.contact-session").count() == 0
        assert (
            "agent@shop.example.com" in audit.locator("tr", has_text="SESSION_REVOKED").inner_text()
        )
        refreshed = httpx.post(
            f"{base}/self-service/v2/contacts/refresh",
            headers={"Authorization": signed.json()["refresh_token"]},
            timeout=10,
        )
        assert refreshed.status_code == 401
        # An agent has no erase.
        assert page.get_by_role("button", name="Erase this contact").count() == 0
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(base + "/console/login")
    assert not problems, problems
    context.close()

    context, page, problems = _page(browser)
    with screenshot_on_failure(page, "admin-erase"):
        _sign_in(page, base, "admin@shop.example.com", "/console/contacts/ext-77")
        page.get_by_label("Type the code CRM-77 to confirm").fill("CRM-77")
        page.get_by_role("button", name="Erase this contact").click()
        page.wait_for_url(re.compile(r".*/console/contacts\?done=.*erased"))
        assert not problems, problems
        gone = page.goto(base + "/console/contacts/ext-77")
        assert gone.status == 404 and "Not found" in page.content()
    context.close()


def test_an_admin_sends_a_test_sms_through_a_webhook(browser: Any, shop: dict[str, Any]) -> None:
    base = shop["base"]
    context, page, problems = _page(browser)
    with HttpSink() as sink, screenshot_on_failure(page, "admin-integrations"):
        # By keyboard alone: Tab reaches the skip link first, Enter submits the sign-in form.
        page.goto(base + "/console/login")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.get_by_label("Email").fill("admin@shop.example.com")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(base + "/console/")
        page.get_by_role("link", name="Platform → Integrations").click()
        sms = page.locator("section", has=page.locator("h2#ch-SMS"))
        sms.get_by_label("Provider").select_option("webhook")
        sms.get_by_label("url").fill(sink.url_for("/sms"))
        sms.get_by_label("signing secret").fill("a-signing-secret-0123456789")
        sms.get_by_role("button", name="Save SMS provider").click()
        page.wait_for_url(re.compile(r".*done=SMS"))
        assert page.locator("#sms-provider").inner_text() == "webhook"
        assert "a-signing-secret-0123456789" not in page.content()
        sms = page.locator("section", has=page.locator("h2#ch-SMS"))
        sms.get_by_label("Send a test message to").fill("+35799123456")
        sms.get_by_role("button", name="Send a test message").click()
        answer = page.locator("#sms-test-answer")
        answer.wait_for()
        assert "webhook: accepted the message" in answer.inner_text()
        received = sink.wait_for_requests_sync(1, timeout=10)
        assert received[0].json()["to"] == "+35799123456"
        assert received[0].header("X-CRM-Signature")
        # The activity log shows the sign-in, the saved provider and the test, not the secret.
        page.get_by_role("link", name="Activity").click()
        page.wait_for_url(base + "/console/activity")
        log = page.locator("table").inner_text()
        for action in ("SIGNED_IN", "INTEGRATION_SAVED", "TEST_MESSAGE_SENT"):
            assert action in log
        assert "admin@shop.example.com" in log and "a-signing-secret" not in page.content()
        page.get_by_label("What").select_option("TEST_MESSAGE_SENT")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r".*action=TEST_MESSAGE_SENT"))
        assert "INTEGRATION_SAVED" not in page.locator("tbody").inner_text()
    assert not problems, problems
    context.close()
