"""The server-secret check value on both databases: recorded once, opened only by its secret."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select

from crm.deployment.models import SecretCheck
from crm.deployment.secret import SecretState, check_secret
from crm.identities.models import SigningKey
from crm.identities.signing import ensure_signing_key
from crm.runtime import Runtime
from crm.security.crypto import make_secret_check, secret_check_opens

OTHER_SECRET = "another-secret-" + "y" * 40


async def clear(runtime: Runtime) -> None:
    async with runtime.engine.begin() as connection:
        await connection.execute(delete(SecretCheck))


def test_only_the_secret_that_made_it_opens_a_check_value() -> None:
    value = make_secret_check("a" * 40)
    assert secret_check_opens("a" * 40, value)
    assert not secret_check_opens("b" * 40, value)
    assert not secret_check_opens("a" * 40, value[:-2] + "AA")
    assert not secret_check_opens("a" * 40, "not a check value")
    assert make_secret_check("a" * 40) != value  # random nonce: equal secrets are not visible


async def test_the_first_check_records_and_another_secret_is_refused(runtime: Runtime) -> None:
    await clear(runtime)
    clock = runtime.clock
    assert await check_secret(runtime.engine, runtime.secret, clock, record=False) == (
        SecretState.ABSENT
    )
    assert await check_secret(runtime.engine, runtime.secret, clock, record=True) == (
        SecretState.RECORDED
    )
    assert await check_secret(runtime.engine, runtime.secret, clock, record=True) == (
        SecretState.MATCHES
    )
    assert await check_secret(runtime.engine, OTHER_SECRET, clock, record=True) == (
        SecretState.MISMATCH
    )
    async with runtime.sessions() as session:
        (row,) = (await session.scalars(select(SecretCheck))).all()
    assert secret_check_opens(runtime.secret, row.value_encrypted)


async def test_concurrent_first_starts_record_one_value(runtime: Runtime) -> None:
    await clear(runtime)
    states = await asyncio.gather(
        *(
            check_secret(runtime.engine, runtime.secret, runtime.clock, record=True)
            for _ in range(5)
        )
    )
    assert SecretState.MISMATCH not in states
    assert states.count(SecretState.RECORDED) >= 1
    async with runtime.sessions() as session:
        assert len((await session.scalars(select(SecretCheck))).all()) == 1


async def test_without_a_check_value_existing_encrypted_rows_judge_the_secret(
    runtime: Runtime,
) -> None:
    # A signing key sealed with the deployment's secret, as an older database holds.
    await ensure_signing_key(runtime.engine, runtime.secret, runtime.clock)
    await clear(runtime)
    async with runtime.sessions() as session:
        assert await session.scalar(select(SigningKey.kid).limit(1)) is not None
    assert await check_secret(runtime.engine, OTHER_SECRET, runtime.clock, record=True) == (
        SecretState.MISMATCH
    )
    async with runtime.sessions() as session:
        assert (await session.scalars(select(SecretCheck))).all() == []  # nothing recorded
    assert await check_secret(runtime.engine, runtime.secret, runtime.clock, record=True) == (
        SecretState.RECORDED
    )
