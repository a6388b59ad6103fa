"""Housekeeping of sign-in leftovers: spent codes and decoys, and failure counters that count
nothing any more, deleted; everything a current check still reads, kept."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from crm.clock import FrozenClock
from crm.identities.models import FailureCounter, OtpChallenge, OtpDecoy
from crm.ids import uuid7
from crm.maintenance import FAILURE_LOCK, FAILURE_QUIET, purge
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant


async def _identity(client: httpx.AsyncClient, tenant: CreatedTenant) -> str:
    headers = {"api_key": tenant.keys["secret_live"]}
    contact = f"m-{secrets.token_hex(4)}"
    made = await client.post("/backoffice/v1/contacts", json={"id": contact}, headers=headers)
    assert made.status_code == 201, made.text
    added = await client.post(
        f"/backoffice/v1/contacts/{contact}/identities",
        json={"provider": "EMAIL", "email": f"{contact}@example.com", "verified": True},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    identity_id: str = added.json()["id"]
    return identity_id


def _challenge(
    tenant: CreatedTenant,
    identity_id: str,
    created: datetime,
    lifetime: timedelta,
    consumed: datetime | None = None,
) -> OtpChallenge:
    return OtpChallenge(
        id=uuid7(),
        tenant_id=tenant.id,
        mode="live",
        identity_id=identity_id,
        purpose="SIGN_IN",
        channel="EMAIL",
        code_hmac="0" * 64,
        attempts=0,
        created_at=created,
        expires_at=created + lifetime,
        consumed_at=consumed,
    )


def _decoy(tenant: CreatedTenant, created: datetime, lifetime: timedelta) -> OtpDecoy:
    return OtpDecoy(
        id=uuid7(),
        tenant_id=tenant.id,
        mode="live",
        subject=secrets.token_hex(32),
        purpose="SIGN_IN",
        attempts=0,
        created_at=created,
        expires_at=created + lifetime,
    )


def _counter(
    failed: int, last: datetime | None = None, locked: datetime | None = None
) -> FailureCounter:
    return FailureCounter(
        subject=secrets.token_hex(32),
        failed_attempts=failed,
        last_failure_at=last,
        locked_at=locked,
    )


async def test_purge_deletes_spent_codes_and_dead_counters_and_keeps_live_ones(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    clock = FrozenClock()
    now = clock.now()
    identity_id = await _identity(client, tenant)
    five_min, day = timedelta(minutes=5), timedelta(days=1)
    challenges = {
        "expired, two days old": (_challenge(tenant, identity_id, now - 2 * day, five_min), False),
        "used, two days old": (
            _challenge(tenant, identity_id, now - 2 * day, 2 * day + five_min, now - 2 * day),
            False,
        ),
        # Counted in the hourly send limits (the last hour): kept though used.
        "used, ten minutes old": (
            _challenge(tenant, identity_id, now - timedelta(minutes=10), five_min, now),
            True,
        ),
        # Expired, but under a day old: an "expired" answer still, for a late click.
        "expired, two hours old": (
            _challenge(tenant, identity_id, now - timedelta(hours=2), five_min),
            True,
        ),
        # An email verification link lives a day: still redeemable.
        "live link, 23 hours old": (
            _challenge(tenant, identity_id, now - timedelta(hours=23), day),
            True,
        ),
    }
    decoys = {
        "expired, two days old": (_decoy(tenant, now - 2 * day, five_min), False),
        "expired, an hour old": (_decoy(tenant, now - timedelta(hours=1), five_min), True),
        "live": (_decoy(tenant, now - timedelta(minutes=1), five_min), True),
    }
    counters = {
        "nothing counted": (_counter(0), False),
        "quiet past the longest reset": (
            _counter(40, now - FAILURE_QUIET - timedelta(minutes=1)),
            False,
        ),
        "quiet, within the longest reset": (
            _counter(40, now - FAILURE_QUIET + timedelta(hours=1)),
            True,
        ),
        "recent failures": (_counter(3, now - timedelta(minutes=1)), True),
        "locked past the longest lock": (
            _counter(1000, now - FAILURE_LOCK - day, now - FAILURE_LOCK - timedelta(minutes=1)),
            False,
        ),
        # Locked a day ago: the lock may still hold (an application may lock for a week).
        "locked a day ago": (_counter(1000, now - day, now - day), True),
        # A lock outlives the quiet period's count: never purged as merely quiet.
        "locked, quiet long ago": (
            _counter(1000, now - FAILURE_QUIET - day, now - timedelta(hours=1)),
            True,
        ),
    }
    async with runtime.sessions() as session:
        for row, _ in (*challenges.values(), *decoys.values(), *counters.values()):
            session.add(row)
        await session.commit()

    async with runtime.sessions() as session:
        purged = await purge(session, clock, outbox_retention_days=30)
        await session.commit()
    assert purged.otp_challenges >= 2
    assert purged.otp_decoys >= 1
    assert purged.failure_counters >= 3

    async with runtime.sessions() as session:
        left_challenges = set(await session.scalars(select(OtpChallenge.id)))
        left_decoys = set(await session.scalars(select(OtpDecoy.id)))
        left_counters = set(await session.scalars(select(FailureCounter.subject)))
    for name, (challenge, kept) in challenges.items():
        assert (challenge.id in left_challenges) is kept, name
    for name, (decoy, kept) in decoys.items():
        assert (decoy.id in left_decoys) is kept, name
    for name, (counter, kept) in counters.items():
        assert (counter.subject in left_counters) is kept, name


async def test_the_purge_uses_the_policys_longest_periods() -> None:
    # Any application may set these up to the policy's maxima; the purge must wait that long.
    assert FAILURE_QUIET == timedelta(days=30)
    assert FAILURE_LOCK == timedelta(days=7)
