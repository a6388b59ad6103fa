"""Whether the server secret can read what the database was written with (the check value)."""

from __future__ import annotations

import enum

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm.clock import Clock
from crm.deployment.models import SecretCheck
from crm.errors import DecryptionFailed
from crm.identities.models import SigningKey
from crm.messaging.integrations import CREDENTIALS_PURPOSE
from crm.security.crypto import SecretBox, make_secret_check, secret_check_opens
from crm.tenants.models import Integration

CHECK_NAME = "server-secret"
# The purpose signing keys are sealed under (identities.signing); repeated here, not imported,
# because that name is the module's own and this is only a reader of old rows.
_SIGNING_KEY_PURPOSE = "jwt-signing-key"


class SecretState(enum.StrEnum):
    MATCHES = "matches"  # the check value opens with this secret
    RECORDED = "recorded"  # there was none: one was written now with this secret
    ABSENT = "absent"  # there is none yet (only when asked not to record one)
    MISMATCH = "mismatch"  # the database was written with another secret


async def check_secret(
    engine: AsyncEngine, secret: str, clock: Clock, *, record: bool
) -> SecretState:
    """Open the database's check value with `secret`; with `record`, write one when absent.

    A database written before check values existed may already hold encrypted rows: the first
    check value is only recorded when the secret opens those, so the wrong secret is refused
    there too instead of being written down as the right one.
    """
    async with engine.connect() as connection:
        stored = await _stored(connection)
    if stored is not None:
        return SecretState.MATCHES if secret_check_opens(secret, stored) else SecretState.MISMATCH
    async with engine.connect() as connection:
        if not await _opens_existing_rows(connection, secret):
            return SecretState.MISMATCH
    if not record:
        return SecretState.ABSENT
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(SecretCheck).values(
                    name=CHECK_NAME,
                    value_encrypted=make_secret_check(secret),
                    created_at=clock.now(),
                )
            )
    except IntegrityError:
        # Another process starting at the same moment recorded it first: judge by that one.
        async with engine.connect() as connection:
            stored = await _stored(connection)
        if stored is None or not secret_check_opens(secret, stored):
            return SecretState.MISMATCH
        return SecretState.MATCHES
    return SecretState.RECORDED


async def _stored(connection: AsyncConnection) -> str | None:
    value = await connection.scalar(
        select(SecretCheck.value_encrypted).where(SecretCheck.name == CHECK_NAME)
    )
    return None if value is None else str(value)


async def _opens_existing_rows(connection: AsyncConnection, secret: str) -> bool:
    """Whether the newest signing key and tenant provider settings, if any, open with `secret`."""
    probes = (
        (
            select(SigningKey.private_key_encrypted)
            .order_by(SigningKey.created_at.desc())
            .limit(1),
            _SIGNING_KEY_PURPOSE,
        ),
        (
            select(Integration.config_encrypted).order_by(Integration.updated_at.desc()).limit(1),
            CREDENTIALS_PURPOSE,
        ),
    )
    for statement, purpose in probes:
        value = await connection.scalar(statement)
        if value is None:
            continue
        try:
            SecretBox(secret, purpose).decrypt(str(value))
        except DecryptionFailed:
            return False
    return True
