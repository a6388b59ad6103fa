"""Per-tenant provider settings: stored encrypted, shown redacted, checked against SSRF, resolved."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver
from crm.clock import Clock
from crm.errors import AppError, Forbidden
from crm.messaging.errors import (
    ProviderNotSupported,
    ProviderUrlNotHttps,
    SecretsRequired,
)
from crm.messaging.providers import (
    EMAIL_PROVIDERS,
    SMS_PROVIDERS,
    ProviderConfig,
    config_model,
    redact,
    validate_config,
)
from crm.messaging.providers.base import mask_secret, mask_url
from crm.messaging.providers.netguard import resolve_public
from crm.security.crypto import SecretBox
from crm.settings import Settings
from crm.tenants.models import Integration
from crm.tenants.schemas import CallerKey

# The SecretBox purpose: a ciphertext made for provider settings opens for nothing else.
CREDENTIALS_PURPOSE = "provider-credentials"
CHANNELS = {"sms": "SMS", "email": "EMAIL"}


class LiveKeyRequired(Forbidden):
    code = "LIVE_KEY_REQUIRED"
    message = (
        "Provider settings decide where live codes go, so only a live secret key may see or "
        "change them."
    )


class ChannelNotFound(AppError):
    status_code = 404
    code = "CHANNEL_NOT_FOUND"
    message = "The channel must be sms or email."


@dataclass(frozen=True, slots=True)
class IntegrationView:
    """What GET shows: the effective provider and where it comes from; secrets masked."""

    channel: str
    provider: str
    source: str  # tenant | deployment
    config: dict[str, Any] | None
    updated_at: datetime | None


def normalize_channel(channel: str) -> str:
    value = CHANNELS.get(channel.strip().lower())
    if value is None:
        raise ChannelNotFound()
    return value


def box(secret: str) -> SecretBox:
    return SecretBox(secret, CREDENTIALS_PURPOSE)


def _reveal(config: ProviderConfig) -> dict[str, Any]:
    """The settings as stored (inside the encrypted blob): secrets in the clear."""
    raw = config.model_dump(mode="json")
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            raw[name] = value.get_secret_value()
    return raw


def encrypt_config(secret: str, config: ProviderConfig) -> str:
    return box(secret).encrypt(json.dumps(_reveal(config), separators=(",", ":")))


def decrypt_config(secret: str, token: str) -> dict[str, Any]:
    document: Any = json.loads(box(secret).decrypt(token))
    if not isinstance(document, dict):
        raise ValueError("stored provider settings are not an object")
    return document


# -- the deployment default ------------------------------------------------------------------


def deployment_provider(settings: Settings, channel: str) -> tuple[str, dict[str, Any]]:
    """The environment's provider for `channel` and its raw settings (validated when built)."""
    if channel == "SMS":
        name = settings.sms_provider
        if name == "webhook":
            return name, _without_none(
                url=settings.sms_webhook_url,
                signing_secret=_secret(settings.sms_webhook_secret),
            )
        if name == "twilio":
            return name, _without_none(
                account_sid=settings.twilio_account_sid,
                auth_token=_secret(settings.twilio_auth_token),
                from_number=settings.twilio_from_number,
                messaging_service_sid=settings.twilio_messaging_service_sid,
                base_url=settings.twilio_base_url,
            )
        return name, {}
    if settings.email_provider == "smtp":
        return "smtp", _without_none(
            host=settings.smtp_host,
            port=settings.smtp_port,
            from_address=settings.smtp_from,
            username=settings.smtp_username,
            password=_secret(settings.smtp_password),
            starttls=settings.smtp_starttls,
        )
    return settings.email_provider, {}


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _without_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -- SSRF ------------------------------------------------------------------------------------


