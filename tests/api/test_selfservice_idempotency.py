"""Idempotency-Key on Self-Service POSTs: a retry gets the first answer and sends no second code."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crm.clock import FrozenClock
from crm.idempotency.models import IdempotencyRecord
from tests.support.selfservice import SEED_REGISTER, key, last_code, messages, unique_phone

V1 = "/self-service/v1"
V2 = "/self-service/v2"


def _register_body() -> dict[str, Any]:
    return {
        **SEED_REGISTER,
        "identity": {**SEED_REGISTER["identity"], "phone_number": unique_phone()},
    }


async def test_register_retried_with_the_same_key_sends_one_code(
    client: Any, runtime: Any, tenant: Any
) -> None:
    body = _register_body()
    headers = {**key(tenant), "Idempotency-Key": "register-attempt-1"}
    first = await client.post(f"{V1}/contacts/register", json=body, headers=headers)
    again = await client.post(f"{V1}/contacts/register", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert len(await messages(runtime, tenant.id, "OTP")) == 1

    other = {**body, "first_name": "Someone else"}
    reused = await client.post(f"{V1}/contacts/register", json=other, headers=headers)
    assert reused.status_code == 409
    assert reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_validate_retried_returns_the_same_tokens_stored_encrypted(
    client: Any, runtime: Any, tenant: Any
) -> None:
    registered = await client.post(
        f"{V1}/contacts/register", json=_register_body(), headers=key(tenant)
    )
    body = {"auth_otp": registered.json()["auth_otp"], "code": await last_code(runtime, tenant.id)}
    headers = {**key(tenant), "Idempotency-Key": "validate-attempt-1"}
    first = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=headers)
    again = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["refresh_token"] == first.json()["refresh_token"]
    # Without the key the used code is refused, as before.
    plain = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=key(tenant))
    assert plain.status_code == 400
    async with runtime.sessions() as session:
        stored = await session.scalar(
            select(IdempotencyRecord.response_body).where(IdempotencyRecord.tenant_id == tenant.id)
        )
    assert stored is not None
    assert first.json()["refresh_token"] not in stored
    assert first.json()["access_token"] not in stored


async def test_a_wrong_code_is_not_remembered(client: Any, runtime: Any, tenant: Any) -> None:
    registered = await client.post(
        f"{V1}/contacts/register", json=_register_body(), headers=key(tenant)
    )
    auth_otp = registered.json()["auth_otp"]
    headers = {**key(tenant), "Idempotency-Key": "validate-wrong"}
    code = await last_code(runtime, tenant.id)
    wrong = "000000" if code != "000000" else "111111"
    bad = await client.post(
        f"{V2}/contacts/validate_otp", json={"auth_otp": auth_otp, "code": wrong}, headers=headers
    )
    assert bad.status_code == 400
    # Same key, another body (the right code): the failure left nothing to replay or conflict with.
    good = await client.post(
        f"{V2}/contacts/validate_otp", json={"auth_otp": auth_otp, "code": code}, headers=headers
    )
    assert good.status_code == 200


async def test_fresh_keys_do_not_escape_the_per_client_limit(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "clock", FrozenClock())
    statuses = []
    for attempt in range(61):
        response = await client.post(
            f"{V2}/contacts/otp",
            json={
                "method": "SMS",
                "credentials": [{"name": "PHONE", "value": "+357" + unique_phone()}],
            },
            headers={**key(tenant), "Idempotency-Key": f"sweep-{attempt}"},
        )
        statuses.append(response.status_code)
    assert statuses[:60] == [200] * 60  # unknown numbers are answered as known ones
    assert statuses[60] == 429
