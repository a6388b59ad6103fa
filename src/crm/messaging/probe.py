"""A test message through a tenant's own provider, sent at once (not through the outbox), so the
person who configured it sees the provider's answer on the spot."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from crm.errors import InvalidRequest
from crm.ids import uuid7
from crm.messaging.integrations import (
    decrypt_config,
    deployment_provider,
    normalize_channel,
    require_https,
)
from crm.messaging.providers import (
    DeliveryError,
    OutgoingMessage,
    build_email_provider,
    build_sms_provider,
)
from crm.messaging.providers.netguard import guarded_client
from crm.settings import Settings
from crm.tenants.models import Integration

_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    provider: str
    answer: str


def _recipient(channel: str, value: str) -> str:
    clean = (value or "").strip()
    if channel == "SMS":
        clean = re.sub(r"[\s().-]", "", clean)
        if not _PHONE.match(clean):
            raise InvalidRequest(
                details=[
                    {"field": "recipient", "message": "must be a phone number in E.164 (+...)"}
                ]
            )
    elif "@" not in clean or len(clean) > 320 or any(ch.isspace() for ch in clean):
        raise InvalidRequest(
            details=[{"field": "recipient", "message": "must be an email address"}]
        )
    return clean


async def send_test_message(
    session: AsyncSession,
    settings: Settings,
    secret: str,
    *,
    tenant_id: str,
    tenant_name: str,
    channel: str,
    recipient: str,
) -> ProbeResult:
    """Send one short message through the provider the tenant's live messages use."""
    channel = normalize_channel(channel)
    to = _recipient(channel, recipient)
    row = await session.get(Integration, (tenant_id, channel))
    guarded = row is not None and not settings.private_provider_urls_allowed
    try:
        if row is None:
            name, config = deployment_provider(settings, channel)
        else:
            name, config = row.provider, decrypt_config(secret, row.config_encrypted)
        require_https(settings, name, config)
    except Exception:
        return ProbeResult(
            False, row.provider if row else "?", "the provider settings are not usable"
        )
    message = OutgoingMessage(
        id=uuid7(),
        tenant_id=tenant_id,
        channel="SMS" if channel == "SMS" else "EMAIL",
        recipient=to,
        subject=f"{tenant_name}: a test message" if channel == "EMAIL" else None,
        body_text=f"A test message from {tenant_name}'s console. Nothing to do.",
        body_html=None,
    )
    limits = httpx.Limits(max_connections=2)
    client = (
        guarded_client(limits)
        if guarded
        else httpx.AsyncClient(follow_redirects=False, trust_env=False)
    )
    try:
        async with client:
            client.timeout = httpx.Timeout(_TIMEOUT)
            if channel == "SMS":
                provider_id = await build_sms_provider(name, config, client=client).send(message)
            else:
                provider_id = await build_email_provider(name, config, guarded=guarded).send(
                    message
                )
    except DeliveryError as exc:
        return ProbeResult(False, name, f"refused: {exc}"[:300])
    except Exception as exc:  # a failure to reach the provider is the answer, not a crash
        return ProbeResult(False, name, f"failed: {type(exc).__name__}")
    shown = f" (its id {provider_id})" if provider_id else ""
    return ProbeResult(True, name, f"accepted the message{shown}")
