"""Putting messages in the outbox inside the caller's transaction (sent by the worker after commit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.ids import uuid7
from crm.messaging import tenant_templates
from crm.messaging.models import OutboxMessage
from crm.messaging.templates import RenderedMessage
from crm.security.crypto import SecretBox

# Marks a session whose commit must wake the delivery worker (see api.deps.get_session).
OUTBOX_DIRTY = "outbox_dirty"
# The SecretBox purpose of message bodies: they open for nothing else, nothing else opens here.
BODY_PURPOSE = "outbox-body"
# SecretBox values start with this; bodies stored before encryption existed do not.
_SEALED_PREFIX = "v1."


def seal_body(secret: str, text: str) -> str:
    """A body as stored: codes and reset links are secrets, encrypted like the others."""
    return SecretBox(secret, BODY_PURPOSE).encrypt(text)


def open_body(secret: str, stored: str) -> str:
    """A stored body in the clear (the worker at send time, the test outbox). Bodies written
    before they were encrypted are returned as they are; an empty one was blanked."""
    if not stored or not stored.startswith(_SEALED_PREFIX):
        return stored
    return SecretBox(secret, BODY_PURPOSE).decrypt(stored).decode("utf-8")


async def enqueue(
    session: AsyncSession,
    clock: Clock,
    *,
    secret: str,
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
    read them from the test outbox, which decrypts their bodies for test keys only. They keep
    their (encrypted) bodies until the retention purge, unlike live ones, which are blanked once
    sent: a test-mode code opens only test-mode contacts, and reading it is what the test outbox
    is for.
    """
    # The tenant's own words replace the built-in ones here, the one place every message passes.
    message = await tenant_templates.apply(session, tenant_id=tenant_id, mode=mode, message=message)
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
        body_text=seal_body(secret, message.body_text),
        body_html=None if message.body_html is None else seal_body(secret, message.body_html),
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
