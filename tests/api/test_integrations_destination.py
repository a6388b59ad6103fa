"""Provider secrets stay with their destination: a changed address needs them again in full."""

from __future__ import annotations

import dataclasses
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
TOKEN = "twilio-auth-token-00009f3c"
SID = "AC" + "0123456789abcdef" * 2
TWILIO = {
    "account_sid": SID,
    "auth_token": TOKEN,
    "from_number": "+15005550006",
    "base_url": "https://api.twilio.com",
}
PASSWORD = "smtp-password-123456"
SMTP = {
    "host": "smtp.example.com",
    "port": 587,
    "from_address": "no-reply@acme.example",
    "username": "acme",
    "password": PASSWORD,
}
SIGNING = "whsec-0123456789-abcdef"


def live(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["secret_live"]}


async def put(
    client: httpx.AsyncClient, tenant: CreatedTenant, channel: str, provider: str, config: Any
) -> httpx.Response:
    return await client.put(
        f"{BASE}/{channel}", headers=live(tenant), json={"provider": provider, "config": config}
    )


async def stored_config(runtime: Runtime, tenant: CreatedTenant, channel: str) -> dict[str, Any]:
    async with runtime.sessions() as session:
        row = await session.get(Integration, (tenant.id, channel))
    assert row is not None
    return decrypt_config(runtime.secret, row.config_encrypted)


@pytest.mark.parametrize(
    "change",
    [
        {"base_url": "http://attacker.example.com"},
        {"base_url": "https://api.dublin.ie1.twilio.com"},
        {"account_sid": "AC" + "f" * 32},
    ],
)
@pytest.mark.parametrize("secret", ["masked", "omitted"])
async def test_a_new_twilio_destination_with_the_stored_token_is_refused(
    client: httpx.AsyncClient,
    tenant: CreatedTenant,
    runtime: Runtime,
    change: dict[str, str],
    secret: str,
) -> None:
    first = await put(client, tenant, "sms", "twilio", TWILIO)
    assert first.status_code == 200, first.text
    shown = first.json()["config"]
    assert shown["auth_token"] == "****9f3c"
    config = {**shown, **change}
    if secret == "omitted":
        del config["auth_token"]
    response = await put(client, tenant, "sms", "twilio", config)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "PROVIDER_SECRETS_REQUIRED"
    assert [d["field"] for d in response.json()["details"]] == ["config.auth_token"]
    assert TOKEN not in response.text
    # Nothing changed: the token still goes only where it went.
    assert await stored_config(runtime, tenant, "SMS") == {
        **TWILIO,
        "messaging_service_sid": None,
        "timeout": 10.0,
    }


async def test_a_new_destination_with_the_secret_in_full_is_accepted(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    assert (await put(client, tenant, "sms", "twilio", TWILIO)).status_code == 200
    moved = {**TWILIO, "base_url": "https://api.dublin.ie1.twilio.com", "auth_token": "n" * 32}
    response = await put(client, tenant, "sms", "twilio", moved)
    assert response.status_code == 200, response.text
    assert (await stored_config(runtime, tenant, "SMS"))["auth_token"] == "n" * 32


async def test_the_same_destination_with_the_masked_token_keeps_it(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    shown = (await put(client, tenant, "sms", "twilio", TWILIO)).json()["config"]
    # The same address written differently (a trailing slash) is the same destination.
    echoed = {**shown, "from_number": "+15005550007", "base_url": "https://api.twilio.com/"}
    response = await put(client, tenant, "sms", "twilio", echoed)
    assert response.status_code == 200, response.text
    config = await stored_config(runtime, tenant, "SMS")
    assert config["auth_token"] == TOKEN and config["from_number"] == "+15005550007"


@pytest.mark.parametrize(
    "change",
    [
        {"host": "smtp.attacker.example"},
        {"port": 2525},
        {"username": "someone-else"},
        {"starttls": False},
    ],
)
async def test_a_new_smtp_destination_with_the_masked_password_is_refused(
    client: httpx.AsyncClient, tenant: CreatedTenant, change: dict[str, Any]
) -> None:
    shown = (await put(client, tenant, "email", "smtp", SMTP)).json()["config"]
    response = await put(client, tenant, "email", "smtp", {**shown, **change})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "PROVIDER_SECRETS_REQUIRED"
    assert [d["field"] for d in response.json()["details"]] == ["config.password"]


async def test_a_new_webhook_url_with_the_masked_secret_is_refused(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    config = {"url": "https://sms.example.com/hook", "signing_secret": SIGNING}
    shown = (await put(client, tenant, "sms", "webhook", config)).json()["config"]
    response = await put(client, tenant, "sms", "webhook", {**shown, "url": "https://x.example/h"})
    assert response.status_code == 400
    assert response.json()["code"] == "PROVIDER_SECRETS_REQUIRED"


async def test_a_url_carrying_a_secret_is_masked_whole_and_round_trips(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    url = "https://sms.example.com/hook?token=query-secret-4242"
    first = await put(client, tenant, "sms", "webhook", {"url": url, "signing_secret": SIGNING})
    assert first.status_code == 200, first.text
    got = await client.get(f"{BASE}/sms", headers=live(tenant))
    assert "query-secret" not in got.text and "4242" not in got.text
    shown = got.json()["config"]
    assert shown["url"] == "****"
    # A form sending back what GET showed keeps both the URL and the secret.
    response = await put(client, tenant, "sms", "webhook", {**shown, "timeout": 3})
    assert response.status_code == 200, response.text
    config = await stored_config(runtime, tenant, "SMS")
    assert (config["url"], config["signing_secret"], config["timeout"]) == (url, SIGNING, 3.0)


async def test_test_keys_neither_see_nor_change_live_providers(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    assert (await put(client, tenant, "sms", "twilio", TWILIO)).status_code == 200
    test_key = {"api_key": tenant.keys["secret_test"]}
    for response in (
        await client.get(f"{BASE}/sms", headers=test_key),
        await client.get(f"{BASE}/email", headers=test_key),
        await client.put(
            f"{BASE}/sms", headers=test_key, json={"provider": "twilio", "config": {}}
        ),
        await client.delete(f"{BASE}/sms", headers=test_key),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "LIVE_KEY_REQUIRED"
        assert "9f3c" not in response.text and SID not in response.text


@pytest.fixture
async def production_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app with CRM_ENV=production (private provider addresses stay allowed here, so the
    https rule is what is tried)."""
    settings = runtime.settings.model_copy(
        update={"env": "production", "allow_private_provider_urls": True}
    )
    app = create_app(settings, runtime=dataclasses.replace(runtime, settings=settings))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.mark.parametrize(
    ("provider", "config", "field"),
    [
        ("webhook", {"url": "http://sms.example.com/hook", "signing_secret": SIGNING}, "url"),
        ("twilio", {**TWILIO, "base_url": "http://api.twilio.com"}, "base_url"),
    ],
)
async def test_production_refuses_plain_http_provider_urls(
    production_client: httpx.AsyncClient,
    tenant: CreatedTenant,
    provider: str,
    config: dict[str, Any],
    field: str,
) -> None:
    response = await put(production_client, tenant, "sms", provider, config)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "PROVIDER_URL_NOT_HTTPS"
    assert response.json()["details"] == [
        {"field": f"config.{field}", "message": "must be an https:// URL"}
    ]
    https = {**config, field: config[field].replace("http://", "https://")}
    accepted = await put(production_client, tenant, "sms", provider, https)
    assert accepted.status_code == 200, accepted.text
