"""`message.failed`: a code or link message to a contact that exhausted its tries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts.models import Contact
from crm.events.service import record_event
from crm.messaging.models import OutboxMessage
from crm.vocabulary import EventType


async def message_failed(session: AsyncSession, now: datetime, message_id: str) -> None:
    """Written in the transaction that marks the message failed. Names the message, its
    channel and purpose and the provider's error; never the recipient or the body."""
    row = await session.get(OutboxMessage, message_id)
    if row is None or row.contact_pk is None or row.channel not in ("SMS", "EMAIL"):
        return
    contact = await session.get(Contact, row.contact_pk)
    if contact is None:
        return
    data = {
        "message": {"id": row.id, "channel": row.channel, "purpose": row.purpose},
        "error": row.last_error,
    }
    record_event(
        session=session, now=now, type=EventType.MESSAGE_FAILED, contact=contact, data=data
    )
