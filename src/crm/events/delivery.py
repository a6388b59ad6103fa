"""Sending one webhook delivery (an outbox row of channel WEBHOOK) and recording its outcome.

The outbox's lease protocol applies unchanged (messaging/delivery.py claims the row, the worker
calls `send` then `record`): delivery is at-least-once and unordered. A receiver drops repeats
by the `X-CRM-Event-Id` header. A 2xx answer is success; anything else, or no answer, is retried
with exponential backoff and jitter for CRM_WEBHOOK_RETRY_SECONDS after the row was queued. An
endpoint that has failed every delivery for CRM_WEBHOOK_DISABLE_AFTER_SECONDS is disabled and a
`webhook.disabled` event is written (to the tenant's other endpoints) and its owners are emailed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.events import notices
from crm.events.models import Event, WebhookAttempt, WebhookEndpoint
from crm.events.service import event_document, record_event
from crm.events.webhooks import signing_secrets
from crm.ids import uuid7
from crm.messaging.models import OutboxMessage
from crm.messaging.providers.webhook import SIGNATURE_HEADER, USER_AGENT, sign_webhook
from crm.metrics import REGISTRY as METRICS
from crm.settings import Settings
from crm.unit_of_work import session_scope
from crm.vocabulary import EventType

EVENT_ID_HEADER = "X-CRM-Event-Id"
_MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class Target:
    """What one try needs, read before the send: the endpoint, its secrets, the exact body."""

    endpoint_id: str
    url: str
    secrets: list[str]
    event_id: str
    body: bytes
    queued_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status_code: int | None
    duration_ms: int
    error: str | None


def body_of(event: Event) -> bytes:
    """The exact bytes that are signed and sent: compact UTF-8 JSON of the event document."""
    document = event_document(event)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature_header(secrets: list[str], body: bytes, timestamp: int) -> str:
    """`t=<unix>,v1=<hex>` with one v1 per signing secret (two during a rotation)."""
    parts = [sign_webhook(secret, body, timestamp=timestamp) for secret in secrets]
    return ",".join([f"t={timestamp}"] + [p.split(",", 1)[1] for p in parts])


def headers_for(secrets: list[str], body: bytes, event_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secrets, body, int(time.time())),
        EVENT_ID_HEADER: event_id,
    }


async def prepare(
    sessions: async_sessionmaker[AsyncSession],
    server_secret: str,
    clock: Clock,
    *,
    message_id: str,
    endpoint_id: str,
    event_id: str,
) -> Target | None:
    """The try's target, or None when there is nothing to send any more: the endpoint was
    deleted or disabled, or the event was purged."""
    async with sessions() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        event = await session.get(Event, event_id)
        queued_at = await session.scalar(
            select(OutboxMessage.created_at).where(OutboxMessage.id == message_id)
        )
    if endpoint is None or not endpoint.enabled or event is None or queued_at is None:
        return None
    return Target(
        endpoint_id=endpoint.id,
        url=endpoint.url,
        secrets=signing_secrets(server_secret, endpoint, clock.now()),
        event_id=event.id,
        body=body_of(event),
        queued_at=queued_at,
    )


async def post(client: httpx.AsyncClient, target: Target, limit_seconds: float) -> Attempt:
    """One POST; never raises except on cancellation. Only the status is read, never the body."""
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        # The whole exchange is bounded, not each read: a trickling answer cannot hold a slot.
        async with (
            asyncio.timeout(limit_seconds),
            client.stream(
                "POST",
                target.url,
                content=target.body,
                headers=headers_for(target.secrets, target.body, target.event_id),
                timeout=limit_seconds,
            ) as response,
        ):
            status = response.status_code
    except (TimeoutError, httpx.TimeoutException):
        error = f"no answer within {limit_seconds:g}s"
    except httpx.HTTPError as exc:
        error = f"connection failed ({type(exc).__name__})"
    except Exception as exc:
        # The guarded client refuses internal addresses with its own errors.
        error = f"not sent ({type(exc).__name__}: {str(exc)[:200]})"
    ok = status is not None and 200 <= status < 300
    if status is not None and not ok:
        error = f"the endpoint answered {status}"
    duration_ms = int((time.perf_counter() - started) * 1000)
    return Attempt(ok=ok, status_code=status, duration_ms=duration_ms, error=error)


def backoff_seconds(settings: Settings, attempt: int, rng: random.Random) -> float:
    """base * 2^(attempt-1), capped, with +/-20% jitter so one outage's retries spread out."""
    raw = settings.webhook_backoff_base_seconds * float(2 ** min(attempt - 1, 30))
    capped: float = min(settings.webhook_backoff_max_seconds, raw)
    return capped * rng.uniform(0.8, 1.2)


