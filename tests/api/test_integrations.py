"""GET/PUT/DELETE /backoffice/v1/integrations/{sms|email}: per-tenant providers, never shown in full."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crm.app import create_app
from crm.messaging.integrations import decrypt_config
from crm.runtime import Runtime
from crm.tenants.models import Integration
from crm.tenants.schemas import CreatedTenant

BASE = "/backoffice/v1/integrations"
SECRET = "whsec-0123456789-abcdef"
WEBHOOK = {
    "provider": "webhook",
    "config": {"url": "https://sms.example.com/hook", "signing_secret": SECRET},
}


def key(tenant: CreatedTenant, label: str = "secret_live") -> dict[str, str]:
    return {"api_key": tenant.keys[label]}


async def stored(runtime: Runtime, tenant: CreatedTenant, channel: str) -> Integration | None:
    async with runtime.sessions() as session:
        return await session.get(Integration, (tenant.id, channel))


async def test_default_is_the_deployment_provider_without_its_settings(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    for channel, name in (("sms", "SMS"), ("email", "EMAIL")):
        response = await client.get(f"{BASE}/{channel}", headers=key(tenant))
        assert response.status_code == 200
        assert response.json() == {
            "channel": name,
            "provider": "console",
            "source": "deployment",
            "config": None,
            "updated_at": None,
        }


async def test_put_stores_encrypted_and_get_never_returns_the_secret(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    put = await client.put(f"{BASE}/sms", headers=key(tenant), json=WEBHOOK)
    assert put.status_code == 200, put.text
    assert SECRET not in put.text
    body = put.json()
    assert body["provider"] == "webhook" and body["source"] == "tenant"
    assert body["config"]["url"] == "https://sms.example.com/hook"
    assert body["config"]["signing_secret"] == "****cdef"
    assert isinstance(body["updated_at"], int)

    got = await client.get(f"{BASE}/sms", headers=key(tenant))
    assert got.status_code == 200
    assert got.json()["config"] == body["config"]
    assert SECRET not in got.text
    # The providers send live messages: a test key sees nothing of them.
    test_key = await client.get(f"{BASE}/sms", headers=key(tenant, "secret_test"))
    assert test_key.status_code == 403 and test_key.json()["code"] == "LIVE_KEY_REQUIRED"
    assert SECRET[-4:] not in test_key.text and "sms.example.com" not in test_key.text

    row = await stored(runtime, tenant, "SMS")
    assert row is not None and SECRET not in row.config_encrypted
    assert decrypt_config(runtime.secret, row.config_encrypted)["signing_secret"] == SECRET


async def test_secret_left_out_or_sent_back_masked_keeps_its_stored_value(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    assert (await client.put(f"{BASE}/sms", headers=key(tenant), json=WEBHOOK)).status_code == 200
    shown = (await client.get(f"{BASE}/sms", headers=key(tenant))).json()["config"]
    # The same destination: the masked secret keeps the stored one.
    echoed = {**shown, "timeout": 5}
    response = await client.put(
        f"{BASE}/sms", headers=key(tenant), json={"provider": "webhook", "config": echoed}
    )
    assert response.status_code == 200, response.text
    row = await stored(runtime, tenant, "SMS")
    assert row is not None
    config = decrypt_config(runtime.secret, row.config_encrypted)
    assert config == {
        "url": "https://sms.example.com/hook",
        "signing_secret": SECRET,
        "timeout": 5.0,
    }

    omitted = {"provider": "webhook", "config": {"url": "https://sms.example.com/hook"}}
    assert (await client.put(f"{BASE}/sms", headers=key(tenant), json=omitted)).status_code == 200
    row = await stored(runtime, tenant, "SMS")
    assert row is not None
    assert decrypt_config(runtime.secret, row.config_encrypted)["signing_secret"] == SECRET


async def test_email_smtp_password_is_masked(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    password = "smtp-password-123456"
    response = await client.put(
        f"{BASE}/email",
        headers=key(tenant),
        json={
            "provider": "smtp",
            "config": {
                "host": "smtp.example.com",
                "from_address": "no-reply@acme.example",
                "username": "acme",
                "password": password,
            },
        },
    )
    assert response.status_code == 200, response.text
    assert password not in response.text
    assert response.json()["config"]["password"] == "****3456"
    got = await client.get(f"{BASE}/email", headers=key(tenant))
    assert password not in got.text and got.json()["provider"] == "smtp"


async def test_delete_goes_back_to_the_deployment_default(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    assert (await client.put(f"{BASE}/sms", headers=key(tenant), json=WEBHOOK)).status_code == 200
    deleted = await client.delete(f"{BASE}/sms", headers=key(tenant))
    assert deleted.status_code == 200
    assert deleted.json()["source"] == "deployment"
    assert await stored(runtime, tenant, "SMS") is None
    got = await client.get(f"{BASE}/sms", headers=key(tenant))
    assert got.json()["source"] == "deployment" and got.json()["provider"] == "console"
    again = await client.delete(f"{BASE}/sms", headers=key(tenant))
    assert again.status_code == 200  # idempotent


@pytest.mark.parametrize(
    ("channel", "body", "code", "field"),
    [
        (
            "sms",
            {"provider": "webhook", "config": {"url": "https://x.example"}},
            "PROVIDER_CONFIG_INVALID",
            "config.signing_secret",
        ),
        (
            "sms",
            {"provider": "webhook", "config": {**WEBHOOK["config"], "extra": 1}},
            "PROVIDER_CONFIG_INVALID",
            "config.extra",
        ),
        ("sms", {"provider": "carrier-pigeon", "config": {}}, "PROVIDER_NOT_SUPPORTED", "provider"),
        ("email", {"provider": "webhook", "config": {}}, "PROVIDER_NOT_SUPPORTED", "provider"),
        ("sms", {"config": {}}, "INVALID_REQUEST", "provider"),
    ],
)
async def test_put_refuses_invalid_settings(
    client: httpx.AsyncClient,
    tenant: CreatedTenant,
    channel: str,
    body: dict[str, Any],
    code: str,
    field: str,
) -> None:
    response = await client.put(f"{BASE}/{channel}", headers=key(tenant), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert field in [d["field"] for d in response.json()["details"]]


async def test_only_a_live_secret_key_may_change_providers(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    test_key = await client.put(f"{BASE}/sms", headers=key(tenant, "secret_test"), json=WEBHOOK)
    assert test_key.status_code == 403 and test_key.json()["code"] == "LIVE_KEY_REQUIRED"
    deleted = await client.delete(f"{BASE}/sms", headers=key(tenant, "secret_test"))
    assert deleted.status_code == 403
    public = await client.get(f"{BASE}/sms", headers=key(tenant, "public_live"))
    assert public.status_code == 403 and public.json()["code"] == "WRONG_KEY_KIND"
    missing = await client.get(f"{BASE}/sms")
    assert missing.status_code == 401
    assert await stored(runtime, tenant, "SMS") is None


async def test_unknown_channel_is_404(client: httpx.AsyncClient, tenant: CreatedTenant) -> None:
    response = await client.get(f"{BASE}/fax", headers=key(tenant))
    assert response.status_code == 404 and response.json()["code"] == "CHANNEL_NOT_FOUND"


async def test_tenants_do_not_see_each_others_providers(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    from crm.tenants import service as tenants

    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other Ltd")
        await session.commit()
    assert (await client.put(f"{BASE}/sms", headers=key(tenant), json=WEBHOOK)).status_code == 200
    got = await client.get(f"{BASE}/sms", headers={"api_key": other.keys["secret_live"]})
    assert got.json()["source"] == "deployment"


@pytest.fixture
async def strict_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app as production runs it with respect to provider addresses (SSRF checks on)."""
    settings = runtime.settings.model_copy(update={"allow_private_provider_urls": False})
    app = create_app(settings, runtime=dataclasses.replace(runtime, settings=settings))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.mark.parametrize(
    ("provider", "config"),
    [
        ("webhook", {"url": "http://127.0.0.1:8080/hook"}),
        ("webhook", {"url": "http://169.254.169.254/latest/meta-data"}),
        ("webhook", {"url": "http://10.1.2.3/hook"}),
        ("webhook", {"url": "http://[::1]/hook"}),
        ("webhook", {"url": "http://[::ffff:127.0.0.1]/hook"}),
        ("webhook", {"url": "http://[2002:a9fe:a9fe::1]/hook"}),
        ("webhook", {"url": "http://localhost/hook"}),
        ("twilio", {"base_url": "http://192.168.1.10"}),
    ],
)
async def test_private_provider_addresses_are_refused_when_not_allowed(
    strict_client: httpx.AsyncClient, tenant: CreatedTenant, provider: str, config: dict[str, Any]
) -> None:
    if provider == "webhook":
        config = {**config, "signing_secret": SECRET}
    else:
        config = {
            **config,
            "account_sid": "AC" + "0" * 32,
            "auth_token": "t" * 32,
            "from_number": "+15005550006",
        }
    response = await strict_client.put(
        f"{BASE}/sms", headers=key(tenant), json={"provider": provider, "config": config}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "PROVIDER_URL_NOT_ALLOWED"


async def test_private_smtp_host_is_refused_and_public_address_accepted(
    strict_client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    smtp = {"provider": "smtp", "config": {"host": "127.0.0.1", "from_address": "a@acme.example"}}
    refused = await strict_client.put(f"{BASE}/email", headers=key(tenant), json=smtp)
    assert refused.json()["code"] == "PROVIDER_URL_NOT_ALLOWED"
    public = {
        "provider": "webhook",
        "config": {"url": "https://93.184.215.14/hook", "signing_secret": SECRET},
    }
    accepted = await strict_client.put(f"{BASE}/sms", headers=key(tenant), json=public)
    assert accepted.status_code == 200, accepted.text
    assert json.loads(accepted.text)["config"]["url"] == "https://93.184.215.14/hook"
