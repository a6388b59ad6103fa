"""Putting messages in the outbox inside the caller's transaction (sent by the worker after commit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.ids import uuid7
from crm.messaging.models import OutboxMessage
from crm.messaging.templates import RenderedMessage

# Marks a session whose commit must wake the delivery worker (see api.deps.get_session).
OUTBOX_DIRTY = "outbox_dirty"


async def enqueue(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    mode: str,
    channel: str,
    recipient: str,
    purpose: str,
    message: RenderedMessage,
    contact_pk: int | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Queue one message. It leaves only if the caller's transaction commits.

    Test-mode messages are recorded as sent at once and never reach a provider: integrators
    read them from the test outbox.
    """
    now = clock.now()
    test_mode = mode == "test"
    row = OutboxMessage(
        id=uuid7(),
        tenant_id=tenant_id,
        mode=mode,
        contact_pk=contact_pk,
        channel=channel,
        recipient=recipient,
        purpose=purpose,
        subject=message.subject,
        body_text=message.body_text,
        body_html=message.body_html,
        status="sent" if test_mode else "queued",
        attempts=0,
        next_attempt_at=now,
        expires_at=expires_at,
        provider="test" if test_mode else None,
        created_at=now,
        sent_at=now if test_mode else None,
    )
    session.add(row)
    if not test_mode:
        session.info[OUTBOX_DIRTY] = True
    return row.id
