"""Handing committed events to the tenant's webhook endpoints: one outbox row per endpoint.

Why the worker fans out, not the request: the request that makes a change writes one event row
in its own transaction, whatever the number of endpoints, so sign-up pays one insert and no
endpoint lookup (bench/README.md). Nothing is lost by waiting: the event is committed with the
change, and `fanout_pending` stays true until this step has committed the outbox rows, in one
transaction with the flag, so a crash in between repeats the step rather than skipping it.
Endpoints are matched when the worker fans out; one created a moment after an event may or may
not receive it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm import driver, unit_of_work
from crm.clock import Clock
from crm.events.models import Event, WebhookEndpoint
from crm.events.webhooks import wants
from crm.ids import uuid7
from crm.messaging.models import OutboxMessage

# The outbox channel and purpose of a webhook delivery. Its row names the endpoint as the
# recipient and the event as the subject; the body is the event row itself, read at send time.
WEBHOOK_CHANNEL = "WEBHOOK"
WEBHOOK_PURPOSE = "EVENT"


def delivery_row(event_id: str, endpoint: WebhookEndpoint, now: datetime) -> OutboxMessage:
    return OutboxMessage(
        id=uuid7(),
        tenant_id=endpoint.tenant_id,
        mode=endpoint.mode,
        contact_pk=None,
        channel=WEBHOOK_CHANNEL,
        recipient=endpoint.id,
        purpose=WEBHOOK_PURPOSE,
        subject=event_id,
        body_text="",
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


# Built once: the worker looks after every commit that queued a message.
# Built once (see crm.driver on why the hot statements are).
_PENDING = driver.Statement(
    select(driver.table_of(Event))
    .where(Event.fanout_pending.is_(True))
    .order_by(Event.created_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_ENDPOINTS = driver.Among(
    WebhookEndpoint, WebhookEndpoint.tenant_id, WebhookEndpoint.enabled.is_(True)
)


async def fan_out(sessions: async_sessionmaker[AsyncSession], clock: Clock, *, limit: int) -> int:
    """Fan out up to `limit` pending events; returns how many were handled."""
    now = clock.now()
    async with unit_of_work.session_scope(sessions) as session:
        events = [
            driver.adopt(session, Event, row, refresh=True)
            for row in await driver.fetch(session, _PENDING, {"limit": limit})
        ]
        if not events:
            return 0
        statement, values = _ENDPOINTS.bound(sorted({e.tenant_id for e in events}))
        endpoints = [
            driver.adopt(session, WebhookEndpoint, row, refresh=False)
            for row in await driver.fetch(session, statement, values)
        ]
        for event in events:
            for endpoint in endpoints:
                # Tenant and mode both match, or nothing is sent: test-mode changes never
                # reach a live endpoint, and one tenant's never reach another's.
                if (
                    endpoint.tenant_id == event.tenant_id
                    and endpoint.mode == event.mode
                    and wants(endpoint, event.type)
                ):
                    session.add(delivery_row(event.id, endpoint, now))
            event.fanout_pending = False
        return len(events)


async def redeliver(
    session: AsyncSession, event: Event, endpoints: list[WebhookEndpoint], now: datetime
) -> list[str]:
    """Queue the event again for these endpoints (enabled or not: the caller asked)."""
    rows = [delivery_row(event.id, endpoint, now) for endpoint in endpoints]
    session.add_all(rows)
    return [row.id for row in rows]
