"""Housekeeping that keeps tables from growing without bound: old idempotency answers, spent
rate-limit windows, delivered messages past their retention, and expired unproven claims."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts.models import Contact
from crm.db import session_scope
from crm.idempotency.service import purge_expired
from crm.identities.models import Identity, IdentityOrigin
from crm.messaging.models import OutboxMessage
from crm.ratelimits.models import RateCounter
from crm.runtime import Runtime

log = logging.getLogger("crm.maintenance")

# Rate windows are at most an hour long; two hours leaves every live window alone.
RATE_COUNTER_RETENTION = timedelta(hours=2)
# Finished messages only: queued and sending ones are work, failed ones are evidence.
_FINISHED = ("sent", "cancelled")


@dataclass(frozen=True, slots=True)
class Purged:
    idempotency_records: int
    rate_counters: int
    outbox_messages: int
    unproven_identities: int = 0


async def _purge_unproven(session: AsyncSession, clock: Clock, hours: int) -> int:
    """Delete Self-Service claims never proven within `hours`, and the contacts only they made.

    An unproven claim gives no power, but it holds a stranger's name against someone's address
    or number; the business's own identities (BACK_OFFICE) are never expired.
    """
    horizon = clock.now() - timedelta(hours=hours)
    expired = (
        Identity.verified_at.is_(None),
        Identity.origin != IdentityOrigin.BACK_OFFICE,
        Identity.created_at < horizon,
    )
    made = set(
        await session.scalars(
            select(Identity.contact_pk).where(
                *expired, Identity.origin == IdentityOrigin.REGISTRATION
            )
        )
    )
    result = await session.execute(delete(Identity).where(*expired))
    if made:
        # A registration's contact left with no identity came only from that claim.
        await session.execute(
            delete(Contact).where(
                Contact.pk.in_(made),
                ~select(Identity.id).where(Identity.contact_pk == Contact.pk).exists(),
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def purge(
    session: AsyncSession,
    clock: Clock,
    outbox_retention_days: int,
    unproven_identity_hours: int = 24,
) -> Purged:
    """Delete what no request can need any more; safe to run from several processes at once."""
    now = clock.now()
    unproven = await _purge_unproven(session, clock, unproven_identity_hours)
    counters = await session.execute(
        delete(RateCounter).where(RateCounter.window_start < now - RATE_COUNTER_RETENTION)
    )
    messages = await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.status.in_(_FINISHED),
            OutboxMessage.created_at < now - timedelta(days=outbox_retention_days),
        )
    )
    return Purged(
        idempotency_records=await purge_expired(session, clock),
        rate_counters=int(getattr(counters, "rowcount", 0) or 0),
        outbox_messages=int(getattr(messages, "rowcount", 0) or 0),
        unproven_identities=unproven,
    )


async def run_periodically(runtime: Runtime, stop: asyncio.Event, interval: float = 600.0) -> None:
    """Purge every `interval` seconds (with jitter, so many processes do not line up)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval * random.uniform(0.8, 1.2))
            return
        except TimeoutError:
            pass
        try:
            async with session_scope(runtime.sessions) as session:
                purged = await purge(
                    session,
                    runtime.clock,
                    runtime.settings.outbox_retention_days,
                    runtime.settings.unproven_identity_hours,
                )
            counts = (purged.idempotency_records, purged.rate_counters, purged.outbox_messages)
            if any((*counts, purged.unproven_identities)):
                log.info(
                    "purged expired rows",
                    extra={
                        "idempotency_records": purged.idempotency_records,
                        "rate_counters": purged.rate_counters,
                        "outbox_messages": purged.outbox_messages,
                        "unproven_identities": purged.unproven_identities,
                    },
                )
        except Exception as exc:  # a database outage must not end the loop
            log.warning("housekeeping failed: %s", type(exc).__name__)
