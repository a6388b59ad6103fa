"""One delivery step: claiming due messages, choosing the tenant's provider, sending, recording.

The protocol that keeps a message from being lost or sent twice by two workers:

1. **Claim** in its own committed transaction: due rows (`queued`, or `sending` whose lease ran
   out) are locked with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent workers take
   disjoint rows; on SQLite every write transaction starts with `BEGIN IMMEDIATE`, so one claimer
   runs at a time. A claimed row becomes `sending`, its `attempts` goes up by one and its
   `next_attempt_at` moves to the end of the lease.
2. **Send** outside any transaction, cut off at half the lease so a live worker always finishes
   before its lease could be taken over.
3. **Record** the outcome guarded by `status = 'sending' AND attempts = <the claimed attempt>`:
   `attempts` is a fencing token, so a worker whose lease was taken over cannot overwrite the
   newer claim's outcome.

A process killed between 2 and 3 leaves the row `sending`; once the lease has run out any worker
claims it again. Reset and verification emails are delivered at-least-once: the webhook carries
`message_id` (and the `X-CRM-Message-Id` header), and SMTP a Message-ID derived from it, so
receivers can drop a duplicate.

One-time codes are sent at most once per message where the provider cannot drop a repeat
(Twilio, SMTP): when the request may have reached the provider without an answer coming back (a
read timeout, a dropped connection, a worker stopped mid-send), the message becomes
`possibly_sent` instead of being sent again, and the customer asks for a new code if none came.
A failure before the request left (connection refused, a name that did not resolve) is retried.

Bodies are stored encrypted and opened here only, at send time; a sent or cancelled message's
body is blanked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import BindParameter, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver, pgpool, unit_of_work
from crm.events.messages import message_failed
from crm.messaging.integrations import deployment_provider, load_integrations
from crm.messaging.models import OutboxMessage, OutboxStatus
from crm.messaging.outbox import open_body
from crm.messaging.provider_cache import Providers
from crm.messaging.providers import (
    AmbiguousDeliveryError,
    DeliveryError,
    OutgoingMessage,
    PermanentDeliveryError,
    repeats_dropped,
)
from crm.metrics import REGISTRY as METRICS
from crm.runtime import Runtime
from crm.settings import Settings
from crm.unit_of_work import session_scope

log = logging.getLogger("crm.messaging.delivery")

_MAX_ERROR = 500
_MAX_PROVIDER_ID = 200


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A row this worker has leased; `attempt` is the fencing token for recording the outcome."""

    id: str
    tenant_id: str
    channel: str
    recipient: str
    purpose: str
    subject: str | None
    body_text: str
    body_html: str | None
    attempt: int
    expires_at: datetime | None
    # The tenant's own provider (name, encrypted settings, version) or None for the default.
    integration: tuple[str, str, datetime] | None

    def outgoing(self, secret: str) -> OutgoingMessage:
        """The message in the clear: bodies are opened only here, just before the send."""
        return OutgoingMessage(
            id=self.id,
            tenant_id=self.tenant_id,
            channel=cast(Any, self.channel),
            recipient=self.recipient,
            subject=self.subject,
            body_text=open_body(secret, self.body_text),
            body_html=None if self.body_html is None else open_body(secret, self.body_html),
        )


# Purposes sent at most once when a repeat cannot be dropped: a second code is worse than a
# missing one (it reads as an attack, and each costs money); a lost link is asked for again.
AT_MOST_ONCE_PURPOSES = frozenset({"OTP"})

# "ambiguous": the request may have reached a provider that cannot drop a repeat.
Outcome = Literal["sent", "transient", "permanent", "ambiguous"]


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    provider: str | None = None
    provider_message_id: str | None = None
    # Short and safe to log (DeliveryError's contract): never the body, code or a secret.
    error: str | None = None


