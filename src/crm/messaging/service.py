"""Reading the outbox (the test outbox API, operators' listing, metrics) and retrying a message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm.clock import Clock
from crm.db import read_connection
from crm.errors import Conflict, Forbidden, InvalidRequest, NotFound
from crm.messaging.models import OutboxMessage, OutboxStatus
from crm.messaging.outbox import open_body
from crm.messaging.templates import PURPOSES
from crm.tenants.schemas import CallerKey

STATUSES = tuple(status.value for status in OutboxStatus)
# What an operator may queue again: a failed or cancelled message, or one possibly sent whose
# provider shows it was not (sending it again is the operator's informed choice).
RETRYABLE = (OutboxStatus.FAILED, OutboxStatus.CANCELLED, OutboxStatus.POSSIBLY_SENT)
CHANNELS = ("SMS", "EMAIL")
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000


class TestKeyRequired(Forbidden):
    __test__ = False  # not a pytest class, despite the name
    code = "TEST_KEY_REQUIRED"
    message = (
        "The outbox lists test-mode messages only; use a test secret key (sk_test_...). "
        "Live messages go to your providers."
    )


class OutboxMessageNotFound(NotFound):
    code = "OUTBOX_MESSAGE_NOT_FOUND"
    message = "No such outbox message."


class OutboxMessageNotRetryable(Conflict):
    code = "OUTBOX_MESSAGE_NOT_RETRYABLE"
    message = "Only a failed, cancelled or possibly sent live message can be retried."


class OutboxMessageExpired(Conflict):
    code = "OUTBOX_MESSAGE_EXPIRED"
    message = "The message's code has expired; sending it now would not help."


@dataclass(frozen=True, slots=True)
class TestMessage:
    __test__ = False
    id: str
    channel: str
    recipient: str
    purpose: str
    subject: str | None
    body: str
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Page:
    page: int
    size: int
    total: int
    items: list[TestMessage]

    @property
    def has_more(self) -> bool:
        return self.page * self.size < self.total


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What an operator sees of a message: never its body (the code)."""

    id: str
    tenant_id: str
    mode: str
    channel: str
    recipient: str
    purpose: str
    status: str
    attempts: int
    provider: str | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


def _recipient_filter(value: str) -> str:
    cleaned = value.strip()
    # An unencoded `+` in a query string arrives as a space: `?recipient=+3579...` means E.164.
    if value.startswith(" ") and cleaned.isdigit():
        return "+" + cleaned
    return cleaned


