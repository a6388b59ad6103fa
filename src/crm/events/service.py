"""Writing an event inside the caller's transaction, and the document it is delivered as.

An event is one row added to the session that makes the change: it commits with the change or
not at all. Nothing else happens on the request's path; the delivery worker hands committed
events to the tenant's webhook endpoints (fanout.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock, epoch
from crm.events.models import Event
from crm.ids import uuid7
from crm.messaging.outbox import OUTBOX_DIRTY
from crm.metrics import REGISTRY as METRICS
from crm.vocabulary import EventType

# Keys that must never reach an event's data, whatever a caller passes: events leave the
# server, and these are secrets or personal message contents.
_FORBIDDEN_KEYS = frozenset(
    {"code", "token", "password", "secret", "body", "refresh_token", "access_token", "otp"}
)


class NamedContact(Protocol):
    """What an event needs of a contact: its public id and code, its tenant and mode."""

    @property
    def id(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def mode(self) -> str: ...


def record_event(
    *,
    session: AsyncSession,
    now: datetime,
    type: EventType,
    contact: NamedContact | None,
    data: Mapping[str, Any] | None = None,
    tenant_id: str | None = None,
    mode: str | None = None,
) -> Event:
    """Add one event to the caller's transaction; tenant and mode come from the contact when
    there is one (so test-mode changes only make test-mode events)."""
    document: dict[str, Any] = {}
    if contact is not None:
        document["contact"] = {"id": contact.id, "code": contact.code}
        tenant_id, mode = contact.tenant_id, contact.mode
    for key, value in (data or {}).items():
        if key in _FORBIDDEN_KEYS:
            raise ValueError(f"an event must not carry {key!r}")
        document[key] = value
    if tenant_id is None or mode is None:
        raise ValueError("an event without a contact needs its tenant and mode")
    row = Event(
        id=uuid7(),
        tenant_id=tenant_id,
        mode=mode,
        type=str(type),
        contact_id=None if contact is None else contact.id,
        data=document,
        fanout_pending=True,
        created_at=now,
    )
    session.add(row)
    # The commit wakes the worker in this process, which fans the event out to endpoints.
    session.info[OUTBOX_DIRTY] = True
    METRICS.events_written.inc(str(type))
    return row


def created_event_rows(
    session: AsyncSession, contacts: list[NamedContact], *, actor: str, now: datetime
) -> list[dict[str, Any]]:
    """`contact.created` rows for a bulk insert (the import's fast path), marking the session
    so its commit wakes the worker, as record_event does."""
    session.info[OUTBOX_DIRTY] = True
    METRICS.events_written.inc(str(EventType.CONTACT_CREATED), amount=len(contacts))
    return [
        {
            "id": uuid7(),
            "tenant_id": contact.tenant_id,
            "mode": contact.mode,
            "type": str(EventType.CONTACT_CREATED),
            "contact_id": contact.id,
            "data": {"contact": {"id": contact.id, "code": contact.code}, "actor": actor},
            "fanout_pending": True,
            "created_at": now,
        }
        for contact in contacts
    ]


def event_document(event: Event) -> dict[str, Any]:
    """The event as the API shows it and webhooks receive it."""
    return {
        "id": event.id,
        "type": event.type,
        "created": epoch(event.created_at),
        "mode": event.mode,
        "data": event.data,
    }


# Audit actions that are events one for one (contacts/audit.py calls `audit_event`): the two
# are written by the same call, so they cannot drift apart.
AUDIT_EVENTS: dict[str, EventType] = {
    "CREATED": EventType.CONTACT_CREATED,
    "UPDATED": EventType.CONTACT_UPDATED,
    "ERASED": EventType.CONTACT_ERASED,
    "IDENTITY_ADDED": EventType.IDENTITY_ADDED,
    "IDENTITY_REMOVED": EventType.IDENTITY_REMOVED,
    "IDENTITY_UNLOCKED": EventType.IDENTITY_UNLOCKED,
    "PASSWORD_CHANGED": EventType.PASSWORD_CHANGED,
}


def audit_event(
    session: AsyncSession,
    clock: Clock,
    contact: NamedContact,
    action: str,
    actor: str,
    fields: list[str],
) -> None:
    """The event of an audited action, if it has one. `contact.updated` names the changed
    fields (never their values); the actor says which surface made the change."""
    type = AUDIT_EVENTS.get(action)
    if type is None:
        return
    data: dict[str, Any] = {"actor": actor}
    if type is EventType.CONTACT_UPDATED:
        data["fields"] = fields
    record_event(session=session, now=clock.now(), type=type, contact=contact, data=data)


class NamedIdentity(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def provider(self) -> str: ...


def identity_event(
    session: AsyncSession,
    now: datetime,
    type: EventType,
    contact: NamedContact,
    identity: NamedIdentity,
) -> None:
    """An identity event names the identity and its kind, never the address or number."""
    data = {"identity": {"id": identity.id, "provider": identity.provider}}
    record_event(session=session, now=now, type=type, contact=contact, data=data)


def consent_changed(
    session: AsyncSession,
    now: datetime,
    contact: NamedContact,
    values: Mapping[str, bool],
    source: str,
) -> None:
    """`consent.changed` with each changed flag's new value (consent is not a secret: other
    systems must honour it)."""
    if not values:
        return
    data = {"consent": dict(values), "source": source}
    record_event(
        session=session, now=now, type=EventType.CONSENT_CHANGED, contact=contact, data=data
    )
