"""Signing keys against a real database: one key from concurrent first use, rotation keeps publishing."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, select

from crm.identities import signing, tokens
from crm.identities.models import SigningKey
from crm.runtime import Runtime
from crm.unit_of_work import session_scope
from tests.conftest import base_settings


async def _fresh_runtime(runtime: Runtime) -> Runtime:
    # A second engine on the same database: what a second server process would have.
    return Runtime.build(base_settings(database_url=runtime.settings.database_url))


async def test_two_processes_creating_the_first_key_end_with_one(runtime: Runtime) -> None:
    async with session_scope(runtime.sessions) as session:
        await session.execute(delete(SigningKey))
    signing.key_ring(runtime.engine, runtime.secret).forget()
    other = await _fresh_runtime(runtime)
    try:
        await asyncio.gather(
            signing.ensure_signing_key(runtime.engine, runtime.secret, runtime.clock),
            signing.ensure_signing_key(other.engine, other.secret, other.clock),
            signing.ensure_signing_key(other.engine, other.secret, other.clock),
        )
        async with runtime.sessions() as session:
            kids = list(await session.scalars(select(SigningKey.kid)))
        assert len(kids) == 1
    finally:
        await other.close()


async def test_rotation_signs_with_new_key_and_still_verifies_old_tokens(runtime: Runtime) -> None:
    ttl = runtime.settings.access_token_ttl_seconds
    common: dict[str, Any] = {
        "issuer": runtime.settings.public_url,
        "ttl_seconds": ttl,
        "tenant_id": "t",
        "contact_id": "c",
        "session_id": "s",
        "application_id": None,
        "mode": "test",
    }
    old_token, _ = await tokens.issue_access_token(
        runtime.engine, runtime.secret, runtime.clock, **common
    )
    async with session_scope(runtime.sessions) as session:
        new_kid = await signing.rotate(session, runtime.clock, runtime.secret)
    # A second process that never saw the old key as current still verifies its tokens.
    other = await _fresh_runtime(runtime)
    try:
        new_token, _ = await tokens.issue_access_token(
            other.engine, other.secret, other.clock, **common
        )
        import jwt

        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        for token in (old_token, new_token):
            claims = await tokens.verify_access_token(
                other.engine,
                other.secret,
                other.clock,
                token,
                issuer=runtime.settings.public_url,
                ttl_seconds=ttl,
                audience="t",
            )
            assert claims.contact_id == "c"
        keys = await signing.key_ring(other.engine, other.secret).public_keys(other.clock, ttl)
        assert new_kid in keys and len(keys) >= 2
    finally:
        await other.close()
    signing.key_ring(runtime.engine, runtime.secret).forget()
