"""Reservations of Idempotency-Keys: the owner fences the answer; a taken-over key is the taker's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

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
