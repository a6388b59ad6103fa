"""Housekeeping deletes what no request can need any more, and nothing else."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from crm.clock import FrozenClock
from crm.contacts.contact_fields import ContactFields
from crm.idempotency.models import IdempotencyRecord
from crm.ids import uuid7
from crm.maintenance import purge, run_periodically
from crm.messaging.models import OutboxMessage
from crm.ratelimits.models import RateCounter
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant


def _message(tenant_id: str, status: str, created_at: object) -> OutboxMessage:
    return OutboxMessage(
        id=uuid7(),
        tenant_id=tenant_id,
        mode="live",
        channel="SMS",
        recipient="+35799000001",
        purpose="OTP",
        body_text="123456 is your code",
        status=status,
        attempts=1,
        next_attempt_at=created_at,
        created_at=created_at,
    )


async def test_purge_removes_only_expired_rows(runtime: Runtime, tenant: CreatedTenant) -> None:
    clock = FrozenClock()
    now = clock.now()
    old, recent = now - timedelta(days=31), now - timedelta(days=1)
    bucket = f"test:{tenant.id}"
    async with runtime.sessions() as session:
        messages = {
            "old sent": _message(tenant.id, "sent", old),
            "old cancelled": _message(tenant.id, "cancelled", old),
            "old failed": _message(tenant.id, "failed", old),
            "old queued": _message(tenant.id, "queued", old),
            "recent sent": _message(tenant.id, "sent", recent),
        }
        session.add_all(messages.values())
        for key, created in (("old", now - timedelta(hours=25)), ("new", now - timedelta(hours=1))):
            session.add(
                IdempotencyRecord(
                    tenant_id=tenant.id,
                    mode="live",
                    caller="0" * 64,
                    scope="POST /x",
                    key=key,
                    request_hash="0" * 64,
                    state="DONE",
                    owner="0" * 32,
                    lease_expires_at=created,
                    refused=0,
                    status_code=201,
                    response_body="{}",
                    created_at=created,
                )
            )
        session.add(
            RateCounter(bucket=bucket + ":old", window_start=now - timedelta(hours=3), count=5)
        )
        session.add(
            RateCounter(bucket=bucket + ":new", window_start=now - timedelta(minutes=30), count=5)
        )
        await session.commit()

    async with runtime.sessions() as session:
        purged = await purge(session, clock, outbox_retention_days=30)
        await session.commit()
    assert purged.outbox_messages >= 2
    assert purged.idempotency_records >= 1
    assert purged.rate_counters >= 1

    async with runtime.sessions() as session:
        left = set(
            await session.scalars(
                select(OutboxMessage.id).where(OutboxMessage.tenant_id == tenant.id)
            )
        )
        keys = set(
            await session.scalars(
                select(IdempotencyRecord.key).where(IdempotencyRecord.tenant_id == tenant.id)
            )
        )
        buckets = set(
            await session.scalars(
                select(RateCounter.bucket).where(RateCounter.bucket.startswith(bucket))
            )
        )
    kept = {name for name, message in messages.items() if message.id in left}
    assert kept == {"old failed", "old queued", "recent sent"}
    assert keys == {"new"}
    assert buckets == {bucket + ":new"}


async def test_periodic_housekeeping_stops_promptly(runtime: Runtime) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_periodically(runtime, stop, interval=3600))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert task.done() and task.exception() is None


async def test_purge_expires_unproven_claims_and_the_contacts_only_they_made(
    runtime: Runtime, tenant: CreatedTenant
) -> None:
    from crm.contacts import service as contacts
    from crm.contacts.models import Contact
    from crm.identities.identities import add_identity
    from crm.identities.models import Identity, IdentityOrigin

    clock = FrozenClock()
    past = FrozenClock(clock.now() - timedelta(hours=25))
    made: dict[str, str] = {}
    async with runtime.sessions() as session:
        for name, origin, verified, at in (
            ("old claim", IdentityOrigin.REGISTRATION, False, past),
            ("old proven", IdentityOrigin.REGISTRATION, True, past),
            ("old business", IdentityOrigin.BACK_OFFICE, False, past),
            ("new claim", IdentityOrigin.REGISTRATION, False, clock),
        ):
            contact = await contacts.create(
                session,
                at,
                tenant_id=tenant.id,
                mode="test",
                fields=ContactFields(first_name=name),
                source="SELF_SERVICE",
                actor="test",
            )
            await add_identity(
                session,
                at,
                runtime.secret,
                contact=contact,
                provider="EMAIL",
                email=f"{name.replace(' ', '.')}.{tenant.id[:8]}@example.com",
                verified=verified,
                origin=origin,
                actor="test",
            )
            made[name] = contact.id
        await session.commit()

    async with runtime.sessions() as session:
        purged = await purge(session, clock, outbox_retention_days=30, unproven_identity_hours=24)
        await session.commit()
    assert purged.unproven_identities >= 1

    async with runtime.sessions() as session:
        left = set(await session.scalars(select(Contact.id).where(Contact.id.in_(made.values()))))
        identities = await session.scalar(
            select(func.count(Identity.id))
            .join(Contact, Contact.pk == Identity.contact_pk)
            .where(Contact.id.in_(made.values()))
        )
    assert {name for name, cid in made.items() if cid in left} == {
        "old proven",
        "old business",
        "new claim",
    }
    assert identities == 3