def backoff_seconds(settings: Settings, attempt: int, rng: random.Random) -> float:
    """Delay after failed try number `attempt` (1-based): base * 2^(attempt-1), capped, with
    +/-20% jitter so messages failed together by one outage do not retry in lockstep."""
    raw = settings.outbox_backoff_base_seconds * float(2 ** min(attempt - 1, 30))
    capped: float = min(settings.outbox_backoff_max_seconds, raw)
    return capped * rng.uniform(0.8, 1.2)


def due_filter(now: datetime | BindParameter[datetime]) -> Any:
    # `sending` rows have next_attempt_at = end of their lease, so one range finds both the due
    # and the abandoned ones, served by the (status, next_attempt_at) index.
    return (
        driver.any_of(OutboxMessage.status, ("queued", "sending")),
        OutboxMessage.next_attempt_at <= now,
    )


# Built once: the worker claims after every commit that queued a message (see crm.driver).
_DUE = driver.Statement(
    select(driver.table_of(OutboxMessage))
    .where(*due_filter(bindparam("now")))
    .order_by(OutboxMessage.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


async def claim(runtime: Runtime, limit: int) -> list[ClaimedMessage]:
    """Lease up to `limit` due messages in one committed transaction (see the module docstring).

    Messages whose code has expired are cancelled here rather than sent late; an abandoned
    message that already used its last try is failed.
    """
    settings = runtime.settings
    now = runtime.clock.now()
    lease = timedelta(seconds=settings.outbox_lease_seconds)
    claimed: list[OutboxMessage] = []
    async with unit_of_work.session_scope(runtime.sessions) as session:
        rows = [
            driver.adopt(session, OutboxMessage, row, refresh=True)
            for row in await driver.fetch(session, _DUE, {"now": now, "limit": limit})
        ]
        integrations = await load_integrations(session, {row.tenant_id for row in rows})
        for row in rows:
            if row.expires_at is not None and row.expires_at <= now:
                _close(row, "cancelled", "the code expired before the message could be sent")
                _count(row.channel, "cancelled")
                log.info("message cancelled: its code expired", extra=_fields(row))
                continue
            if row.status == "sending" and _at_most_once(
                settings, row.purpose, row.channel, integrations.get((row.tenant_id, row.channel))
            ):
                # The worker that held it stopped mid-send: the provider may have the code.
                _close(row, OutboxStatus.POSSIBLY_SENT, "interrupted mid-send; not sent again")
                _count(row.channel, OutboxStatus.POSSIBLY_SENT)
                log.warning(
                    "message possibly sent: its worker stopped mid-send", extra=_fields(row)
                )
                continue
            if (
                row.status == "sending"
                and row.channel != "WEBHOOK"  # retried for a time instead: events/delivery.py
                and row.attempts >= settings.outbox_max_attempts
            ):
                _close(row, "failed", "interrupted during the last try (lease expired)")
                await message_failed(session, now, row.id)
                _count(row.channel, "failed")
                log.warning("message failed: interrupted during its last try", extra=_fields(row))
                continue
            if row.status == "sending":
                log.warning(
                    "reclaiming a message whose lease expired (a worker stopped mid-send)",
                    extra=_fields(row),
                )
            row.status = "sending"
            row.attempts += 1
            row.claimed_at = now
            row.next_attempt_at = now + lease
            claimed.append(row)
    result = []
    for row in claimed:
        found = integrations.get((row.tenant_id, row.channel))
        integration = (
            None if found is None else (found.provider, found.config_encrypted, found.updated_at)
        )
        result.append(
            ClaimedMessage(
                id=row.id,
                tenant_id=row.tenant_id,
                channel=row.channel,
                recipient=row.recipient,
                purpose=row.purpose,
                subject=row.subject,
                body_text=row.body_text,
                body_html=row.body_html,
                attempt=row.attempts,
                expires_at=row.expires_at,
                integration=integration,
            )
        )
    return result


def _close(row: OutboxMessage, status: str, error: str) -> None:
    row.status = status
    row.last_error = error
    row.claimed_at = None
    if status == OutboxStatus.CANCELLED:
        row.body_text = ""
        row.body_html = None


def provider_name(settings: Settings, channel: str, integration: str | None) -> str:
    """The provider a message goes to: the tenant's own, or the deployment's."""
    return integration if integration is not None else deployment_provider(settings, channel)[0]


def _at_most_once(settings: Settings, purpose: str, channel: str, integration: Any) -> bool:
    """Whether a message must not be sent again after an ambiguous try."""
    if purpose not in AT_MOST_ONCE_PURPOSES:
        return False
    name = provider_name(settings, channel, None if integration is None else integration.provider)
    return not repeats_dropped(channel, name)


def _fields(row: OutboxMessage | ClaimedMessage) -> dict[str, Any]:
    # Ids and counters only: the recipient is personal data and the body holds the code.
    attempt = row.attempt if isinstance(row, ClaimedMessage) else row.attempts
    return {
        "message_id": row.id,
        "tenant_id": row.tenant_id,
        "channel": row.channel,
        "purpose": row.purpose,
        "attempt": attempt,
    }


def _count(channel: str, outcome: str) -> None:
    METRICS.delivery_attempts.inc(channel, outcome)


async def send(providers: Providers, message: ClaimedMessage, limit_seconds: float) -> SendResult:
    """One try. Never raises except on cancellation: every failure becomes a SendResult."""
    name: str | None = None
    started = time.perf_counter()
    try:
        name, provider = await providers.get(message)
        try:
            outgoing = message.outgoing(providers.secret)
        except Exception:
            # Another server secret than the one the body was sealed with: fixable, so retried.
            return SendResult("transient", name, error="the message body cannot be opened")
        # Bounded below the lease, so the lease never runs out while this worker still sends.
        async with asyncio.timeout(limit_seconds):
            provider_id = await provider.send(outgoing)
        return SendResult("sent", name, provider_id)
    except PermanentDeliveryError as exc:
        return SendResult("permanent", name, error=str(exc) or type(exc).__name__)
    except AmbiguousDeliveryError as exc:
        return _ambiguous(providers, message, name, str(exc) or type(exc).__name__)
    except DeliveryError as exc:
        return SendResult("transient", name, error=str(exc) or type(exc).__name__)
    except TimeoutError:
        # The cut-off can fall at any point of the send, so it may have left.
        return _ambiguous(providers, message, name, f"no answer within {limit_seconds:g}s")
    except Exception as exc:
        # A provider bug must not stop the worker. Only the type is kept: an exception's text
        # could quote the message it was handling.
        return SendResult("transient", name, error=f"unexpected error ({type(exc).__name__})")
    finally:
        METRICS.delivery_duration.observe(time.perf_counter() - started, message.channel)


def _ambiguous(
    providers: Providers, message: ClaimedMessage, name: str | None, error: str
) -> SendResult:
    integration = None if message.integration is None else message.integration[0]
    at_most_once = message.purpose in AT_MOST_ONCE_PURPOSES and not repeats_dropped(
        message.channel,
        name or provider_name(providers.settings, message.channel, integration),
    )
    return SendResult("ambiguous" if at_most_once else "transient", name, error=error)


async def record(
    runtime: Runtime, message: ClaimedMessage, result: SendResult, rng: random.Random
) -> str | None:
    """Write the outcome of one try; returns the new status, or None when the lease was lost."""
    settings = runtime.settings
    now = runtime.clock.now()
    values: dict[str, Any] = {"claimed_at": None}
    if result.provider is not None:
        values["provider"] = result.provider
    next_in: float | None = None
    if result.outcome == "sent":
        values.update(
            status="sent",
            sent_at=now,
            last_error=None,
            provider_message_id=(result.provider_message_id or "")[:_MAX_PROVIDER_ID] or None,
            # Sent: the code or link has done its work and is no longer kept, even encrypted.
            body_text="",
            body_html=None,
        )
    elif result.outcome == "ambiguous":
        values.update(
            status=OutboxStatus.POSSIBLY_SENT.value,
            last_error=f"{result.error or 'no answer'}; possibly sent, not sent again"[:_MAX_ERROR],
        )
    else:
        error = (result.error or "delivery failed")[:_MAX_ERROR]
        values["last_error"] = error
        if result.outcome == "permanent" or message.attempt >= settings.outbox_max_attempts:
            values["status"] = "failed"
        else:
            next_in = backoff_seconds(settings, message.attempt, rng)
            next_at = now + timedelta(seconds=next_in)
            if message.expires_at is not None and next_at >= message.expires_at:
                values.update(
                    status="cancelled",
                    last_error=f"{error}; the code expires before the next try",
                    body_text="",
                    body_html=None,
                )
            else:
                values.update(status="queued", next_attempt_at=next_at)
    if values["status"] != "failed" and runtime.engine.dialect.name == "postgresql":
        # One statement alone, in autocommit on the single statements' pool: a transaction
        # around it would be two more round trips for every message sent.
        statement, bound = _fenced(message, values)
        updated = await pgpool.run(runtime.engine, runtime.settings, statement, bound) is not None
    else:
        async with session_scope(runtime.sessions) as session:
            updated = await _fenced_update(session, message, values)
            if updated and values.get("status") == "failed":
                await message_failed(session, now, message.id)
    status = str(values["status"])
    fields = _fields(message) | {"provider": result.provider}
    if not updated:
        _count(message.channel, "lost_lease")
        log.warning(
            "outcome not recorded: another worker took over this message's lease", extra=fields
        )
        return None
    if status == "sent":
        _count(message.channel, "sent")
        log.info("message sent", extra=fields)
        return status
    _count(message.channel, "retry" if status == "queued" else status)
    log.warning(
        "message possibly sent: no answer after the request left; not sent again"
        if status == OutboxStatus.POSSIBLY_SENT
        else "delivery attempt failed",
        extra=fields
        | {
            "error": values["last_error"],
            "max_attempts": settings.outbox_max_attempts,
            "outcome": status,
            "retry_in_seconds": None if next_in is None else round(next_in, 2),
        },
    )
    return status


async def release(runtime: Runtime, message: ClaimedMessage) -> bool:
    """Give a claim back (graceful shutdown mid-send): due again at once, for any worker; a code
    whose provider cannot drop a repeat is `possibly_sent` instead, as the request may have left."""
    integration = None if message.integration is None else message.integration[0]
    values: dict[str, Any] = {"claimed_at": None}
    if message.purpose in AT_MOST_ONCE_PURPOSES and not repeats_dropped(
        message.channel, provider_name(runtime.settings, message.channel, integration)
    ):
        values.update(
            status=OutboxStatus.POSSIBLY_SENT.value,
            last_error="interrupted mid-send by a shutdown; not sent again",
        )
    else:
        values.update(status="queued", next_attempt_at=runtime.clock.now())
    async with session_scope(runtime.sessions) as session:
        return await _fenced_update(session, message, values)


# One statement per set of columns written (an outcome writes one of a few sets), built once.
_FENCED: dict[frozenset[str], driver.Statement] = {}


def _fenced(
    message: ClaimedMessage, values: dict[str, Any]
) -> tuple[driver.Statement, dict[str, Any]]:
    """The UPDATE that writes `values` only while this worker holds the message's lease
    (returning its id when it did), and its parameters."""
    columns = frozenset(values)
    statement = _FENCED.get(columns)
    if statement is None:
        table = driver.table_of(OutboxMessage)
        statement = _FENCED[columns] = driver.Statement(
            update(table)
            .where(
                # An UPDATE's parameters may not be named after its table's columns.
                table.c.id == bindparam("fenced_id"),
                table.c.status == "sending",
                table.c.attempts == bindparam("fenced_attempt"),
            )
            .values({name: bindparam(name) for name in sorted(columns)})
            .returning(table.c.id)
        )
    return statement, {**values, "fenced_id": message.id, "fenced_attempt": message.attempt}


async def _fenced_update(
    session: AsyncSession, message: ClaimedMessage, values: dict[str, Any]
) -> bool:
    """Write `values` if this worker still holds the message's lease; whether it did."""
    statement, bound = _fenced(message, values)
    return await driver.fetchrow(session, statement, bound) is not None
