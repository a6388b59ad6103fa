"""Reservations of Idempotency-Keys: the owner fences the answer; a taken-over key is the taker's."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text, update

from crm.clock import FrozenClock
from crm.idempotency import service as idempotency
from crm.idempotency.models import IdempotencyRecord
from crm.tenants.schemas import CreatedTenant


async def test_an_answer_is_written_only_by_the_reservation_that_still_holds_the_key(
    runtime: Any, tenant: CreatedTenant
) -> None:
    """A request whose lease ran out and whose key was taken over cannot commit its answer."""
    slot = idempotency.slot(
        runtime.secret,
        tenant_id=tenant.id,
        mode="test",
        caller="key:fence",
        scope="POST /x",
        key="fenced",
    )
    first = await idempotency.reserve(
        runtime.sessions, runtime.clock, key=slot, client=None, body_hash="a" * 64
    )
    assert isinstance(first, idempotency.Reserved)
    busy = await idempotency.reserve(
        runtime.sessions, runtime.clock, key=slot, client=None, body_hash="a" * 64
    )
    assert isinstance(busy, idempotency.Busy)
    async with runtime.sessions() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(*slot.matches())
            .values(lease_expires_at=runtime.clock.now() - timedelta(seconds=1))
        )
        await session.commit()
    second = await idempotency.reserve(
        runtime.sessions, runtime.clock, key=slot, client=None, body_hash="a" * 64
    )
    assert isinstance(second, idempotency.Reserved)
    async with runtime.sessions() as session:
        try:
            await idempotency.fill(
                session,
                runtime.clock,
                runtime.secret,
                key=slot,
                owner=first.owner,
                status_code=201,
                body={"id": "late"},
            )
        except idempotency.IdempotencyInFlight:
            await session.rollback()
        else:
            raise AssertionError("the late request filled a key it no longer holds")
    async with runtime.sessions() as session:
        await idempotency.fill(
            session,
            runtime.clock,
            runtime.secret,
            key=slot,
            owner=second.owner,
            status_code=201,
            body={"id": "taken-over"},
        )
        await session.commit()
    found = await idempotency.reserve(
        runtime.sessions, runtime.clock, key=slot, client=None, body_hash="a" * 64
    )
    assert isinstance(found, idempotency.Found)
    answer = await idempotency.replay(
        runtime.sessions,
        runtime.clock,
        runtime.secret,
        key=slot,
        found=found,
        client=None,
        body_hash="a" * 64,
    )
    assert answer.body == {"id": "taken-over"}


async def test_a_key_answered_while_a_taker_waited_is_replayed_not_taken_over(
    runtime: Any, tenant: CreatedTenant, backend: str
) -> None:
    """The holder fills its answer just as its lease runs out and another request arrives: the
    latecomer, which waited on the holder's row, must find the answer and not run again."""
    slot = idempotency.slot(
        runtime.secret,
        tenant_id=tenant.id,
        mode="test",
        caller="key:late",
        scope="POST /x",
        key="late-taker",
    )
    held = await idempotency.reserve(
        runtime.sessions, runtime.clock, key=slot, client=None, body_hash="b" * 64
    )
    assert isinstance(held, idempotency.Reserved)
    later = FrozenClock(runtime.clock.now() + idempotency.LEASE + timedelta(seconds=1))
    async with runtime.sessions() as holder:
        # The holder has the row locked (as its answer's UPDATE will) when the latecomer, which
        # saw an expired lease, tries to take the key over; then the holder answers.
        await holder.execute(select(IdempotencyRecord).where(*slot.matches()).with_for_update())
        taker = asyncio.create_task(
            idempotency.reserve(runtime.sessions, later, key=slot, client=None, body_hash="b" * 64)
        )
        if backend == "postgresql":
            await _until_a_statement_waits_on_a_lock(runtime)
        await idempotency.fill(
            holder,
            runtime.clock,
            runtime.secret,
            key=slot,
            owner=held.owner,
            status_code=201,
            body={"id": "first"},
        )
        await holder.commit()
    outcome = await taker
    assert isinstance(outcome, idempotency.Found)


async def _until_a_statement_waits_on_a_lock(runtime: Any) -> None:
    for _ in range(400):
        async with runtime.engine.connect() as conn:
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the second request never waited on the holder's row")