def provider_hosts(provider: str, config: ProviderConfig | dict[str, Any]) -> list[str]:
    """The host names a provider's settings make the server connect to."""
    values = _reveal(config) if isinstance(config, ProviderConfig) else config
    hosts: list[str] = []
    if provider == "webhook" and isinstance(values.get("url"), str):
        hosts.append(urlsplit(values["url"]).hostname or "")
    elif provider == "twilio" and isinstance(values.get("base_url"), str):
        hosts.append(urlsplit(values["base_url"]).hostname or "")
    elif provider == "smtp" and isinstance(values.get("host"), str):
        hosts.append(values["host"])
    return [h for h in hosts if h]


async def check_public_host(host: str) -> None:
    """Refuse a host that is, or resolves to, an internal address (cloud metadata, localhost,
    the database). The worker does not rely on this answer later: it checks again on every
    connection and connects to the address it checked (netguard)."""
    await resolve_public(host)


def url_values(provider: str, config: ProviderConfig | dict[str, Any]) -> dict[str, str]:
    """The provider's URL settings, by field name."""
    model = config_model("SMS" if provider != "smtp" else "EMAIL", provider)
    values = _reveal(config) if isinstance(config, ProviderConfig) else config
    return {
        name: values[name]
        for name in model.url_fields
        if isinstance(values.get(name), str) and values[name]
    }


def require_https(
    settings: Settings, provider: str, config: ProviderConfig | dict[str, Any]
) -> None:
    """In production, provider and webhook URLs carry codes and credentials: https only, for
    the deployment's own settings as for a tenant's."""
    if settings.env != "production" or provider == "smtp":
        return
    for name, value in url_values(provider, config).items():
        if urlsplit(value).scheme.lower() != "https":
            raise ProviderUrlNotHttps(
                details=[{"field": f"config.{name}", "message": "must be an https:// URL"}]
            )


# -- the tenant's settings -------------------------------------------------------------------


async def get_integration(
    session: AsyncSession, settings: Settings, secret: str, tenant_id: str, channel: str
) -> IntegrationView:
    channel = normalize_channel(channel)
    row = await session.get(Integration, (tenant_id, channel))
    if row is None:
        # The deployment's own settings are the operator's infrastructure: name only.
        name, _ = deployment_provider(settings, channel)
        return IntegrationView(channel, name, "deployment", None, None)
    try:
        shown = redact(channel, row.provider, decrypt_config(secret, row.config_encrypted))
    except Exception:
        # Settings that cannot be opened (another server secret) are still named, not shown.
        shown = {}
    return IntegrationView(channel, row.provider, "tenant", shown, row.updated_at)


async def get_integration_for(
    session: AsyncSession, settings: Settings, secret: str, caller: CallerKey, channel: str
) -> IntegrationView:
    """GET for an API key: the tenant's providers send live messages (test-mode ones never
    leave the outbox), so only live keys see them; a leaked test key learns nothing."""
    normalize_channel(channel)
    _require_live(caller)
    return await get_integration(session, settings, secret, caller.tenant_id, channel)


async def put_integration(
    session: AsyncSession,
    settings: Settings,
    secret: str,
    clock: Clock,
    caller: CallerKey,
    channel: str,
    provider: str,
    config: dict[str, Any],
) -> IntegrationView:
    """Validate and store the tenant's provider; secret fields left out (or sent back masked, as
    GET showed them) keep their stored values, so a settings form can round-trip."""
    channel = normalize_channel(channel)
    _require_live(caller)
    name = provider.strip().lower()
    registry = SMS_PROVIDERS if channel == "SMS" else EMAIL_PROVIDERS
    if name not in registry:
        supported = ", ".join(sorted(registry))
        raise ProviderNotSupported(
            details=[{"field": "provider", "message": f"must be one of: {supported}"}]
        )
    if name == "console" and settings.env == "production":
        # The console provider writes message bodies (codes) into the operator's logs.
        raise ProviderNotSupported(
            details=[{"field": "provider", "message": "console is for development only"}]
        )
    row = await session.get(Integration, (caller.tenant_id, channel))
    merged = dict(config)
    if row is not None and row.provider == name:
        try:
            stored = decrypt_config(secret, row.config_encrypted)
        except Exception:
            stored = {}
        merged = keep_stored(channel, name, merged, stored)
    validated = validate_config(channel, name, merged, field_prefix="config")
    require_https(settings, name, validated)
    if not settings.private_provider_urls_allowed:
        for host in provider_hosts(name, validated):
            await check_public_host(host)
    now = clock.now()
    encrypted = encrypt_config(secret, validated)
    if row is None:
        row = Integration(
            tenant_id=caller.tenant_id,
            channel=channel,
            provider=name,
            config_encrypted=encrypted,
            updated_at=now,
        )
        session.add(row)
    else:
        row.provider = name
        row.config_encrypted = encrypted
        row.updated_at = now
    await session.flush()
    return IntegrationView(channel, name, "tenant", validated.redacted(), now)


