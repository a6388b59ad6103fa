"""Per-tenant message templates: saved, validated, previewed, and used for the codes sent."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crm.identities.signing import ensure_signing_key
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.support.selfservice import (
    key,
    last_code,
    messages,
    register_email_password,
    register_phone,
)

BASE = "/backoffice/v1/templates"
SMS = "{tenant}: your code is {code}, valid for {duration}."
EMAIL = {
    "subject": "Sign in to {tenant}",
    "text": "Welcome back to {tenant}!\n\nYour code: {code}\nValid for {duration}.",
}


def sk(tenant: CreatedTenant, mode: str = "test") -> dict[str, str]:
    return {"api_key": tenant.keys[f"secret_{mode}"]}


async def _put(
    client: httpx.AsyncClient, tenant: CreatedTenant, path: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.put(f"{BASE}/{path}", json=body, headers=sk(tenant))


async def test_an_sms_code_is_sent_in_the_tenants_words_and_still_signs_in(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    await ensure_signing_key(runtime.engine, runtime.secret, runtime.clock)
    saved = await _put(client, tenant, "OTP/en", {"sms": SMS})
    assert saved.status_code == 201, saved.text
    assert (saved.json()["purpose"], saved.json()["language"], saved.json()["sms"]) == (
        "OTP",
        "en",
        SMS,
    )
    sent = await register_phone(client, tenant)
    body = (await messages(runtime, tenant.id, "OTP"))[-1].body_text
    code = await last_code(runtime, tenant.id)
    assert body == f"{tenant.name}: your code is {code}, valid for 5 minutes."
    validated = await client.post(
        "/self-service/v2/contacts/validate_otp",
        json={"auth_otp": sent["auth_otp"], "code": code},
        headers=key(tenant),
    )
    assert validated.status_code == 200, validated.text
    # Replaced (200), then deleted: the built-in words again.
    assert (await _put(client, tenant, "OTP/en", {"sms": "Code {code}"})).status_code == 200
    assert (await client.delete(f"{BASE}/OTP/en", headers=sk(tenant))).status_code == 204
    assert (await client.get(f"{BASE}/OTP/en", headers=sk(tenant))).status_code == 404
    await register_phone(client, tenant)
    body = (await messages(runtime, tenant.id, "OTP"))[-1].body_text
    assert body.endswith("Don't share it.")


async def test_an_email_code_uses_the_tenants_subject_text_and_html(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    html = '<p class="x">Code <b>{code}</b> for {tenant} &amp; co</p>'
    saved = await _put(client, tenant, "OTP/en", {**EMAIL, "html": html})
    assert saved.status_code == 201, saved.text
    await register_email_password(client, tenant)
    sent = [m for m in await messages(runtime, tenant.id) if m.channel == "EMAIL"][-1]
    code = await last_code(runtime, tenant.id)
    assert sent.subject == f"Sign in to {tenant.name}"
    assert sent.body_text == (
        f"Welcome back to {tenant.name}!\n\nYour code: {code}\nValid for 5 minutes.\n"
    )
    assert sent.body_html == f'<p class="x">Code <b>{code}</b> for {tenant.name} &amp; co</p>'
    # Without HTML of its own, the HTML is made from the text, values escaped.
    assert (await _put(client, tenant, "OTP/en", EMAIL)).status_code == 200
    await register_email_password(client, tenant)
    sent = [m for m in await messages(runtime, tenant.id) if m.channel == "EMAIL"][-1]
    assert sent.body_html is not None and "<strong>" in sent.body_html
    assert "Welcome back to" in sent.body_html


async def test_a_language_falls_back_to_the_primary_tag_and_english(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    assert (await _put(client, tenant, "OTP/pt-BR", {"sms": "Codigo {code}"})).json()[
        "language"
    ] == "pt-br"
    listed = (await client.get(BASE, headers=sk(tenant))).json()
    assert [(t["purpose"], t["language"]) for t in listed] == [("OTP", "pt-br")]
    # Other tenants and the other mode see none of it.
    assert (await client.get(BASE, headers=sk(tenant, "live"))).json() == []


async def test_templates_are_the_tenants_own(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    assert (await _put(client, tenant, "OTP/en", {"sms": SMS})).status_code == 201
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other templates tenant")
        await session.commit()
    assert (await client.get(BASE, headers=sk(other))).json() == []
    assert (await client.get(f"{BASE}/OTP/en", headers=sk(other))).status_code == 404
    assert (await client.delete(f"{BASE}/OTP/en", headers=sk(other))).status_code == 404
    await register_phone(client, other)
    body = (await messages(runtime, other.id, "OTP"))[-1].body_text
    assert body.endswith("Don't share it.")
    public = await client.get(BASE, headers={"api_key": tenant.keys["public_test"]})
    assert public.status_code == 403


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("OTP/en", {"sms": "{code} at {shop}"}, 400, "TEMPLATE_UNKNOWN_PLACEHOLDER"),
        ("OTP/en", {**EMAIL, "text": "Hi {name}, {code}"}, 400, "TEMPLATE_UNKNOWN_PLACEHOLDER"),
        ("OTP/en", {"sms": "{tenant}: sign in now"}, 400, "TEMPLATE_CODE_MISSING"),
        ("OTP/en", {**EMAIL, "text": "Your code expires soon."}, 400, "TEMPLATE_CODE_MISSING"),
        ("OTP/en", {**EMAIL, "html": "<p>no code</p>"}, 400, "TEMPLATE_CODE_MISSING"),
        (
            "PASSWORD_RESET/en",
            {"subject": "Reset", "text": "Reset your password"},
            400,
            "TEMPLATE_CODE_MISSING",
        ),
        ("OTP/en", {"sms": "{code} " + "x" * 160}, 400, "TEMPLATE_SMS_TOO_LONG"),
        ("OTP/en", {"sms": "{code} ваш код " + "ж" * 60}, 400, "TEMPLATE_SMS_TOO_LONG"),
        ("OTP/en", {**EMAIL, "subject": "Code {code}"}, 400, "TEMPLATE_SECRET_IN_SUBJECT"),
        ("OTP/en", {"sms": "{code!r}"}, 400, "TEMPLATE_SYNTAX_INVALID"),
        ("OTP/en", {"sms": "{code.__class__}"}, 400, "TEMPLATE_SYNTAX_INVALID"),
        ("OTP/en", {"sms": "{0} {code}"}, 400, "TEMPLATE_SYNTAX_INVALID"),
        ("OTP/en", {"sms": "{code:>99999}"}, 400, "TEMPLATE_SYNTAX_INVALID"),
        ("OTP/en", {"sms": "{code} {"}, 400, "TEMPLATE_SYNTAX_INVALID"),
        ("OTP/en", {}, 400, "TEMPLATE_INVALID"),
        ("OTP/en", {"subject": "Sign in"}, 400, "TEMPLATE_INVALID"),
        ("OTP/en", {"sms": "   "}, 400, "TEMPLATE_INVALID"),
        ("OTP/en", {**EMAIL, "subject": "Two\nlines"}, 400, "TEMPLATE_INVALID"),
        ("OTP/en", {**EMAIL, "text": "{code}" + "x" * 10_001}, 400, "TEMPLATE_INVALID"),
        ("EMAIL_VERIFICATION/en", {"sms": "{token}"}, 400, "TEMPLATE_INVALID"),
        ("OTP/en", {"sms": "{code}", "colour": "red"}, 400, "INVALID_REQUEST"),
        ("WELCOME/en", {"sms": "{code}"}, 404, "TEMPLATE_PURPOSE_UNKNOWN"),
        ("OTP/english-please", {"sms": "{code}"}, 400, "TEMPLATE_LANGUAGE_INVALID"),
        ("OTP/e", {"sms": "{code}"}, 400, "TEMPLATE_LANGUAGE_INVALID"),
    ],
)
async def test_bad_templates_are_refused_with_a_stable_code(
    client: httpx.AsyncClient,
    tenant: CreatedTenant,
    path: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    answer = await _put(client, tenant, path, body)
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    assert (await client.get(BASE, headers=sk(tenant))).json() == []
    # A preview of the same words is refused the same way.
    preview = await client.post(f"{BASE}/{path}/preview", json=body, headers=sk(tenant))
    if body:
        assert (preview.status_code, preview.json()["code"]) == (status, code)


async def test_an_sms_that_fits_only_with_the_name_shortened_is_accepted(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    # 160 characters with an 8-character name: as the built-in words, the name gives way.
    text = "{code} {tenant} " + "y" * (160 - len("123456 ") - 9 - len("10 minutes") - 1)
    text += " {duration}"
    answer = await _put(client, tenant, "OTP/en", {"sms": text})
    assert answer.status_code == 201, answer.text
    shown = (await client.post(f"{BASE}/OTP/en/preview", headers=sk(tenant))).json()
    assert shown["sms_segments"] == 1


async def test_preview_shows_given_saved_or_built_in_words(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    built_in = (await client.post(f"{BASE}/OTP/en/preview", headers=sk(tenant))).json()
    assert built_in["sms"].startswith("123456 is your")
    assert built_in["subject"] == f"Your {tenant.name} sign-in code"
    given = await client.post(
        f"{BASE}/OTP/el/preview", json={"sms": "Κωδικός {code}"}, headers=sk(tenant)
    )
    assert given.status_code == 200, given.text
    assert given.json()["sms"] == "Κωδικός 123456"
    assert given.json()["subject"] == f"Your {tenant.name} sign-in code"  # email: built-in
    assert (await client.get(BASE, headers=sk(tenant))).json() == []  # not saved
    await _put(client, tenant, "PASSWORD_RESET/en", {"subject": "Reset", "text": "Go: {token}"})
    saved = (await client.post(f"{BASE}/PASSWORD_RESET/en/preview", headers=sk(tenant))).json()
    assert saved["sms"] is None
    assert saved["text"] == "Go: https://example.com/verify?token=SAMPLE-TOKEN\n"
    assert 'href="https://example.com/verify?token=SAMPLE-TOKEN"' in saved["html"]
