"""The sign-up write path's shortcuts keep their guarantees: the cached policy, the counters
written only when they count, the per-client count committed apart from the request."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from crm.identities.models import FailureCounter
from crm.identities.policy_cache import PolicyCache
from crm.ratelimits.models import RateCounter
from tests.support.selfservice import key, last_code, register_phone, set_policy

V2 = "/self-service/v2"


async def test_cached_policy_holds_until_its_lifetime_or_a_clear(runtime: Any, tenant: Any) -> None:
    cache = PolicyCache(runtime.engine, ttl=60)
    await set_policy(runtime, tenant, otp_max_attempts=3)
    assert (await cache.policy(tenant.application_id, "test")).otp_max_attempts == 3
    await set_policy(runtime, tenant, otp_max_attempts=7)
    # Within its lifetime the cached policy stands (as a cached api_key does)...
    assert (await cache.policy(tenant.application_id, "test")).otp_max_attempts == 3
    cache.clear()
    assert (await cache.policy(tenant.application_id, "test")).otp_max_attempts == 7
    # ...and with no lifetime every read sees the change at once.
    uncached = PolicyCache(runtime.engine, ttl=0)
    await set_policy(runtime, tenant, otp_max_attempts=4)
    assert (await uncached.policy(tenant.application_id, "test")).otp_max_attempts == 4


async def _counters(runtime: Any) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(FailureCounter)) or 0)


async def test_a_clients_failure_counter_is_written_only_by_a_failure(
    client: Any, runtime: Any, tenant: Any
) -> None:
    before = await _counters(runtime)
    registered = await register_phone(client, tenant)
    auth_otp = registered["auth_otp"]
    code = await last_code(runtime, tenant.id)
    wrong = "000000" if code != "000000" else "111111"
    body = {"auth_otp": auth_otp, "code": wrong}
    failed = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=key(tenant))
    assert failed.status_code == 400, failed.text
    # The wrong code is counted on the client's counter at this identity: one new row.
    assert await _counters(runtime) == before + 1
    body = {"auth_otp": auth_otp, "code": code}
    signed = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=key(tenant))
    assert signed.status_code == 200, signed.text
    assert await _counters(runtime) == before + 1


async def test_per_client_count_survives_the_requests_rollback(
    client: Any, runtime: Any, tenant: Any
) -> None:
    # An unknown auth_otp is a 404: the request rolls back, its per-client count stays.
    body = {"auth_otp": "0" * 36, "code": "123456"}
    for _ in range(2):
        missing = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=key(tenant))
        assert missing.status_code == 404, missing.text
    caller = await runtime.keys.resolve(tenant.keys["public_test"])
    async with runtime.sessions() as session:
        counted = await session.scalar(
            select(func.sum(RateCounter.count)).where(
                RateCounter.bucket.like(f"otp-validate:{caller.key_id}:%")
            )
        )
    assert counted == 2
