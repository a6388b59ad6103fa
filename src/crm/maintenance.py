"""Housekeeping that keeps tables from growing without bound: old idempotency answers, spent
rate-limit windows, delivered messages past their retention, expired unproven claims, spent
one-time codes and decoys, and failure counters that no longer count."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts.models import Contact
from crm.events.queries import purge as purge_events
from crm.idempotency.service import purge_expired
from crm.identities import policy as sign_in_policy
from crm.identities.models import FailureCounter, Identity, IdentityOrigin, OtpChallenge, OtpDecoy
from crm.messaging.models import OutboxMessage
from crm.operators import activity
from crm.ratelimits.models import RateCounter
from crm.runtime import Runtime
from crm.social import redirect as oidc_redirect
from crm.unit_of_work import session_scope

log = logging.getLogger("crm.maintenance")

# Rate windows are at most an hour long; two hours leaves every live window alone.
RATE_COUNTER_RETENTION = timedelta(hours=2)
# Finished messages only: queued and sending ones are work, failed ones are evidence.
_FINISHED = ("sent", "cancelled")
# Codes, tokens and decoys are read for their hourly send counts (the last hour) and until they
# expire (a day at most, for an email verification link); a day after they were made, an
# expired or used one answers nothing a request needs, and a day keeps "expired" answers for
# late clicks on both known and unknown identifiers alike.
CODE_RETENTION = timedelta(days=1)
# The longest quiet period and lock any application may set (the policy clamps to these): a
# counter quiet that long, or locked longer ago, counts as zero for every application.
_LONGEST = sign_in_policy.from_settings(
    {"failure_reset_seconds": 10**9, "failure_lock_seconds": 10**9}, "live"
)
FAILURE_QUIET = timedelta(seconds=_LONGEST.failure_reset_seconds)
FAILURE_LOCK = timedelta(seconds=_LONGEST.failure_lock_seconds)


@dataclass(frozen=True, slots=True)
class Purged:
    idempotency_records: int
    rate_counters: int
    outbox_messages: int
    unproven_identities: int = 0
    otp_challenges: int = 0
    otp_decoys: int = 0
    failure_counters: int = 0
    oidc_flows: int = 0
    events: int = 0
    operator_activity: int = 0


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _purge_codes(session: AsyncSession, clock: Clock) -> tuple[int, int]:
    """Delete codes, tokens and decoys made over a day ago that expired or were used."""
    now = clock.now()
    horizon = now - CODE_RETENTION
    challenges = await session.execute(
        delete(OtpChallenge).where(
            OtpChallenge.created_at < horizon,
            or_(OtpChallenge.expires_at <= now, OtpChallenge.consumed_at.is_not(None)),
        )
    )
    decoys = await session.execute(
        delete(OtpDecoy).where(
            OtpDecoy.created_at < horizon,
            or_(OtpDecoy.expires_at <= now, OtpDecoy.consumed_at.is_not(None)),
        )
    )
    return _count(challenges), _count(decoys)


async def _purge_failure_counters(session: AsyncSession, clock: Clock) -> int:
    """Delete failure counters that read as zero for any application's policy: nothing counted
    (a success cleared it), quiet past the longest reset period, or locked longer ago than the
    longest lock (the next check would clear them). A counter in use is locked by its request
    (FOR UPDATE on PostgreSQL, the single writer on SQLite), and the delete re-checks it after."""
    now = clock.now()
    unlocked = FailureCounter.locked_at.is_(None)
    result = await session.execute(
        delete(FailureCounter).where(
            or_(
                and_(unlocked, FailureCounter.failed_attempts == 0),
                and_(unlocked, FailureCounter.last_failure_at < now - FAILURE_QUIET),
                FailureCounter.locked_at < now - FAILURE_LOCK,
            )
        )
    )
    return _count(result)


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
    event_retention_days: int = 30,
    operator_activity_retention_days: int = 365,
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
    challenges, decoys = await _purge_codes(session, clock)
    return Purged(
        idempotency_records=await purge_expired(session, clock),
        rate_counters=_count(counters),
        outbox_messages=_count(messages),
        unproven_identities=unproven,
        otp_challenges=challenges,
        otp_decoys=decoys,
        failure_counters=await _purge_failure_counters(session, clock),
        oidc_flows=await oidc_redirect.purge_expired(session, clock),
        events=await purge_events(session, now, event_retention_days),
        operator_activity=await activity.purge(session, now, operator_activity_retention_days),
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
                    event_retention_days=runtime.settings.event_retention_days,
                    operator_activity_retention_days=(
                        runtime.settings.operator_activity_retention_days
                    ),
                )
            counts = asdict(purged)
            if any(counts.values()):
                log.info("purged expired rows", extra=counts)
        except Exception as exc:  # a database outage must not end the loop
            log.warning("housekeeping failed: %s", type(exc).__name__)
