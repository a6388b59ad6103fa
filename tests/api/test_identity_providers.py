"""GET/PUT/DELETE /backoffice/v1/identity_providers/{type}: per tenant and mode, the client
secret encrypted and never shown in full, issuers checked like provider URLs."""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crm.errors import AppError
from crm.runtime import Runtime
from crm.social import configs
from crm.social.models import IdentityProvider
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant

BASE = "/backoffice/v1/identity_providers"
SECRET = "GOCSPX-0123456789-abcdefghijkl"


def pem(curve: ec.EllipticCurve) -> str:
    return (
        ec.generate_private_key(curve)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


P256, P384 = pem(ec.SECP256R1()), pem(ec.SECP384R1())
APPLE_KEY = {"client_id": "com.example.web", "team_id": "TEAM012345", "key_id": "KEY0123456"}


def sk(tenant: CreatedTenant, mode: str = "test") -> dict[str, str]:
    return {"api_key": tenant.keys[f"secret_{mode}"]}


async def test_defaults_to_the_real_issuer_and_masks_the_secret(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    body = {"client_id": "123.apps.googleusercontent.com", "client_secret": SECRET}
    put = await client.put(f"{BASE}/google", headers=sk(tenant), json=body)
    assert put.status_code == 200, put.text
    shown = put.json()
    assert shown["issuer"] == "https://accounts.google.com"
    assert shown["provider"] == "GOOGLE" and shown["client_secret"] == "****ijkl"
    assert SECRET not in put.text
    got = await client.get(f"{BASE}/google", headers=sk(tenant))
    assert got.json() == shown
    listed = await client.get(BASE, headers=sk(tenant))
    assert listed.json()["content"] == [shown]
    async with runtime.sessions() as session:
        row = await session.get(IdentityProvider, (tenant.id, "test", "google"))
        assert row is not None and row.client_secret_encrypted is not None
        assert SECRET not in row.client_secret_encrypted
    for kind, issuer in (
        ("apple", "https://appleid.apple.com"),
        ("facebook", "https://www.facebook.com"),
    ):
        made = await client.put(f"{BASE}/{kind}", headers=sk(tenant), json={"client_id": "c"})
        assert made.json()["issuer"] == issuer and made.json()["client_secret"] is None


async def test_a_masked_secret_keeps_the_stored_one_unless_the_issuer_moves(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    await client.put(
        f"{BASE}/google", headers=sk(tenant), json={"client_id": "a", "client_secret": SECRET}
    )
    back = {"client_id": "b", "client_secret": "****ijkl", "audiences": ["ios-app"]}
    kept = await client.put(f"{BASE}/google", headers=sk(tenant), json=back)
    assert kept.status_code == 200 and kept.json()["audiences"] == ["ios-app"]
    async with runtime.sessions() as session:
        config = await configs.for_sign_in(
            session,
            runtime.secret,
            tenant_id=tenant.id,
            mode="test",
            provider="GOOGLE",
            application_id=None,
        )
    assert config.client_secret == SECRET and config.accepted_audiences == ("b", "ios-app")
    # Pointing the stored secret at another issuer (a token endpoint of the caller's) needs it again.
    moved = {**back, "issuer": "https://idp.example.com"}
    refused = await client.put(f"{BASE}/google", headers=sk(tenant), json=moved)
    assert refused.status_code == 400 and refused.json()["code"] == "IDENTITY_PROVIDER_INVALID"
    assert refused.json()["details"][0]["field"] == "client_secret"
    moved["client_secret"] = "a-new-secret-0000"
    assert (await client.put(f"{BASE}/google", headers=sk(tenant), json=moved)).status_code == 200


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("oidc", {"client_id": "c"}, "issuer"),
        ("oidc", {"client_id": "c", "issuer": "ftp://idp.example.com"}, "issuer"),
        ("oidc", {"client_id": "c", "issuer": "https://idp.example.com/?tenant=1"}, "issuer"),
        ("oidc", {"client_id": "c", "issuer": "https://user:pw@idp.example.com"}, "issuer"),
        ("oidc", {"client_id": "c", "issuer": "https://idp.example.com#x"}, "issuer"),
        ("google", {"client_id": "  "}, "client_id"),
        ("google", {"client_id": "c", "audiences": [""]}, "audiences"),
        ("google", {"client_id": "c", "audiences": ["a"] * 21}, "audiences"),
        ("google", {"client_id": "c", "applications": ["no-such-app"]}, "applications"),
        ("google", {"client_id": "c", "client_secret": ""}, "client_secret"),
        ("apple", {**APPLE_KEY, "team_id": "team01234", "private_key": P256}, "team_id"),
        ("apple", {**APPLE_KEY, "key_id": "KEY-012345", "private_key": P256}, "key_id"),
        ("apple", {**APPLE_KEY, "private_key": P384}, "private_key"),
        ("apple", {**APPLE_KEY, "private_key": "-----BEGIN PRIVATE KEY-----"}, "private_key"),
        ("apple", APPLE_KEY, "private_key"),
        ("apple", {"client_id": "c", "key_id": "KEY0123456", "private_key": P256}, "team_id"),
        ("google", {**APPLE_KEY, "private_key": P256}, "private_key"),
    ],
)
async def test_invalid_settings_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, tenant: CreatedTenant, kind: str, body: dict[str, object], field: str
) -> None:
    answer = await client.put(f"{BASE}/{kind}", headers=sk(tenant), json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "IDENTITY_PROVIDER_INVALID"
    assert answer.json()["details"][0]["field"] == field
    assert (await client.get(f"{BASE}/{kind}", headers=sk(tenant))).status_code == 404


async def test_unknown_types_and_missing_fields(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    unknown = await client.put(f"{BASE}/twitter", headers=sk(tenant), json={"client_id": "c"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "IDENTITY_PROVIDER_TYPE_UNKNOWN"
    missing = await client.put(f"{BASE}/google", headers=sk(tenant), json={})
    assert missing.status_code == 400


async def test_another_tenant_another_mode_and_public_keys_see_nothing(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, f"Other {tenant.name}")
        await session.commit()
    await client.put(
        f"{BASE}/google", headers=sk(tenant), json={"client_id": "c", "client_secret": SECRET}
    )
    for headers in (sk(other), sk(tenant, "live")):
        got = await client.get(f"{BASE}/google", headers=headers)
        assert got.status_code == 404 and got.json()["code"] == "IDENTITY_PROVIDER_NOT_FOUND"
        assert (await client.get(BASE, headers=headers)).json()["content"] == []
        assert (await client.delete(f"{BASE}/google", headers=headers)).status_code == 404
    public = await client.get(f"{BASE}/google", headers={"api_key": tenant.keys["public_test"]})
    assert public.status_code == 403
    # Another tenant's application cannot be named either.
    foreign = {"client_id": "c", "applications": [other.application_id]}
    refused = await client.put(f"{BASE}/apple", headers=sk(tenant), json=foreign)
    assert refused.status_code == 400 and refused.json()["details"][0]["field"] == "applications"
    deleted = await client.delete(f"{BASE}/google", headers=sk(tenant))
    assert deleted.status_code == 204
    assert (await client.get(f"{BASE}/google", headers=sk(tenant))).status_code == 404


async def test_applications_limit_who_may_sign_in(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    async with runtime.sessions() as session:
        second, keys = await tenants.create_application(session, runtime.clock, tenant.id, "Kiosk")
        await session.commit()
    body = {"client_id": "c", "applications": [second]}
    assert (await client.put(f"{BASE}/google", headers=sk(tenant), json=body)).status_code == 200
    sign_in = {"provider": "GOOGLE", "token": "eyJ.x.y"}
    url = "/self-service/v2/contacts/authenticate"
    refused = await client.post(url, headers={"api_key": tenant.keys["public_test"]}, json=sign_in)
    assert refused.status_code == 403
    assert refused.json()["code"] == "IDENTITY_PROVIDER_NOT_FOR_APPLICATION"
    allowed = await client.post(url, headers={"api_key": keys["public_test"]}, json=sign_in)
    assert allowed.status_code == 401 and allowed.json()["code"] == "OIDC_TOKEN_INVALID"
    unset = await client.post(
        url, headers={"api_key": keys["public_test"]}, json={**sign_in, "provider": "APPLE"}
    )
    assert unset.status_code == 400 and unset.json()["code"] == "IDENTITY_PROVIDER_NOT_CONFIGURED"
    no_token = await client.post(
        url, headers={"api_key": keys["public_test"]}, json={"provider": "GOOGLE"}
    )
    assert no_token.status_code == 400 and no_token.json()["details"][0]["field"] == "token"


async def test_issuers_follow_the_provider_address_rules(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    async def put(issuer: str, *, production: bool, private: bool) -> AppError | None:
        async with runtime.sessions() as session:
            try:
                await configs.put_provider(
                    session,
                    runtime.clock,
                    secret=runtime.secret,
                    production=production,
                    private_addresses_allowed=private,
                    tenant_id=tenant.id,
                    mode="test",
                    kind="oidc",
                    body={"issuer": issuer, "client_id": "c"},
                )
            except AppError as exc:
                return exc
        return None

    for internal in (
        "http://127.0.0.1:8080",
        "https://169.254.169.254",
        "https://[::1]",
        "https://10.0.0.7",
    ):
        refused = await put(internal, production=False, private=False)
        assert refused is not None and refused.code == "PROVIDER_URL_NOT_ALLOWED", internal
    assert await put("http://127.0.0.1:8080", production=False, private=True) is None
    not_https = await put("http://idp.example.com", production=True, private=True)
    assert not_https is not None and not_https.code == "IDENTITY_PROVIDER_INVALID"


async def test_an_apple_key_is_stored_encrypted_shown_masked_and_kept_when_sent_back(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    put = await client.put(
        f"{BASE}/apple", headers=sk(tenant), json={**APPLE_KEY, "private_key": P256}
    )
    assert put.status_code == 200, put.text
    shown = put.json()
    assert shown["team_id"] == "TEAM012345" and shown["key_id"] == "KEY0123456"
    assert shown["private_key"].startswith("****") and "PRIVATE" not in put.text
    async with runtime.sessions() as session:
        row = await session.get(IdentityProvider, (tenant.id, "test", "apple"))
        assert row is not None and row.private_key_encrypted is not None
        assert P256.splitlines()[1] not in row.private_key_encrypted
    back = {**APPLE_KEY, "private_key": shown["private_key"], "audiences": ["ios-app"]}
    kept = await client.put(f"{BASE}/apple", headers=sk(tenant), json=back)
    assert kept.status_code == 200 and kept.json()["private_key"] == shown["private_key"]
    moved = {**back, "issuer": "https://idp.example.com"}
    refused = await client.put(f"{BASE}/apple", headers=sk(tenant), json=moved)
    assert refused.status_code == 400 and refused.json()["details"][0]["field"] == "private_key"
    # Without the ids the key is dropped.
    dropped = await client.put(f"{BASE}/apple", headers=sk(tenant), json={"client_id": "c"})
    assert dropped.json()["private_key"] is None and dropped.json()["team_id"] is None
