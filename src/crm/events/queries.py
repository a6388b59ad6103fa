"""Reading events back: the Back-Office list and one event, for the caller's tenant and mode."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.errors import InvalidRequest
from crm.events.errors import EventNotFound
from crm.events.models import Event, WebhookAttempt, WebhookEndpoint
from crm.tenants.schemas import CallerKey
from crm.vocabulary import EventType

MAX_PAGE = 10_000
MAX_PAGE_SIZE = 100
_TYPES = frozenset(str(t) for t in EventType)
# Epoch seconds a database can hold on both sides (years 1970..9999).
_MAX_EPOCH = 253_402_300_799


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[Event]
    page: int
    size: int
    has_more: bool


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(details=[{"field": field, "message": message}])


def _instant(field: str, value: int | None) -> datetime | None:
    if value is None:
        return None
    if not 0 <= value <= _MAX_EPOCH:
        raise _invalid(field, "must be epoch seconds")
    return datetime.fromtimestamp(value, UTC)


def check_paging(page: int, size: int) -> None:
    if not 1 <= page <= MAX_PAGE:
        raise _invalid("page", f"must be between 1 and {MAX_PAGE}")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _invalid("size", f"must be between 1 and {MAX_PAGE_SIZE}")


async def list_events(
    session: AsyncSession,
    caller: CallerKey,
    *,
    type: str | None = None,
    contact_id: str | None = None,
    created_after: int | None = None,
    created_before: int | None = None,
    page: int = 1,
    size: int = 10,
) -> EventPage:
    """The caller's events (its tenant, its key's mode), newest first."""
    check_paging(page, size)
    conditions: list[Any] = [Event.tenant_id == caller.tenant_id, Event.mode == caller.mode]
    if type:
        if type not in _TYPES:
            raise _invalid("type", "unknown event type")
        conditions.append(Event.type == type)
    if contact_id:
        if len(contact_id) > 36:
            raise _invalid("contact_id", "at most 36 characters")
        conditions.append(Event.contact_id == contact_id)
    after = _instant("created_after", created_after)
    before = _instant("created_before", created_before)
    if after is not None:
        conditions.append(Event.created_at > after)
    if before is not None:
        conditions.append(Event.created_at < before)
    rows = list(
        await session.scalars(
            select(Event)
            .where(*conditions)
            # uuid7 ids grow with time: they break ties between events of the same instant.
            .order_by(Event.created_at.desc(), Event.id.desc())
            .offset((page - 1) * size)
            .limit(size + 1)
        )
    )
    return EventPage(events=rows[:size], page=page, size=size, has_more=len(rows) > size)


async def get_event(session: AsyncSession, caller: CallerKey, event_id: str) -> Event:
    """One event; another tenant's or mode's id is simply not found."""
    row = await session.get(Event, event_id) if len(event_id) <= 36 else None
    if row is None or row.tenant_id != caller.tenant_id or row.mode != caller.mode:
        raise EventNotFound()
    return row


async def list_attempts(
    session: AsyncSession, endpoint: WebhookEndpoint, *, page: int, size: int
) -> tuple[list[WebhookAttempt], bool]:
    """An endpoint's delivery attempts, newest first."""
    check_paging(page, size)
    rows = list(
        await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.endpoint_id == endpoint.id)
            .order_by(WebhookAttempt.created_at.desc(), WebhookAttempt.id.desc())
            .offset((page - 1) * size)
            .limit(size + 1)
        )
    )
    return rows[:size], len(rows) > size


async def purge(session: AsyncSession, now: datetime, retention_days: int) -> int:
    """Delete events and attempts older than the retention (housekeeping)."""
    horizon = now - timedelta(days=retention_days)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.created_at < horizon))
    result = await session.execute(
        delete(Event).where(Event.created_at < horizon, Event.fanout_pending.is_(False))
    )
    return int(getattr(result, "rowcount", 0) or 0)
