"""Right to erasure across the tables that hang off a contact: its sign-in identities and their
codes, its sessions and its messages, then the contact record itself."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts import service as contacts
from crm.contacts.models import Contact
from crm.identities.models import Identity, OtpChallenge, Session
from crm.messaging.models import OutboxMessage


async def erase(session: AsyncSession, clock: Clock, contact: Contact, *, actor: str) -> None:
    """Right to erasure: clear personal data, identities, sessions and unsent messages.

    The row stays as a tombstone (id, code, erased_at) so the id is never given to someone else.
    """
    await session.execute(delete(Session).where(Session.contact_pk == contact.pk))
    identity_ids = select(Identity.id).where(Identity.contact_pk == contact.pk)
    await session.execute(delete(OtpChallenge).where(OtpChallenge.identity_id.in_(identity_ids)))
    await session.execute(delete(Identity).where(Identity.contact_pk == contact.pk))
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.contact_pk == contact.pk, OutboxMessage.status.in_(("queued", "sending"))
        )
        .values(status="cancelled", last_error="contact erased")
    )
    # Delivered messages keep their delivery record but lose the personal content.
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.contact_pk == contact.pk)
        .values(
            recipient="[erased]",
            subject=None,
            body_text="[erased]",
            body_html=None,
            contact_pk=None,
        )
    )
    await contacts.erase_record(session, clock, contact, actor=actor)
