"""A code is re-read after its identity is locked; one removed meanwhile is not found."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from crm.identities import otp
from crm.identities.errors import OtpNotFound
from crm.identities.models import OtpChallenge
from crm.identities.policy import Policy
from crm.runtime import Runtime
from tests.support.selfservice import last_code, register_phone


async def test_a_code_removed_after_it_was_found_answers_as_not_found(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Any
) -> None:
    sent = await register_phone(client, tenant)
    code = await last_code(runtime, tenant.id)
    async with runtime.sessions() as session:
        challenge = await otp.find_challenge(session, tenant.id, "test", sent["auth_otp"])
    assert isinstance(challenge, OtpChallenge)
    # Another request drops it (its claim lost to a proven holder) before this one locks.
    async with runtime.sessions() as other:
        await other.execute(delete(OtpChallenge).where(OtpChallenge.id == challenge.id))
        await other.commit()
    async with runtime.sessions() as session:
        session.add(challenge)  # as found, in the request's session
        with pytest.raises(OtpNotFound):
            await otp.validate_code(
                session,
                runtime.clock,
                runtime.secret,
                challenge=challenge,
                code=code,
                policy=Policy(),
            )
