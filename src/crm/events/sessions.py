"""The session events: a sign-in started one, a sign-out, reset or revocation ended some."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts.models import Contact
from crm.events.service import NamedContact, record_event
from crm.vocabulary import EventType


def session_started(
    session: AsyncSession,
    now: datetime,
    contact: NamedContact,
    session_id: str,
    application_id: str | None,
) -> None:
    data = {"session": {"id": session_id}, "application_id": application_id}
    record_event(
        session=session, now=now, type=EventType.SESSION_STARTED, contact=contact, data=data
    )


async def sessions_ended(
    session: AsyncSession, now: datetime, contact_pk: int, session_ids: list[str], reason: str
) -> None:
    """One `session.ended` per session, with the reason (a RevokeReason value). Sessions that
    run out of time end without an event: nothing happens at that moment."""
    if not session_ids:
        return
    contact = await session.get(Contact, contact_pk)
    if contact is None:
        return
    for session_id in session_ids:
        record_event(
            session=session,
            now=now,
            type=EventType.SESSION_ENDED,
            contact=contact,
            data={"session": {"id": session_id}, "reason": str(reason)},
        )


class LockedIdentity(Protocol):
    id: str
    provider: str
    contact_pk: int


async def identity_locked(
    session: AsyncSession, now: datetime, identity: LockedIdentity, reason: str
) -> None:
    """`identity.locked`: too many wrong codes (`reason` CODE) or passwords (PASSWORD)."""
    contact = await session.get(Contact, identity.contact_pk)
    if contact is None:
        return
    data = {"identity": {"id": identity.id, "provider": identity.provider}, "reason": reason}
    record_event(
        session=session, now=now, type=EventType.IDENTITY_LOCKED, contact=contact, data=data
    )
