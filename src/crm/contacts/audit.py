"""The audit trail of a contact: who did what to which fields, recorded and read back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts.models import AuditEvent, Contact
from crm.events.service import audit_event
from crm.ids import uuid7


def record_audit(
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    action: str,
    actor: str,
    fields: Iterable[str],
) -> None:
    """Who did what to which fields of a contact (names only: values of secrets never land here).
    The actions other systems hear of are written as events by the same call."""
    names = list(fields)
    session.add(AuditEvent(**audit_row(contact, action, actor, names, clock.now())))
    audit_event(session, clock, contact, action, actor, names)


def audit_row(
    contact: Contact, action: str, actor: str, fields: Iterable[str], now: dt.datetime
) -> dict[str, Any]:
    """The `audit_events` row of one action on a contact."""
    return {
        "id": uuid7(),
        "tenant_id": contact.tenant_id,
        "mode": contact.mode,
        "contact_id": contact.id,
        "action": action,
        "actor": actor[:80],
        "fields": list(fields),
        "created_at": now,
    }


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    has_more: bool


async def list_audit(session: AsyncSession, contact: Contact, *, page: int, size: int) -> AuditPage:
    """A contact's audit trail, newest first (uuid7 ids break ties in time order)."""
    rows = list(
        await session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.tenant_id == contact.tenant_id,
                AuditEvent.mode == contact.mode,
                AuditEvent.contact_id == contact.id,
            )
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            .offset((page - 1) * size)
            .limit(size + 1)
        )
    )
    return AuditPage(events=rows[:size], has_more=len(rows) > size)


async def count_audit(session: AsyncSession, contact: Contact) -> int:
    total = await session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.tenant_id == contact.tenant_id,
            AuditEvent.mode == contact.mode,
            AuditEvent.contact_id == contact.id,
        )
    )
    return int(total or 0)
