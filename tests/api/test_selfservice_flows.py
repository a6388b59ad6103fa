"""Self-Service sign-in flows over HTTP: the seed's steps, tokens, sessions, on both backends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from crm.clock import FrozenClock
from crm.identities.models import Session
from tests.support.selfservice import (
    SEED_REGISTER,
    bearer,
    key,
    last_code,
    register_phone,
    sign_in_by_phone,
    unique_phone,
)

V1 = "/self-service/v1"
V2 = "/self-service/v2"


async def test_seed_register_body_verbatim_sends_sms_code_and_validates_by_credentials(
    client: Any, runtime: Any, tenant: Any
) -> None:
    response = await client.post(f"{V1}/contacts/register", json=SEED_REGISTER, headers=key(tenant))
    assert response.status_code == 201, response.text
    sent = response.json()
    assert set(sent) == {"auth_otp", "obfuscated_value"}
    assert sent["obfuscated_value"] == "+357994***23"
    code = await last_code(runtime, tenant.id)

    response = await client.post(
        f"{V1}/contacts/validate-otp",
        json={"credentials": [{"name": "PHONE", "value": "0035799 47823"}], "code": code},
        headers=key(tenant),
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["exp"] == tokens["expiration_date"]
    assert tokens["contact"]["first_name"] == "Ahmed"
    assert tokens["contact"]["is_verified"] is True
    assert "company_name" not in tokens["contact"]  # omitted, never null
    assert tokens["organisations"] == [{"id": tenant.id, "name": tenant.name, "type": "BUSINESS"}]
    assert len(tokens["refresh_token"]) >= 22

    # The profile with the access token only: no api_key header at all.
    contact_id = tokens["contact"]["id"]
    response = await client.get(
        f"{V1}/contacts/{contact_id}", headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 200, response.text
    profile = response.json()
    # The national number beside its country, as written (read back and written again, the same).
    assert profile["phone"]["number"] == "9947823"
    assert profile["phone"]["country_code"] == "CYP"
    assert profile["sms_opt_out"] is True and profile["email_opt_out"] is True
    assert profile["accept_terms_&_conditions"] is True
    assert None not in profile.values()


async def test_sign_in_again_with_otp_request_and_v2_validate(
    client: Any, runtime: Any, tenant: Any
) -> None:
    number = unique_phone()
    await sign_in_by_phone(client, runtime, tenant, number)
    await runtime_set_zero_cooldown(runtime, tenant)
    response = await client.post(
        f"{V1}/contacts/otp",
        json={"send_method": "SMS", "credentials": [{"name": "PHONE", "value": f"357{number}"}]},
        headers=key(tenant),
    )
    assert response.status_code == 200, response.text
    auth_otp = response.json()["auth_otp"]
    code = await last_code(runtime, tenant.id)
    response = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": auth_otp, "code": code},
        headers=key(tenant),
    )
    assert response.status_code == 200, response.text
    assert response.json()["access_token"].count(".") == 2


async def runtime_set_zero_cooldown(runtime: Any, tenant: Any) -> None:
    from tests.support.selfservice import set_policy

    await set_policy(runtime, tenant, otp_resend_cooldown_seconds=0)


@pytest.mark.parametrize(
    "style", ["bearer", "bare", "refresh_token_header", "refresh_token_header_with_access_token"]
)
async def test_refresh_reads_token_from_each_header_without_api_key(
    client: Any, runtime: Any, tenant: Any, style: str
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    old = tokens["refresh_token"]
    headers = {
        "bearer": {"Authorization": f"Bearer {old}"},
        "bare": {"Authorization": old},
        "refresh_token_header": {"refresh_token": old},
        # A client that sends its (expired) access token on every call: the refresh_token
        # header names the refresh token explicitly and wins.
        "refresh_token_header_with_access_token": {
            "refresh_token": old,
            "Authorization": f"Bearer {tokens['access_token']}",
        },
    }[style]
    response = await client.post(f"{V1}/contacts/refresh", headers=headers)
    assert response.status_code == 200, response.text
    renewed = response.json()
    assert renewed["refresh_token"] != old
    assert renewed["contact"]["id"] == tokens["contact"]["id"]
    response = await client.get(
        f"{V2}/contacts/{tokens['contact']['id']}", headers=bearer(renewed["access_token"])
    )
    assert response.status_code == 200


async def test_refresh_without_token_is_401(client: Any) -> None:
    response = await client.post(f"{V2}/contacts/refresh")
    assert response.status_code == 401
    assert response.json()["code"] == "REFRESH_TOKEN_INVALID"
    response = await client.post(f"{V2}/contacts/refresh", headers={"Authorization": "Bearer nope"})
    assert response.json()["code"] == "REFRESH_TOKEN_INVALID"


async def test_refresh_rotates_and_grace_window_returns_same_successor(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    tokens = await sign_in_by_phone(client, runtime, tenant)
    first = tokens["refresh_token"]
    one = (await client.post(f"{V2}/contacts/refresh", headers=bearer(first))).json()
    clock.advance(5)
    again = await client.post(f"{V2}/contacts/refresh", headers=bearer(first))
    assert again.status_code == 200
    assert again.json()["refresh_token"] == one["refresh_token"]

    # After the grace window the replaced token is reuse: the whole session ends.
    clock.advance(runtime.settings.refresh_grace_seconds + 1)
    reused = await client.post(f"{V2}/contacts/refresh", headers=bearer(first))
    assert reused.status_code == 401
    assert reused.json()["code"] == "REFRESH_TOKEN_REUSED"
    successor = await client.post(f"{V2}/contacts/refresh", headers=bearer(one["refresh_token"]))
    assert successor.status_code == 401
    profile = await client.get(
        f"{V2}/contacts/{tokens['contact']['id']}", headers=bearer(one["access_token"])
    )
    assert profile.status_code == 401


async def test_token_older_than_previous_is_reuse_and_revokes(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    t1 = tokens["refresh_token"]
    t2 = (await client.post(f"{V2}/contacts/refresh", headers=bearer(t1))).json()["refresh_token"]
    t3 = (await client.post(f"{V2}/contacts/refresh", headers=bearer(t2))).json()["refresh_token"]
    reused = await client.post(f"{V2}/contacts/refresh", headers=bearer(t1))
    assert reused.json()["code"] == "REFRESH_TOKEN_REUSED"
    assert (await client.post(f"{V2}/contacts/refresh", headers=bearer(t3))).status_code == 401


async def test_concurrent_refreshes_with_same_token_get_same_successor(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    old = tokens["refresh_token"]
    responses = await asyncio.gather(
        *(client.post(f"{V2}/contacts/refresh", headers=bearer(old)) for _ in range(4))
    )
    assert [r.status_code for r in responses] == [200, 200, 200, 200], [r.text for r in responses]
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    assert old not in successors
    follow = await client.post(f"{V2}/contacts/refresh", headers=bearer(successors.pop()))
    assert follow.status_code == 200


async def test_sign_out_kills_access_and_refresh_tokens_at_once(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    contact_id = tokens["contact"]["id"]
    response = await client.post(
        f"{V1}/contacts/{contact_id}/sign_out", headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 204
    profile = await client.get(
        f"{V1}/contacts/{contact_id}", headers=bearer(tokens["access_token"])
    )
    assert profile.status_code == 401
    assert profile.json()["code"] == "SESSION_REVOKED"
    refresh = await client.post(f"{V1}/contacts/refresh", headers=bearer(tokens["refresh_token"]))
    assert refresh.status_code == 401
    async with runtime.sessions() as session:
        row = await session.scalar(select(Session).where(Session.revoked_reason == "SIGNED_OUT"))
        assert row is not None


async def test_another_contacts_id_is_403(client: Any, runtime: Any, tenant: Any) -> None:
    mine = await sign_in_by_phone(client, runtime, tenant)
    theirs = await sign_in_by_phone(client, runtime, tenant)
    response = await client.get(
        f"{V2}/contacts/{theirs['contact']['id']}", headers=bearer(mine["access_token"])
    )
    assert response.status_code == 403
    assert response.json()["code"] == "NOT_OWN_CONTACT"


async def test_register_existing_identity_is_409(client: Any, runtime: Any, tenant: Any) -> None:
    number = unique_phone()
    # Only a proven identity holds its number: an unproven registration blocks nobody.
    await sign_in_by_phone(client, runtime, tenant, number)
    body = {
        **SEED_REGISTER,
        "identity": {"provider": "PHONE", "phone_number": number, "country_code": "CYP"},
    }
    response = await client.post(f"{V1}/contacts/register", json=body, headers=key(tenant))
    assert response.status_code == 409
    assert response.json()["code"] == "IDENTITY_ALREADY_EXISTS"


async def test_same_phone_registers_separately_in_another_tenant(
    client: Any, runtime: Any, tenant: Any
) -> None:
    from crm.tenants import service as tenants

    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other tenant")
        await session.commit()
    number = unique_phone()
    await register_phone(client, tenant, number)
    await register_phone(client, other, number)
