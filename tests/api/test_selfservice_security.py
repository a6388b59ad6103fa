"""Access-token and input hardening: wrong tenant, forged algorithms, bad input, profile rules."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt as pyjwt

from crm.tenants import service as tenants
from tests.support.selfservice import SEED_REGISTER, bearer, key, sign_in_by_phone

V1 = "/self-service/v1"
V2 = "/self-service/v2"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_token_of_tenant_a_with_key_of_tenant_b_is_401(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Tenant B")
        await session.commit()
    url = f"{V2}/contacts/{tokens['contact']['id']}"
    headers = {**bearer(tokens["access_token"]), "api_key": other.keys["public_test"]}
    response = await client.get(url, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_KEY_MISMATCH"
    live = {**bearer(tokens["access_token"]), "api_key": tenant.keys["public_live"]}
    assert (await client.get(url, headers=live)).status_code == 401
    same = {**bearer(tokens["access_token"]), **key(tenant)}
    assert (await client.get(url, headers=same)).status_code == 200
    refresh = await client.post(
        f"{V2}/contacts/refresh",
        headers={**bearer(tokens["refresh_token"]), "api_key": other.keys["public_test"]},
    )
    assert refresh.status_code == 401


async def test_alg_none_and_hs256_with_public_key_are_refused(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    claims = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    header = pyjwt.get_unverified_header(tokens["access_token"])
    url = f"{V2}/contacts/{tokens['contact']['id']}"

    none_token = f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': header['kid']})}.{_b64(claims)}."
    response = await client.get(url, headers=bearer(none_token))
    assert response.status_code == 401

    jwks = (await client.get("/.well-known/jwks.json")).json()
    public_x = next(k["x"] for k in jwks["keys"] if k["kid"] == header["kid"])
    import hashlib
    import hmac

    signing_input = (
        f"{_b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': header['kid']})}.{_b64(claims)}"
    )
    mac = hmac.new(public_x.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    response = await client.get(url, headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"


async def test_expired_access_token_is_401(
    client: Any, runtime: Any, tenant: Any, monkeypatch: Any
) -> None:
    from crm.clock import FrozenClock

    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    tokens = await sign_in_by_phone(client, runtime, tenant)
    url = f"{V2}/contacts/{tokens['contact']['id']}"
    # Used once while valid, so the second call meets the remembered verification.
    assert (await client.get(url, headers=bearer(tokens["access_token"]))).status_code == 200
    clock.advance(runtime.settings.access_token_ttl_seconds + 60)
    response = await client.get(
        f"{V2}/contacts/{tokens['contact']['id']}", headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_EXPIRED"


async def test_jwks_publishes_public_ed25519_keys_only(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await sign_in_by_phone(client, runtime, tenant)
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert keys and all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and "d" not in k for k in keys)


async def test_access_token_claims(client: Any, runtime: Any, tenant: Any) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    header = pyjwt.get_unverified_header(tokens["access_token"])
    claims = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert header["typ"] == "at+jwt" and header["alg"] == "EdDSA"
    assert claims["aud"] == tenant.id and claims["mode"] == "test"
    assert claims["app"] == tenant.application_id
    assert claims["iss"] == runtime.settings.public_url
    assert claims["exp"] - claims["iat"] == 900
    assert claims["exp"] == tokens["exp"]
    assert abs(claims["iat"] - time.time()) < 60


async def test_signed_in_call_without_token_is_401(client: Any, tenant: Any) -> None:
    response = await client.get(f"{V2}/contacts/abc", headers=key(tenant))
    assert response.status_code == 401
    response = await client.get(f"{V2}/contacts/abc", headers=bearer("garbage"))
    assert response.status_code == 401


async def test_secret_key_on_self_service_is_403(client: Any, tenant: Any) -> None:
    response = await client.post(
        f"{V1}/contacts/register",
        json=SEED_REGISTER,
        headers={"api_key": tenant.keys["secret_test"]},
    )
    assert response.status_code == 403


async def test_bad_input_is_400_with_stable_codes(client: Any, tenant: Any) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({**SEED_REGISTER, "first_name": "x" * 201}, "INVALID_REQUEST"),
        ({**SEED_REGISTER, "service_acceptance": "yes"}, "INVALID_REQUEST"),
        (
            {**SEED_REGISTER, "identity": {"provider": "FACEBOOK", "token": "t"}},
            "IDENTITY_PROVIDER_NOT_CONFIGURED",  # supported, but this tenant set none up
        ),
        (
            {**SEED_REGISTER, "identity": {"provider": "MAC_ADDRESS", "token": "t"}},
            "PROVIDER_NOT_SUPPORTED",
        ),
        (
            {
                **SEED_REGISTER,
                "identity": {"provider": "PHONE", "phone_number": "12", "country_code": "CYP"},
            },
            "INVALID_PHONE",
        ),
        (
            {
                **SEED_REGISTER,
                "identity": {"provider": "PHONE", "phone_number": "99123456", "country_code": "CY"},
            },
            "INVALID_COUNTRY_CODE",
        ),
        (
            {
                **SEED_REGISTER,
                "identity": {
                    "provider": "PHONE",
                    "phone_number": "９９１２３４５６",
                    "country_code": "CYP",
                },
            },
            "INVALID_PHONE",
        ),
        (
            {**SEED_REGISTER, "identity": {"provider": "EMAIL", "email": "a\u200b@example.com"}},
            "INVALID_EMAIL",
        ),
        ({**SEED_REGISTER, "identity": "PHONE"}, "INVALID_REQUEST"),
        ({"first_name": "no identity"}, "INVALID_REQUEST"),
    ]
    for body, code in cases:
        response = await client.post(f"{V1}/contacts/register", json=body, headers=key(tenant))
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == code, (body, response.text)


async def test_v2_register_spelling_with_phone_object(client: Any, tenant: Any) -> None:
    defined = await client.put(
        "/backoffice/v1/custom_fields/tier",
        json={},
        headers={"api_key": tenant.keys["secret_test"]},
    )
    assert defined.status_code == 201, defined.text
    response = await client.post(
        f"{V2}/contacts/register",
        json={
            "first_name": "Maria",
            "last_name": "K",
            "identification": {
                "provider": "PHONE",
                "phone": {"number": "99 765-432", "country_code": "cyp"},
            },
            "accept_terms_&_conditions": True,
            "custom_fields": [{"key": "tier", "value": "gold"}],
        },
        headers=key(tenant),
    )
    assert response.status_code == 201, response.text
    assert response.json()["obfuscated_value"].startswith("+357")


async def test_profile_update_is_partial_and_delete_erases(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    contact_id = tokens["contact"]["id"]
    auth = bearer(tokens["access_token"])
    response = await client.put(
        f"{V2}/contacts/{contact_id}",
        json={
            "first_name": "Ahmad",
            "email_opt_out": "false",
            "country_of_agreement": "cyp",
            "demographics": {
                "gender": "MALE",
                "date_of_birth": {"year": 1990, "month": 5, "day": 17},
            },
        },
        headers=auth,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"id": contact_id}
    profile = (await client.get(f"{V2}/contacts/{contact_id}", headers=auth)).json()
    assert profile["first_name"] == "Ahmad" and profile["last_name"] == "Samir"
    assert profile["email_opt_out"] is False and profile["sms_opt_out"] is True
    assert profile["country_of_agreement"] == "CYP"
    assert profile["demographics"]["date_of_birth"] == {"year": 1990, "month": 5, "day": 17}

    response = await client.delete(f"{V2}/contacts/{contact_id}", headers=auth)
    assert response.status_code == 200
    assert (await client.get(f"{V2}/contacts/{contact_id}", headers=auth)).status_code == 401
    refresh = await client.post(f"{V2}/contacts/refresh", headers=bearer(tokens["refresh_token"]))
    assert refresh.status_code == 401


async def test_contact_exists_by_phone_and_email(client: Any, runtime: Any, tenant: Any) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    profile = (
        await client.get(
            f"{V2}/contacts/{tokens['contact']['id']}", headers=bearer(tokens["access_token"])
        )
    ).json()
    number = profile["phone"]["number"]
    found = await client.get(
        f"{V2}/contacts", params={"phone": number, "country_code": "CYP"}, headers=key(tenant)
    )
    assert found.json() == {"contact_exists": True}
    missing = await client.get(
        f"{V2}/contacts", params={"email_address": "no@example.com"}, headers=key(tenant)
    )
    assert missing.json() == {"contact_exists": False}
    assert (await client.get(f"{V2}/contacts", headers=key(tenant))).status_code == 400
