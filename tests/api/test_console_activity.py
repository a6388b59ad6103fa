"""The operators' activity log: sign-ins (and failed ones), and changes to operators, providers,
applications and keys, each written with its change, shown to owners and admins of the tenant."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import httpx

from crm.clock import FrozenClock
from crm.operators import activity
from crm.operators.models import OperatorActivity
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.vocabulary import OperatorAction
from tests.support.console import PASSWORD, csrf_of, make_operator, page_csrf, sign_in


def _client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _entries(runtime: Runtime, tenant_id: str) -> list[OperatorActivity]:
    """The tenant's entries, oldest first, but for the operators the tests' setup made."""
    async with runtime.sessions() as session:
        rows = await activity.newest(session, tenant_id=tenant_id, size=100)
    return [row for row in reversed(rows) if row.actor != activity.COMMAND_LINE]


async def test_sign_ins_and_platform_changes_are_logged_with_who_and_from_where(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    owner_email = await make_operator(runtime, tenant.id, "owner")
    agent_email = await make_operator(runtime, tenant.id, "agent")
    async with _client(app) as owner, _client(app) as stranger:
        assert (await sign_in(stranger, agent_email, "not the password")).status_code == 401
        assert (await sign_in(stranger, "nobody@example.com", PASSWORD)).status_code == 401
        assert (await sign_in(owner, owner_email)).status_code == 303
        csrf = await page_csrf(owner, "/console/operators")
        weak = {"csrf": csrf, "email": "weak@example.com", "role": "agent", "password": "1234"}
        assert (await owner.post("/console/operators", data=weak)).status_code == 400
        made = await owner.post(
            "/console/operators",
            data={"csrf": csrf, "email": "new@example.com", "role": "viewer", "password": PASSWORD},
        )
        assert made.status_code == 303
        saved = await owner.post(
            "/console/integrations/sms",
            data={
                "csrf": csrf,
                "provider": "webhook",
                "webhook.url": "https://sms.example.com/hook",
                "webhook.signing_secret": "s3cret-signing-value-xyz",
            },
        )
        assert saved.status_code == 303, saved.text
        key = await owner.post(
            "/console/keys", data={"csrf": csrf, "kind": "secret", "mode": "test"}
        )
        assert key.status_code == 200
        key_id = re.search(r'action="/console/keys/([^/"]+)/revoke"', key.text)
        assert key_id
        revoked = await owner.post(f"/console/keys/{key_id[1]}/revoke", data={"csrf": csrf})
        assert revoked.status_code == 303
        page = await owner.get("/console/activity")
    assert page.status_code == 200
    logged = [(e.actor, e.action, e.target) for e in await _entries(runtime, tenant.id)]
    assert logged[:2] == [
        (agent_email, "SIGN_IN_FAILED", None),
        (owner_email, "SIGNED_IN", None),
    ]
    # The refused operator (weak password) left no entry; the unknown address has no tenant.
    assert [a for _, a, _ in logged[2:]] == [
        "OPERATOR_CREATED",
        "INTEGRATION_SAVED",
        "KEY_CREATED",
        "KEY_REVOKED",
    ]
    assert logged[2][2] == "new@example.com" and logged[5][2] == key_id[1]
    entries = await _entries(runtime, tenant.id)
    assert entries[0].detail == {"reason": "CONSOLE_SIGN_IN_FAILED"}
    assert entries[1].ip_address and entries[1].operator_id
    assert entries[3].detail == {"provider": "webhook", "changed": "signing_secret, url"}
    text = html.unescape(page.text)
    assert "s3cret-signing-value-xyz" not in text
    assert owner_email in text and "KEY_REVOKED" in text and "INTEGRATION_SAVED" in text


async def test_only_owners_and_admins_see_it_and_only_their_tenants(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other tenant")
        await session.commit()
    foreign = await make_operator(runtime, other.id, "owner")
    async with _client(app) as client:
        assert (await sign_in(client, foreign)).status_code == 303
    for role, status in (("agent", 403), ("viewer", 403), ("admin", 200)):
        email = await make_operator(runtime, tenant.id, role)
        async with _client(app) as client:
            assert (await sign_in(client, email)).status_code == 303
            answer = await client.get("/console/activity")
            assert answer.status_code == status, role
            if status == 200:
                assert email in answer.text and foreign not in answer.text
                assert 'href="/console/activity"' in answer.text
            else:
                home = await client.get("/console/")
                assert 'href="/console/activity"' not in home.text


async def test_pages_go_back_in_time_and_filter_by_action(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    async with runtime.sessions() as session:
        for n in range(55):
            activity.record(
                session,
                runtime.clock,
                tenant_id=tenant.id,
                actor=activity.CLI_ACTOR,
                action=OperatorAction.KEY_CREATED,
                target=f"key-{n:02d}",
            )
        await session.commit()
    email = await make_operator(runtime, tenant.id, "admin")
    async with _client(app) as client:
        assert (await sign_in(client, email)).status_code == 303
        first = await client.get("/console/activity?action=KEY_CREATED")
        assert "SIGNED_IN" not in first.text.split("<tbody>")[1]
        older = re.search(r'href="(/console/activity\?before=[^"]+)"', first.text)
        assert older
        second = await client.get(html.unescape(older[1]))
        assert "Older</a>" not in second.text
        # Every entry once, across the two pages (entries of one millisecond in any order).
        pages = [set(re.findall(r"key-\d\d", answer.text)) for answer in (first, second)]
        assert [len(keys) for keys in pages] == [50, 5]
        assert pages[0] | pages[1] == {f"key-{n:02d}" for n in range(55)}
        # An edited filter shows everything instead of failing.
        assert (await client.get("/console/activity?action=DROP%20TABLE")).status_code == 200


async def test_housekeeping_deletes_entries_past_their_retention(
    runtime: Runtime, tenant: Any
) -> None:
    clock = FrozenClock()
    async with runtime.sessions() as session:
        for action in (OperatorAction.SIGNED_IN, OperatorAction.SIGNED_OUT):
            activity.record(
                session,
                clock,
                tenant_id=tenant.id,
                actor=activity.Actor("ops@example.com"),
                action=action,
            )
            clock.advance(timedelta(days=10).total_seconds())
        await session.commit()
    async with runtime.sessions() as session:
        # At least this tenant's old entry (others' entries written at a frozen time may go too).
        assert await activity.purge(session, clock.now(), retention_days=15) >= 1
        await session.commit()
    assert [e.action for e in await _entries(runtime, tenant.id)] == ["SIGNED_OUT"]


async def test_sign_out_and_ending_a_session_are_logged(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    email = await make_operator(runtime, tenant.id, "agent")
    async with _client(app) as first, _client(app) as second:
        assert (await sign_in(first, email)).status_code == 303
        assert (await sign_in(second, email)).status_code == 303
        account = await first.get("/console/account")
        rows = [row for row in account.text.split("<tr>") if "(this one)" not in row]
        other = next(
            found
            for row in rows
            if (found := re.search(r'action="/console/account/sessions/([^/"]+)/end"', row))
        )
        ended = await first.post(
            f"/console/account/sessions/{other[1]}/end", data={"csrf": csrf_of(account.text)}
        )
        assert ended.status_code == 303
        out = await first.post("/console/logout", data={"csrf": csrf_of(account.text)})
        assert out.status_code == 303
    actions = [(e.action, e.target) for e in await _entries(runtime, tenant.id)]
    assert actions[-2:] == [("SESSION_ENDED", other[1]), ("SIGNED_OUT", None)]
