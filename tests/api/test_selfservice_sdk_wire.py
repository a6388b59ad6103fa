"""What a client generated from CRM.COM's v2 specification sends, and must get answered."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from crm.tenants import service as tenants
from tests.support.selfservice import (
    PASSWORD,
    bearer,
    key,
    last_code,
    last_token,
    messages,
    register_email_password_proven,
    register_phone,
    set_policy,
    unique_phone,
    verify_added_identity,
)

V2 = "/self-service/v2"
ROOT = Path(__file__).resolve().parents[2]


async def _other_tenant(runtime: Any) -> Any:
    async with runtime.sessions() as session:
        created = await tenants.create_tenant(session, runtime.clock, "Other Ltd")
        await session.commit()
    return created


# --- links carry no api_key ----------------------------------------------------------------


async def test_forgotten_password_change_needs_no_api_key(
    client: Any, runtime: Any, tenant: Any
) -> None:
    address, _tokens = await register_email_password_proven(client, runtime, tenant)
    sent = await client.post(
        f"{V2}/contacts/forgot_password", json={"username": address}, headers=key(tenant)
    )
    assert sent.status_code == 204
    token = await last_token(runtime, tenant.id, "PASSWORD_RESET")
    changed = await client.post(
        f"{V2}/contacts/change_password",
        json={"token": token, "password": "a brand new passphrase 42"},
    )
    assert changed.status_code == 204, changed.text
    signed = await client.post(
        f"{V2}/contacts/authenticate",
        json={"provider": "EMAIL", "username": address, "password": "a brand new passphrase 42"},
        headers=key(tenant),
    )
    assert signed.status_code == 200, signed.text
    # Still single use without a key.
    again = await client.post(
        f"{V2}/contacts/change_password", json={"token": token, "password": PASSWORD + " 2"}
    )
    assert again.status_code == 400 and again.json()["code"] == "RESET_TOKEN_INVALID"


async def test_a_key_sent_with_a_link_token_must_be_of_its_tenant_and_mode(
    client: Any, runtime: Any, tenant: Any
) -> None:
    address, _tokens = await register_email_password_proven(client, runtime, tenant)
    await client.post(
        f"{V2}/contacts/forgot_password", json={"username": address}, headers=key(tenant)
    )
    token = await last_token(runtime, tenant.id, "PASSWORD_RESET")
    other = await _other_tenant(runtime)
    body = {"token": token, "password": "a brand new passphrase 42"}
    for wrong in (other.keys["public_test"], tenant.keys["public_live"]):
        refused = await client.post(
            f"{V2}/contacts/change_password", json=body, headers={"api_key": wrong}
        )
        assert refused.status_code == 401 and refused.json()["code"] == "TOKEN_KEY_MISMATCH"
    secret = await client.post(
        f"{V2}/contacts/change_password", json=body, headers={"api_key": tenant.keys["secret_test"]}
    )
    assert secret.status_code in (401, 403)
    bogus = await client.post(
        f"{V2}/contacts/change_password", json=body, headers={"api_key": "pk_test_nope"}
    )
    assert bogus.status_code == 401
    # The refusals consumed nothing: the owner's link still works, with the right key.
    ok = await client.post(f"{V2}/contacts/change_password", json=body, headers=key(tenant))
    assert ok.status_code == 204, ok.text


async def test_verify_email_needs_no_api_key_and_checks_one_sent(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, email_password_registration="tokens_first")
    address = "verify.me@example.com"
    registered = await client.post(
        f"{V2}/contacts/register",
        json={"identification": {"provider": "EMAIL", "email": address, "password": PASSWORD}},
        headers=key(tenant),
    )
    assert registered.status_code == 201, registered.text
    token = await last_token(runtime, tenant.id, "EMAIL_VERIFICATION")
    other = await _other_tenant(runtime)
    mismatch = await client.get(
        f"{V2}/contacts/verify_email",
        params={"token": token},
        headers={"api_key": other.keys["public_test"]},
    )
    assert mismatch.status_code == 401 and mismatch.json()["code"] == "TOKEN_KEY_MISMATCH"
    verified = await client.get(f"{V2}/contacts/verify_email", params={"token": token})
    assert verified.status_code == 200, verified.text
    again = await client.get(f"{V2}/contacts/verify_email", params={"token": token})
    assert again.status_code == 400
    unknown = await client.get(f"{V2}/contacts/verify_email", params={"token": "x" * 40})
    assert unknown.status_code == 400


# --- required-but-irrelevant members arrive empty -------------------------------------------


async def test_authenticate_reads_empty_members_as_absent(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, otp_resend_cooldown_seconds=0)
    address, _tokens = await register_email_password_proven(client, runtime, tenant)
    signed = await client.post(
        f"{V2}/contacts/authenticate",
        json={
            "provider": "EMAIL",
            "username": address,
            "password": PASSWORD,
            "token": "",
            "phone": {"number": "", "country_code": ""},
            "mac_address": "",
        },
        headers=key(tenant),
    )
    assert signed.status_code == 200, signed.text
    number = unique_phone()
    await register_phone(client, tenant, number)
    asked = await client.post(
        f"{V2}/contacts/authenticate",
        json={
            "provider": "PHONE",
            "username": "",
            "password": "",
            "token": "",
            "phone": {"number": number, "country_code": "CYP"},
            "mac_address": "",
        },
        headers=key(tenant),
    )
    assert asked.status_code == 200, asked.text
    assert set(asked.json()) == {"auth_otp", "obfuscated_value"}
    assert await last_code(runtime, tenant.id)
    # A phone whose number is empty is absent: an EMAIL sign-in without username still fails.
    missing = await client.post(
        f"{V2}/contacts/authenticate",
        json={"provider": "EMAIL", "username": "", "password": "", "phone": {"number": ""}},
        headers=key(tenant),
    )
    assert missing.status_code == 400


async def test_refresh_and_sign_out_need_no_api_key(client: Any, runtime: Any, tenant: Any) -> None:
    _address, tokens = await register_email_password_proven(client, runtime, tenant)
    refreshed = await client.post(f"{V2}/contacts/refresh", headers=bearer(tokens["refresh_token"]))
    assert refreshed.status_code == 200, refreshed.text


# --- make run ------------------------------------------------------------------------------


def test_make_run_sets_the_public_url_from_host_and_port() -> None:
    dry = subprocess.run(
        ["make", "-n", "run", "HOST=127.0.0.1", "PORT=8101"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    serve = [line for line in dry.stdout.splitlines() if " serve " in line]
    assert serve and "CRM_PUBLIC_URL=http://127.0.0.1:8101 " in serve[0], dry.stdout


async def test_forgotten_password_by_a_national_phone_uses_the_default_country(
    client: Any, runtime: Any, tenant: Any
) -> None:
    address, tokens = await register_email_password_proven(client, runtime, tenant)
    number = unique_phone()
    added = await client.post(
        f"{V2}/contacts/{tokens['contact']['id']}/identities",
        json={"provider": "PHONE", "phone": {"number": number, "country_code": "CYP"}},
        headers=bearer(tokens["access_token"]),
    )
    assert added.status_code == 201, added.text
    proven = await verify_added_identity(client, runtime, tenant, tokens, added.json()["id"])
    assert proven.status_code == 204, proven.text

    async def resets() -> int:
        return len(await messages(runtime, tenant.id, "PASSWORD_RESET"))

    asked = await client.post(
        f"{V2}/contacts/forgot_password", json={"username": number}, headers=key(tenant)
    )
    assert asked.status_code == 204 and await resets() == 0
    await set_policy(runtime, tenant, default_country="CYP")
    asked = await client.post(
        f"{V2}/contacts/forgot_password", json={"username": number}, headers=key(tenant)
    )
    assert asked.status_code == 204 and await resets() == 1
    [mail] = await messages(runtime, tenant.id, "PASSWORD_RESET")
    assert mail.recipient == address