async def record(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    *,
    message_id: str,
    attempt_number: int,
    target: Target,
    attempt: Attempt,
    rng: random.Random,
    server_secret: str,
) -> str | None:
    """Write the try's outcome, its attempt row and the endpoint's failure streak in one
    transaction; returns the outbox status, or None when the lease was lost."""
    now = clock.now()
    values: dict[str, Any] = {"claimed_at": None, "provider": "webhook"}
    if attempt.ok:
        values.update(status="sent", sent_at=now, last_error=None)
    else:
        values["last_error"] = (attempt.error or "delivery failed")[:_MAX_ERROR]
        retry_until = target.queued_at + timedelta(seconds=settings.webhook_retry_seconds)
        next_at = now + timedelta(seconds=backoff_seconds(settings, attempt_number, rng))
        if next_at > retry_until:
            values["status"] = "failed"
        else:
            values.update(status="queued", next_attempt_at=next_at)
    status = str(values["status"])
    async with session_scope(sessions) as session:
        result = await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == "sending",
                OutboxMessage.attempts == attempt_number,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not cast(CursorResult[Any], result).rowcount:
            METRICS.webhook_deliveries.inc("lost_lease")
            return None
        session.add(
            WebhookAttempt(
                id=uuid7(),
                endpoint_id=target.endpoint_id,
                event_id=target.event_id,
                outbox_id=message_id,
                attempt=attempt_number,
                status_code=attempt.status_code,
                duration_ms=attempt.duration_ms,
                outcome="sent" if attempt.ok else ("retry" if status == "queued" else status),
                error=None if attempt.error is None else attempt.error[:_MAX_ERROR],
                created_at=now,
            )
        )
        await _streak(
            session,
            settings,
            clock,
            target.endpoint_id,
            ok=attempt.ok,
            now=now,
            server_secret=server_secret,
        )
    METRICS.webhook_deliveries.inc(
        "sent" if attempt.ok else "retry" if status == "queued" else status
    )
    return status


async def _streak(
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    endpoint_id: str,
    *,
    ok: bool,
    now: datetime,
    server_secret: str,
) -> None:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        return
    if ok:
        endpoint.failing_since = None
        return
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        return
    limit = timedelta(seconds=settings.webhook_disable_after_seconds)
    if endpoint.enabled and now - endpoint.failing_since >= limit:
        endpoint.enabled = False
        endpoint.disabled_reason = "every delivery failed for too long"
        endpoint.updated_at = now
        # The owners get an email; the event goes to the tenant's other endpoints, and the
        # API and console show the endpoint disabled with its reason.
        await notices.tell_owners(
            session,
            clock,
            secret=server_secret,
            endpoint=endpoint,
            failing_seconds=int((now - endpoint.failing_since).total_seconds()),
        )
        record_event(
            session=session,
            now=now,
            type=EventType.WEBHOOK_DISABLED,
            contact=None,
            tenant_id=endpoint.tenant_id,
            mode=endpoint.mode,
            data={"webhook": {"id": endpoint.id, "url": endpoint.url}},
        )


async def cancel(sessions: async_sessionmaker[AsyncSession], message_id: str, attempt: int) -> None:
    """Nothing to send any more (endpoint gone or disabled, event purged): close the row."""
    async with session_scope(sessions) as session:
        await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == "sending",
                OutboxMessage.attempts == attempt,
            )
            .values(
                status="cancelled",
                claimed_at=None,
                last_error="the endpoint was deleted or disabled, or the event purged",
            )
            .execution_options(synchronize_session=False)
        )
    METRICS.webhook_deliveries.inc("cancelled")


async def oldest_undelivered(engine: AsyncEngine, clock: Clock) -> list[tuple[str, float]]:
    """Per endpoint, the age in seconds of its oldest delivery not yet sent or given up."""
    now = clock.now()
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(OutboxMessage.recipient, func.min(OutboxMessage.created_at))
                .where(
                    OutboxMessage.channel == "WEBHOOK",
                    OutboxMessage.status.in_(("queued", "sending")),
                )
                .group_by(OutboxMessage.recipient)
            )
        ).all()
    found: list[tuple[str, float]] = []
    for endpoint_id, oldest in rows:
        if oldest is not None:
            if isinstance(oldest, str):
                oldest = datetime.fromisoformat(oldest)
            found.append((str(endpoint_id), max(0.0, (now - oldest).total_seconds())))
    return found
