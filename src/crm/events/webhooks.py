"""A tenant's webhook endpoints: their URL, the events they want, their signing secrets.

The signing secret is shown once, when it is made (create, rotate), and stored encrypted with
the server secret like provider credentials. After a rotation the previous secret signs too
for ROTATION_OVERLAP, so receivers can switch without losing a delivery.
"""

from __future__ import annotations

import secrets as random_secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import HttpUrl, TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock, epoch
from crm.events.errors import WebhookInvalid, WebhookLimitReached, WebhookNotFound
from crm.events.models import WebhookEndpoint
from crm.ids import uuid7
from crm.messaging.errors import (
    ProviderHostUnresolvable,
    ProviderUrlNotAllowed,
    ProviderUrlNotHttps,
)
from crm.messaging.providers.netguard import resolve_public
from crm.security.crypto import SecretBox
from crm.settings import Settings
from crm.tenants.schemas import CallerKey
from crm.vocabulary import EventType

# The SecretBox purpose: a ciphertext made for a webhook secret opens for nothing else.
SECRET_PURPOSE = "webhook-signing-secret"
ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 16
MAX_URL = 2048
MAX_DESCRIPTION = 500
ALL = "*"
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)
# Types an endpoint may ask for: every event type.
SUBSCRIBABLE = frozenset(str(t) for t in EventType)


@dataclass(frozen=True, slots=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str


def _box(secret: str) -> SecretBox:
    return SecretBox(secret, SECRET_PURPOSE)


def new_signing_secret() -> str:
    return "whsec_" + random_secrets.token_urlsafe(32)


def signing_secrets(server_secret: str, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one for a day
    after a rotation."""
    box = _box(server_secret)
    found = [box.decrypt(endpoint.secret_encrypted).decode("utf-8")]
    expires = endpoint.previous_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and now < expires:
        found.append(box.decrypt(endpoint.previous_secret_encrypted).decode("utf-8"))
    return found


def public_fields(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What an endpoint shows of itself, never its secrets: one shape for the API and the CLI."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "mode": endpoint.mode,
        "created_at": epoch(endpoint.created_at) or 0,
        "updated_at": epoch(endpoint.updated_at) or 0,
    }


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return ALL in endpoint.events or event_type in endpoint.events


def _invalid(field: str, message: str) -> WebhookInvalid:
    return WebhookInvalid(details=[{"field": field, "message": message}])


async def check_url(settings: Settings, url: Any) -> str:
    """The address rules of provider URLs: http(s) only, https in production, and no private,
    loopback or link-local host unless the deployment allows them."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise _invalid("url", f"must be an http:// or https:// URL of at most {MAX_URL} characters")
    try:
        _HTTP_URL.validate_python(url)
    except ValidationError:
        raise _invalid("url", "must be an http:// or https:// URL") from None
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise _invalid("url", "must not carry a user name or password")
    if settings.env == "production" and parts.scheme.lower() != "https":
        raise ProviderUrlNotHttps(details=[{"field": "url", "message": "must be an https:// URL"}])
    if not settings.private_provider_urls_allowed:
        try:
            await resolve_public(parts.hostname or "", parts.port)
        except (ProviderUrlNotAllowed, ProviderHostUnresolvable) as exc:
            raise type(exc)(details=[{"field": "url", "message": exc.message}]) from None
    return url


def check_events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > len(SUBSCRIBABLE) + 1:
        raise _invalid("events", 'must be a non-empty list of event types, or ["*"]')
    chosen: list[str] = []
    for item in value:
        if not isinstance(item, str) or (item != ALL and item not in SUBSCRIBABLE):
            raise _invalid("events", f"unknown event type: {str(item)[:60]!r}")
        if item not in chosen:
            chosen.append(item)
    return [ALL] if ALL in chosen else chosen


def check_description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise _invalid("description", f"must be text of at most {MAX_DESCRIPTION} characters")
    return value or None


async def create(
    session: AsyncSession,
    *,
    settings: Settings,
    server_secret: str,
    clock: Clock,
    caller: CallerKey,
    url: Any,
    events: Any,
    description: Any,
) -> Created:
    checked_url = await check_url(settings, url)
    chosen = check_events(events)
    text = check_description(description)
    count = await session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == caller.tenant_id, WebhookEndpoint.mode == caller.mode)
    )
    if int(count or 0) >= MAX_ENDPOINTS:
        raise WebhookLimitReached()
    secret = new_signing_secret()
    now = clock.now()
    row = WebhookEndpoint(
        id=uuid7(),
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        url=checked_url,
        events=chosen,
        description=text,
        enabled=True,
        secret_encrypted=_box(server_secret).encrypt(secret),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return Created(row, secret)


async def get(session: AsyncSession, caller: CallerKey, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint of the caller's tenant and mode; another tenant's id is simply not found."""
    row = await session.get(WebhookEndpoint, endpoint_id) if len(endpoint_id) <= 36 else None
    if row is None or row.tenant_id != caller.tenant_id or row.mode != caller.mode:
        raise WebhookNotFound()
    return row


async def list_endpoints(session: AsyncSession, caller: CallerKey) -> list[WebhookEndpoint]:
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == caller.tenant_id, WebhookEndpoint.mode == caller.mode)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list(rows)


async def update(
    session: AsyncSession,
    *,
    settings: Settings,
    clock: Clock,
    caller: CallerKey,
    endpoint_id: str,
    changes: dict[str, Any],
) -> WebhookEndpoint:
    row = await get(session, caller, endpoint_id)
    if "url" in changes:
        row.url = await check_url(settings, changes["url"])
    if "events" in changes:
        row.events = check_events(changes["events"])
    if "description" in changes:
        row.description = check_description(changes["description"])
    if "enabled" in changes:
        enabled = changes["enabled"]
        if not isinstance(enabled, bool):
            raise _invalid("enabled", "must be true or false")
        if enabled and not row.enabled:
            # A fresh start: the failure streak that disabled it is forgotten.
            row.failing_since = None
            row.disabled_reason = None
        row.enabled = enabled
    row.updated_at = clock.now()
    return row


async def delete(session: AsyncSession, caller: CallerKey, endpoint_id: str) -> None:
    # Its queued deliveries are cancelled by the worker when their turn comes (the endpoint
    # is gone); its attempt log goes with it (ON DELETE CASCADE).
    row = await get(session, caller, endpoint_id)
    await session.delete(row)


async def rotate(
    session: AsyncSession,
    *,
    server_secret: str,
    clock: Clock,
    caller: CallerKey,
    endpoint_id: str,
) -> Created:
    row = await get(session, caller, endpoint_id)
    now = clock.now()
    secret = new_signing_secret()
    row.previous_secret_encrypted = row.secret_encrypted
    row.previous_expires_at = now + ROTATION_OVERLAP
    row.secret_encrypted = _box(server_secret).encrypt(secret)
    row.updated_at = now
    return Created(row, secret)