def keep_stored(
    channel: str, provider: str, incoming: dict[str, Any], stored: dict[str, Any]
) -> dict[str, Any]:
    """`incoming` with the values a settings form sends back unchanged filled from `stored`:
    masked URLs, and secrets left out or masked. A stored secret only stays where it was going:
    when a destination setting (a URL, host, port or account) differs from the stored one, the
    secrets must be sent in full (PROVIDER_SECRETS_REQUIRED), or a live key alone could redirect
    them to its own address."""
    model = config_model(channel, provider)
    merged = dict(incoming)
    for field_name in model.url_fields:
        current = stored.get(field_name)
        sent = merged.get(field_name)
        if isinstance(current, str) and isinstance(sent, str):
            masked = mask_url(current)
            if masked != current and sent == masked:
                merged[field_name] = current
    kept: list[str] = []
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        is_secret = annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())
        if not is_secret or field_name not in stored or stored[field_name] is None:
            continue
        current = str(stored[field_name])
        sent = merged.get(field_name)
        if field_name not in merged or (isinstance(sent, str) and sent == mask_secret(current)):
            merged[field_name] = current
            kept.append(field_name)
    destination = _destination(model, merged)
    # Settings that do not validate get the validation's own, more precise, answer.
    if kept and destination is not None and destination != _destination(model, stored):
        raise SecretsRequired(
            details=[
                {"field": f"config.{name}", "message": "send it again: the destination changed"}
                for name in kept
            ]
        )
    return merged


def _destination(model: type[ProviderConfig], values: dict[str, Any]) -> dict[str, Any] | None:
    """Where settings send, as the model normalises it (defaults filled, trailing slashes cut),
    or None when they do not validate (then nothing is taken as unchanged)."""
    try:
        parsed = model.model_validate(dict(values))
    except ValidationError:
        return None
    return {name: getattr(parsed, name) for name in sorted(model.destination_fields)}


async def delete_integration(
    session: AsyncSession, settings: Settings, caller: CallerKey, channel: str
) -> IntegrationView:
    """Drop the tenant's provider: the deployment default applies again."""
    channel = normalize_channel(channel)
    _require_live(caller)
    await session.execute(
        delete(Integration).where(
            Integration.tenant_id == caller.tenant_id, Integration.channel == channel
        )
    )
    name, _ = deployment_provider(settings, channel)
    return IntegrationView(channel, name, "deployment", None, None)


def _require_live(caller: CallerKey) -> None:
    # A leaked test key must not be able to send a tenant's live codes to an attacker's webhook.
    if caller.mode != "live":
        raise LiveKeyRequired()


async def load_integrations(
    session: AsyncSession, tenant_ids: set[str]
) -> dict[tuple[str, str], Integration]:
    """The stored integrations of these tenants, by (tenant, channel) (the worker, per batch)."""
    if not tenant_ids:
        return {}
    statement, values = _OF_TENANTS.bound(sorted(tenant_ids))
    rows = [
        driver.adopt(session, Integration, row, refresh=False)
        for row in await driver.fetch(session, statement, values)
    ]
    return {(row.tenant_id, row.channel): row for row in rows}


# Built once per count of tenants (see crm.driver on why the worker's statements are).
_OF_TENANTS = driver.Among(Integration, Integration.tenant_id)
