"""Housekeeping that keeps tables from growing without bound: old idempotency answers, spent
rate-limit windows, and delivered messages past their retention."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.db import session_scope
from crm.idempotency.service import purge_expired
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


async def purge(session: AsyncSession, clock: Clock, outbox_retention_days: int) -> Purged:
    """Delete what no request can need any more; safe to run from several processes at once."""
    now = clock.now()
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
                purged = await purge(session, runtime.clock, runtime.settings.outbox_retention_days)
            if any((purged.idempotency_records, purged.rate_counters, purged.outbox_messages)):
                log.info(
                    "purged expired rows",
                    extra={
                        "idempotency_records": purged.idempotency_records,
                        "rate_counters": purged.rate_counters,
                        "outbox_messages": purged.outbox_messages,
                    },
                )
        except Exception as exc:  # a database outage must not end the loop
            log.warning("housekeeping failed: %s", type(exc).__name__)
