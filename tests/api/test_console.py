"""The console in-process: sign-in, sessions, CSRF, roles and what each page may show."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from crm.clock import FrozenClock
from crm.contacts import service as contacts
from crm.contacts.contact_fields import ContactFields
from crm.runtime import Runtime
from tests.support.console import (
    PASSWORD,
    csrf_of,
    make_operator,
    page_csrf,
    sign_in,
    signed_in_client,
)


async def _contact(runtime: Runtime, tenant_id: str, mode: str = "test") -> Any:
    async with runtime.sessions() as session:
        created = await contacts.create(
            session,
            runtime.clock,
            tenant_id=tenant_id,
            mode=mode,
            fields=ContactFields(first_name="Ann", last_name="Lee"),
            source="BACK_OFFICE",
            actor="test",
        )
        await session.commit()
    return created


async def _exists(runtime: Runtime, tenant_id: str, ref: str) -> bool:
    async with runtime.sessions() as session:
        try:
            await contacts.get_by_ref(session, tenant_id, "test", ref)
        except Exception:
            return False
    return True


async def test_pages_need_a_session_and_carry_security_headers(client: Any) -> None:
    answer = await client.get("/console/contacts?q=x")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/contacts"
    login = await client.get("/console/login")
    assert login.status_code == 200
    csp = login.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert login.headers["x-content-type-options"] == "nosniff"
    assert login.headers["referrer-policy"] == "same-origin"
    assert "<script" not in login.text and "style=" not in login.text
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie


async def test_sign_in_sets_a_new_session_and_sign_out_ends_it(
    client: Any, runtime: Runtime, tenant: Any
) -> None:
    email = await make_operator(runtime, tenant.id, "agent")
    client.cookies.set("crm_console", "attacker-chosen-value", path="/console")
    answer = await sign_in(client, email)
    assert answer.status_code == 303
    token = answer.cookies.get("crm_console")
    assert token and token != "attacker-chosen-value"
    home = await client.get("/console/")
    assert home.status_code == 200 and email in home.text
    account = await client.get("/console/account")
    assert "(this one)" in account.text
    logout = await client.post("/console/logout", data={"csrf": csrf_of(home.text)})
    assert logout.status_code == 303 and logout.headers["location"] == "/console/login"
    # The old token is dead server-side, whatever the browser keeps.
    client.cookies.set("crm_console", token, path="/console")
    assert (await client.get("/console/")).status_code == 303


async def test_wrong_password_and_unknown_email_answer_alike(
    client: Any, runtime: Runtime, tenant: Any
) -> None:
    email = await make_operator(runtime, tenant.id, "viewer")
    wrong = await sign_in(client, email, "not the password at all")
    unknown = await sign_in(client, "nobody-here@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "The email, password or authentication code is not right." in wrong.text
    assert "crm_console=" not in wrong.headers.get("set-cookie", "")


async def test_login_without_its_csrf_token_is_refused(
    client: Any, runtime: Runtime, tenant: Any
) -> None:
    email = await make_operator(runtime, tenant.id, "viewer")
    await client.get("/console/login")
    answer = await client.post("/console/login", data={"email": email, "password": PASSWORD})
    assert answer.status_code == 403
    assert "crm_console=" not in answer.headers.get("set-cookie", "")


async def test_lockout_after_failed_sign_ins_then_it_ends(
    client: Any, runtime: Runtime, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    monkeypatch.setattr(runtime.settings, "console_lock_threshold", 3)
    email = await make_operator(runtime, tenant.id, "admin")
    for _ in range(3):
        assert (await sign_in(client, email, "wrong password here")).status_code == 401
    locked = await sign_in(client, email)  # the right password, but locked
    assert locked.status_code == 403
    assert "locked" in locked.text
    clock.advance(runtime.settings.console_lock_seconds + 1)
    assert (await sign_in(client, email)).status_code == 303


async def test_sessions_end_when_idle_or_too_old(
    app: Any, runtime: Runtime, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    idle = runtime.settings.console_session_idle_seconds
    async with signed_in_client(app, runtime, tenant.id, "viewer") as client:
        clock.advance(idle - 5)
        assert (await client.get("/console/contacts")).status_code == 200  # use keeps it alive
        clock.advance(idle - 5)
        assert (await client.get("/console/contacts")).status_code == 200
        clock.advance(idle + 1)
        assert (await client.get("/console/contacts")).status_code == 303
    async with signed_in_client(app, runtime, tenant.id, "viewer") as client:
        steps = runtime.settings.console_session_absolute_seconds // (idle - 60) + 1
        for _ in range(steps):
            clock.advance(idle - 60)
            await client.get("/console/contacts")
        assert (await client.get("/console/contacts")).status_code == 303


async def test_a_change_without_the_right_csrf_token_is_403_and_changes_nothing(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    async with signed_in_client(app, runtime, tenant.id, "owner") as client:
        form = {"id": "csrf-1", "first_name": "Eve"}
        assert (await client.post("/console/contacts", data=form)).status_code == 403
        wrong = {**form, "csrf": "x" * 43}
        assert (await client.post("/console/contacts", data=wrong)).status_code == 403
        assert not await _exists(runtime, tenant.id, "csrf-1")
        ok = {**form, "csrf": await page_csrf(client)}
        assert (await client.post("/console/contacts", data=ok)).status_code == 303
        assert await _exists(runtime, tenant.id, "csrf-1")


async def test_an_agent_cannot_reach_keys_integrations_or_erase(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    contact = await _contact(runtime, tenant.id)
    async with signed_in_client(app, runtime, tenant.id, "agent") as client:
        csrf = await page_csrf(client)
        for path in ("/console/applications", "/console/integrations", "/console/operators"):
            answer = await client.get(path)
            assert answer.status_code == 403, path
            assert "CONSOLE_PERMISSION_DENIED" in answer.text
        refused = [
            ("/console/keys", {"kind": "secret", "mode": "live"}),
            ("/console/applications", {"name": "Sneaky"}),
            ("/console/integrations/sms", {"provider": "console"}),
            (f"/console/contacts/{contact.id}/erase", {"confirm": contact.code}),
        ]
        for path, data in refused:
            assert (await client.post(path, data={**data, "csrf": csrf})).status_code == 403, path
        assert await _exists(runtime, tenant.id, contact.id)
        page = await client.get(f"/console/contacts/{contact.id}")
        assert "Erase this contact" not in page.text
        # What an agent may do: edit, recorded with the operator as actor.
        edit = await client.post(
            f"/console/contacts/{contact.id}/edit",
            data={"csrf": csrf, "first_name": "Anna", "last_name": "Lee"},
        )
        assert edit.status_code == 303
        page = await client.get(f"/console/contacts/{contact.id}")
        assert "UPDATED" in page.text and "(operator)" in page.text


async def test_a_viewer_changes_nothing(app: Any, runtime: Runtime, tenant: Any) -> None:
    contact = await _contact(runtime, tenant.id)
    async with signed_in_client(app, runtime, tenant.id, "viewer") as client:
        csrf = await page_csrf(client)
        attempts = [
            ("/console/contacts", {"id": "viewer-1", "first_name": "V"}),
            (f"/console/contacts/{contact.id}/edit", {"first_name": "Changed"}),
            (
                f"/console/contacts/{contact.id}/identities",
                {"provider": "EMAIL", "email": "v@example.com"},
            ),
            (f"/console/contacts/{contact.id}/sessions/end-all", {}),
        ]
        for path, data in attempts:
            assert (await client.post(path, data={**data, "csrf": csrf})).status_code == 403, path
        page = await client.get(f"/console/contacts/{contact.id}")
        assert page.status_code == 200 and "Changed" not in page.text
        assert "Add credentials" not in page.text
    assert not await _exists(runtime, tenant.id, "viewer-1")


async def test_another_tenants_contact_is_404(app: Any, runtime: Runtime, tenant: Any) -> None:
    from crm.tenants import service as tenants
    from tests.conftest import _letters

    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, f"Other {_letters(6)}")
        await session.commit()
    theirs = await _contact(runtime, other.id)
    async with signed_in_client(app, runtime, tenant.id, "owner") as client:
        assert (await client.get(f"/console/contacts/{theirs.id}")).status_code == 404
        csrf = await page_csrf(client)
        erase = await client.post(
            f"/console/contacts/{theirs.id}/erase", data={"csrf": csrf, "confirm": theirs.code}
        )
        assert erase.status_code == 404
    assert await _exists(runtime, other.id, theirs.id)


async def test_erase_needs_the_typed_code(app: Any, runtime: Runtime, tenant: Any) -> None:
    contact = await _contact(runtime, tenant.id)
    async with signed_in_client(app, runtime, tenant.id, "admin") as client:
        csrf = await page_csrf(client)
        path = f"/console/contacts/{contact.id}/erase"
        wrong = await client.post(path, data={"csrf": csrf, "confirm": "nope"})
        assert wrong.status_code == 400 and f"type {contact.code} to confirm" in wrong.text
        assert await _exists(runtime, tenant.id, contact.id)
        assert (
            await client.post(path, data={"csrf": csrf, "confirm": contact.code})
        ).status_code == 303
    assert not await _exists(runtime, tenant.id, contact.id)


async def test_form_errors_show_the_apis_messages_beside_their_fields(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    async with signed_in_client(app, runtime, tenant.id, "agent") as client:
        csrf = await page_csrf(client)
        answer = await client.post(
            "/console/contacts", data={"csrf": csrf, "id": "x" * 37, "first_name": "A"}
        )
        assert answer.status_code == 400
        assert 'id="id-error"' in answer.text and 'aria-invalid="true"' in answer.text
        api = await client.post(
            "/backoffice/v1/contacts",
            headers={"api_key": tenant.keys["secret_test"]},
            json={"id": "x" * 37, "first_name": "A"},
        )
        (detail,) = [d for d in api.json()["details"] if d["field"] == "id"]
        shown = re.search(r'<p class="field-error" id="id-error">([^<]*)</p>', answer.text)[1]
        assert html.unescape(shown) == detail["message"]


async def test_secrets_and_codes_stay_out_of_pages_the_role_may_not_see(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    secret = "s3cret-signing-value-0123456789"
    async with signed_in_client(app, runtime, tenant.id, "admin") as admin:
        csrf = await page_csrf(admin, "/console/integrations")
        saved = await admin.post(
            "/console/integrations/sms",
            data={
                "csrf": csrf,
                "provider": "webhook",
                "webhook.url": "https://sms.example.com/hook",
                "webhook.signing_secret": secret,
            },
        )
        assert saved.status_code == 303, saved.text
        page = await admin.get("/console/integrations")
        assert "webhook" in page.text and secret not in page.text and secret[-4:] not in page.text
        created = await admin.post(
            "/console/keys", data={"csrf": csrf, "kind": "secret", "mode": "live"}
        )
        key = re.search(r'<code class="key">(sk_live_[^<]+)</code>', created.text)[1]
        later = await admin.get("/console/applications")
        assert key not in later.text and key[:12] in later.text
        # A test-mode code: readable to an admin, never to an agent.
        register = await admin.post(
            "/self-service/v2/contacts/register",
            headers={"api_key": tenant.keys["public_test"]},
            json={"identity": {"provider": "EMAIL", "email": "codes@example.com"}},
        )
        assert register.status_code in (200, 201), register.text
        messages = await admin.get("/console/messages")
        assert "is your" in messages.text or "code" in messages.text.lower()
        codes = re.findall(r"\b\d{6}\b", messages.text)
        assert codes
    async with signed_in_client(app, runtime, tenant.id, "agent") as agent:
        shown = await agent.get("/console/messages")
        assert shown.status_code == 200 and "codes@example.com" in shown.text
        assert not any(code in shown.text for code in codes)
        assert secret not in (await agent.get("/console/contacts")).text


async def test_static_files_are_versioned_and_cached_long(client: Any) -> None:
    login = await client.get("/console/login")
    href = re.search(r'href="(/console/static/[0-9a-f]{12}/console\.css)"', login.text)[1]
    answer = await client.get(href)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/css")
    assert "immutable" in answer.headers["cache-control"]
    stale = href.replace(href.split("/")[3], "0" * 12)
    assert (await client.get(stale)).status_code == 404


async def test_every_page_carries_the_headers_and_no_inline_script_or_style(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    contact = await _contact(runtime, tenant.id)
    async with signed_in_client(app, runtime, tenant.id, "owner") as client:
        for path in (
            "/console/",
            "/console/contacts?q=Ann",
            f"/console/contacts/{contact.code}",
            "/console/integrations",
            "/console/applications",
            "/console/messages",
            "/console/operators",
            "/console/account",
            "/console/activity",
        ):
            answer = await client.get(path)
            assert answer.status_code == 200, path
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["cache-control"] == "no-store"
            assert "<script" not in answer.text and " style=" not in answer.text, path
        overview = await client.get("/console/")
        assert overview.text.count("<svg") == 4


async def test_the_mode_switch_shows_one_mode_at_a_time(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    live = await _contact(runtime, tenant.id, mode="live")
    async with signed_in_client(app, runtime, tenant.id, "agent") as client:
        assert (await client.get(f"/console/contacts/{live.id}")).status_code == 404
        csrf = await page_csrf(client)
        switched = await client.post("/console/mode", data={"csrf": csrf, "mode": "live"})
        assert switched.status_code == 303
        page = await client.get(f"/console/contacts/{live.id}")
        assert page.status_code == 200 and "LIVE mode" in page.text


async def test_owners_manage_operators_and_a_disabled_one_is_signed_out(
    app: Any, runtime: Runtime, tenant: Any
) -> None:
    async with signed_in_client(app, runtime, tenant.id, "owner") as owner:
        csrf = await page_csrf(owner, "/console/operators")
        weak = await owner.post(
            "/console/operators",
            data={
                "csrf": csrf,
                "email": "new@example.com",
                "role": "agent",
                "password": "12345678",
            },
        )
        assert weak.status_code == 400 and 'id="password-error"' in weak.text
        email = await make_operator(runtime, tenant.id, "agent")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as agent:
            assert (await sign_in(agent, email)).status_code == 303
            listed = await owner.get("/console/operators")
            operator_id = re.search(
                r'action="/console/operators/([^/]+)/disable"[^>]*>.{0,400}?Disable '
                + re.escape(email),
                listed.text,
                re.S,
            )[1]
            disabled = await owner.post(
                f"/console/operators/{operator_id}/disable", data={"csrf": csrf}
            )
            assert disabled.status_code == 303
            assert (await agent.get("/console/contacts")).status_code == 303
            assert (await sign_in(agent, email)).status_code == 401


async def test_operator_rules_are_the_services(runtime: Runtime, tenant: Any) -> None:
    from crm.errors import AppError
    from crm.operators import service as operators
    from crm.operators.activity import CLI_ACTOR

    async with runtime.sessions() as session:
        for email, role, password, code in (
            ("a@example.com", "boss", PASSWORD, "OPERATOR_ROLE_INVALID"),
            ("not-an-email", "agent", PASSWORD, "INVALID_REQUEST"),
            ("b@example.com", "agent", "password", "PASSWORD_TOO_WEAK"),
            ("b@example.com", "agent", "b@example.com", "PASSWORD_TOO_WEAK"),
        ):
            with pytest.raises(AppError) as caught:
                await operators.create_operator(
                    session,
                    runtime.clock,
                    tenant_id=tenant.id,
                    email=email,
                    role=role,
                    password=password,
                    actor=CLI_ACTOR,
                )
            assert caught.value.code == code, (email, role, password)


async def test_an_operator_turns_on_totp_and_then_needs_the_code(
    app: Any, runtime: Runtime, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm.security import totp

    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    email = await make_operator(runtime, tenant.id, "admin")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await sign_in(client, email)).status_code == 303
        account = await client.get("/console/account")
        secret = re.search(r'name="totp_secret" value="([A-Z2-7]+)"', account.text)[1]
        csrf = csrf_of(account.text)
        wrong = await client.post(
            "/console/account/totp", data={"csrf": csrf, "totp_secret": secret, "code": "000000"}
        )
        assert wrong.status_code == 400 and 'id="code-error"' in wrong.text
        right = totp.code_at(secret, clock.now().timestamp())
        on = await client.post(
            "/console/account/totp", data={"csrf": csrf, "totp_secret": secret, "code": right}
        )
        assert on.status_code == 303
        assert "On: signing in asks" in (await client.get("/console/account")).text
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await sign_in(client, email)).status_code == 401  # no code
        clock.advance(60)
        form = await client.get("/console/login")
        answer = await client.post(
            "/console/login",
            data={
                "csrf": csrf_of(form.text),
                "email": email,
                "password": PASSWORD,
                "code": totp.code_at(secret, clock.now().timestamp()),
            },
        )
        assert answer.status_code == 303
        # The same code again (within its window) is refused: a code is good once.
        form = await client.get("/console/login")
        replay = await client.post(
            "/console/login",
            data={
                "csrf": csrf_of(form.text),
                "email": email,
                "password": PASSWORD,
                "code": totp.code_at(secret, clock.now().timestamp()),
            },
        )
        assert replay.status_code == 401


async def test_owners_must_enrol_totp_when_the_setting_says_so(
    app: Any, runtime: Runtime, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "console_owner_totp_required", True)
    async with signed_in_client(app, runtime, tenant.id, "owner") as owner:
        sent = await owner.get("/console/contacts")
        assert sent.status_code == 303 and sent.headers["location"].startswith("/console/account")
        csrf = csrf_of((await owner.get("/console/account")).text)
        refused = await owner.post("/console/contacts", data={"csrf": csrf, "first_name": "X"})
        assert refused.status_code == 403 and "OPERATOR_TOTP_REQUIRED" in refused.text
    async with signed_in_client(app, runtime, tenant.id, "admin") as admin:
        assert (await admin.get("/console/contacts")).status_code == 200


async def test_an_agent_marks_an_identity_verified(app: Any, runtime: Runtime, tenant: Any) -> None:
    from crm.identities import service as identities

    contact = await _contact(runtime, tenant.id)
    async with signed_in_client(app, runtime, tenant.id, "agent") as client:
        csrf = await page_csrf(client)
        added = await client.post(
            f"/console/contacts/{contact.id}/identities",
            data={"csrf": csrf, "provider": "EMAIL", "email": "vouch@example.com"},
        )
        assert added.status_code == 303
        async with runtime.sessions() as session:
            (identity,) = await identities.list_identities(session, contact.pk)
        assert identity.verified_at is None
        marked = await client.post(
            f"/console/contacts/{contact.id}/identities/{identity.id}/verify", data={"csrf": csrf}
        )
        assert marked.status_code == 303
        page = await client.get(f"/console/contacts/{contact.id}")
        assert "IDENTITY_VERIFIED" in page.text and ">Mark verified<" not in page.text


async def test_hostile_forms_are_refused_cleanly(client: Any) -> None:
    await client.get("/console/login")
    many = "&".join(f"f{i}=x" for i in range(500))
    headers = {"content-type": "application/x-www-form-urlencoded"}
    answer = await client.post("/console/login", content=many, headers=headers)
    assert answer.status_code == 403
    binary = await client.post("/console/login", content=b"\xff\xfe\x00", headers=headers)
    assert binary.status_code in (400, 403)
    away = await client.get("/console/login?next=//evil.example.com/")
    assert 'value="/console/"' in away.text