async def list_test_outbox(
    session: AsyncSession,
    caller: CallerKey,
    *,
    secret: str,
    recipient: str | None = None,
    purpose: str | None = None,
    page: int = 1,
    size: int = 10,
) -> Page:
    """The caller's test-mode messages, newest first (API.md section 1).

    The one place bodies are shown: test-mode ones, to the tenant's test keys, so integrators can
    read the codes their tests asked for. Live bodies are never listed, by any API.
    """
    if caller.mode != "test":
        raise TestKeyRequired()
    # Bounded above too: a huge page overflows the database's integer OFFSET (a 500).
    if not 1 <= page <= MAX_PAGE:
        raise InvalidRequest(
            details=[{"field": "page", "message": f"must be between 1 and {MAX_PAGE}"}]
        )
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidRequest(
            details=[{"field": "size", "message": f"must be between 1 and {MAX_PAGE_SIZE}"}]
        )
    conditions = [OutboxMessage.tenant_id == caller.tenant_id, OutboxMessage.mode == "test"]
    conditions.append(OutboxMessage.channel.in_(("SMS", "EMAIL")))  # not webhook deliveries
    if recipient:
        conditions.append(OutboxMessage.recipient == _recipient_filter(recipient))
    if purpose:
        wanted = purpose.strip().upper()
        if wanted not in PURPOSES:
            raise InvalidRequest(
                details=[{"field": "purpose", "message": f"must be one of: {', '.join(PURPOSES)}"}]
            )
        conditions.append(OutboxMessage.purpose == wanted)
    total = await session.scalar(select(func.count()).select_from(OutboxMessage).where(*conditions))
    rows = await session.scalars(
        select(OutboxMessage)
        .where(*conditions)
        # uuid7 ids grow with time: they break ties between messages of the same instant.
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    items = [
        TestMessage(
            id=row.id,
            channel=row.channel,
            recipient=row.recipient,
            purpose=row.purpose,
            subject=row.subject,
            body=_readable(secret, row.body_text),
            status=row.status,
            created_at=row.created_at,
        )
        for row in rows
    ]
    return Page(page=page, size=size, total=int(total or 0), items=items)


def _readable(secret: str, stored: str) -> str:
    try:
        return open_body(secret, stored)
    except Exception:
        # Sealed with another server secret: shown as unreadable rather than failing the page.
        return ""


async def list_messages(
    session: AsyncSession,
    *,
    status: str | None = None,
    tenant_id: str | None = None,
    limit: int = 50,
) -> list[MessageInfo]:
    """Live and test messages for operators, newest first."""
    query = select(OutboxMessage)
    if status is not None:
        if status not in STATUSES:
            raise InvalidRequest(f"status must be one of: {', '.join(STATUSES)}")
        query = query.where(OutboxMessage.status == status)
    if tenant_id is not None:
        query = query.where(OutboxMessage.tenant_id == tenant_id)
    rows = await session.scalars(
        query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()).limit(limit)
    )
    return [_info(row) for row in rows]


async def retry_message(session: AsyncSession, clock: Clock, message_id: str) -> MessageInfo:
    """Queue a failed or cancelled live message again with a fresh set of tries."""
    row = await session.get(OutboxMessage, message_id, with_for_update=True)
    if row is None:
        raise OutboxMessageNotFound()
    if row.mode != "live" or row.status not in RETRYABLE or not row.body_text:
        raise OutboxMessageNotRetryable()
    now = clock.now()
    if row.expires_at is not None and row.expires_at <= now:
        raise OutboxMessageExpired()
    row.status = "queued"
    row.attempts = 0
    row.next_attempt_at = now
    row.claimed_at = None
    await session.flush()
    return _info(row)


def _info(row: OutboxMessage) -> MessageInfo:
    return MessageInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        mode=row.mode,
        channel=row.channel,
        recipient=row.recipient,
        purpose=row.purpose,
        status=row.status,
        attempts=row.attempts,
        provider=row.provider,
        last_error=row.last_error,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
    )


@dataclass(frozen=True, slots=True)
class OutboxGauges:
    counts: dict[tuple[str, str], int]  # (channel, status) -> live messages
    oldest_due_age_seconds: float


async def outbox_gauges(engine: AsyncEngine, clock: Clock) -> OutboxGauges:
    """Counted in the database, so every process reports the same, whoever sent the messages.

    Test-mode messages are left out: they never reach a provider.
    """
    async with read_connection(engine) as connection:
        rows = await connection.execute(
            select(OutboxMessage.channel, OutboxMessage.status, func.count())
            .where(OutboxMessage.mode == "live")
            .group_by(OutboxMessage.channel, OutboxMessage.status)
        )
        counts = {(str(c), str(s)): int(n) for c, s, n in rows}
        oldest = await connection.scalar(
            select(func.min(OutboxMessage.created_at)).where(
                OutboxMessage.mode == "live", OutboxMessage.status.in_(("queued", "sending"))
            )
        )
    for channel in CHANNELS:
        for status in STATUSES:
            counts.setdefault((channel, status), 0)
    age = 0.0
    if oldest is not None:
        # SQLite returns the aggregate as text without the column type's conversion.
        if isinstance(oldest, str):
            oldest = datetime.fromisoformat(oldest)
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = max(0.0, (clock.now() - oldest).total_seconds())
    return OutboxGauges(counts=counts, oldest_due_age_seconds=age)
