"""Idempotency-Key on Self-Service POSTs: a retry gets the first answer and sends no second code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crm.clock import FrozenClock
from crm.idempotency.models import IdempotencyRecord
from crm.tenants import service as tenants
from tests.support.selfservice import (
    PASSWORD,
    SEED_REGISTER,
    bearer,
    key,
    last_code,
    messages,
    register_email_password_proven,
    unique_phone,
)

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


# --- no replay for another caller, no guessing oracle ---------------------------------------

STRANGER = ("203.0.113.7", 40000)


@pytest.fixture
async def stranger(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The same app reached from another address: a public key is public, the client is not."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=STRANGER)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _validated(
    client: httpx.AsyncClient, runtime: Any, tenant: Any, idempotency_key: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register by phone and validate the code with an Idempotency-Key: (request, answer)."""
    registered = await client.post(
        f"{V1}/contacts/register", json=_register_body(), headers=key(tenant)
    )
    body = {"auth_otp": registered.json()["auth_otp"], "code": await last_code(runtime, tenant.id)}
    answer = await client.post(
        f"{V2}/contacts/validate_otp",
        json=body,
        headers={**key(tenant), "Idempotency-Key": idempotency_key},
    )
    assert answer.status_code == 200, answer.text
    return body, answer.json()


def _wrong(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "code": "000000" if body["code"] != "000000" else "111111"}


async def test_another_client_gets_no_replay_and_no_oracle_and_its_guesses_count(
    client: Any, stranger: httpx.AsyncClient, runtime: Any, tenant: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(runtime, "clock", FrozenClock())
    body, tokens = await _validated(client, runtime, tenant, "known-key")
    headers = {**key(tenant), "Idempotency-Key": "known-key"}
    right = await stranger.post(f"{V2}/contacts/validate_otp", json=body, headers=headers)
    wrong = await stranger.post(f"{V2}/contacts/validate_otp", json=_wrong(body), headers=headers)
    # The right guess and a wrong one are answered alike: nothing to learn, no tokens.
    assert right.status_code == wrong.status_code == 409
    assert right.json()["code"] == wrong.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert right.json()["message"] == wrong.json()["message"]
    assert tokens["refresh_token"] not in right.text
    assert "access_token" not in right.text
    # Each guess counts against the client's validation limit, like a guess without the key.
    statuses = []
    for _ in range(200):
        guess = await stranger.post(
            f"{V2}/contacts/validate_otp", json=_wrong(body), headers=headers
        )
        statuses.append(guess.status_code)
        if guess.status_code != 409:
            break
    assert statuses[-1] == 429
    assert set(statuses[:-1]) == {409}
    # The owner's retry is still a replay: the stranger's guesses spoiled nothing of theirs.
    again = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["refresh_token"] == tokens["refresh_token"]


async def test_another_applications_key_gets_no_replay(
    client: Any, runtime: Any, tenant: Any
) -> None:
    body, tokens = await _validated(client, runtime, tenant, "app-key")
    async with runtime.sessions() as session:
        _app_id, keys = await tenants.create_application(
            session, runtime.clock, tenant.id, "Other portal"
        )
        await session.commit()
    other = await client.post(
        f"{V2}/contacts/validate_otp",
        json=body,
        headers={"api_key": keys["public_test"], "Idempotency-Key": "app-key"},
    )
    # Its own request, run afresh: the code is spent, and the first answer stays the first app's.
    assert other.status_code == 400
    assert other.headers.get("idempotent-replayed") is None
    assert tokens["refresh_token"] not in other.text


async def test_a_wrong_body_on_the_same_client_withholds_the_tokens_for_good(
    client: Any, runtime: Any, tenant: Any
) -> None:
    """Even from the owner's address (a shared NAT), a key gives at most one guess."""
    body, tokens = await _validated(client, runtime, tenant, "one-guess")
    headers = {**key(tenant), "Idempotency-Key": "one-guess"}
    wrong = await client.post(f"{V2}/contacts/validate_otp", json=_wrong(body), headers=headers)
    right = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=headers)
    assert wrong.status_code == right.status_code == 409
    assert wrong.json()["code"] == right.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert tokens["refresh_token"] not in right.text


async def test_a_replay_after_sign_out_gives_no_tokens(
    client: Any, runtime: Any, tenant: Any
) -> None:
    body, tokens = await _validated(client, runtime, tenant, "then-sign-out")
    headers = {**key(tenant), "Idempotency-Key": "then-sign-out"}
    replayed = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=headers)
    assert replayed.status_code == 200
    assert replayed.headers.get("idempotent-replayed") == "true"
    signed_out = await client.post(
        f"{V2}/contacts/{tokens['contact']['id']}/sign_out",
        headers=bearer(tokens["access_token"]),
    )
    assert signed_out.status_code == 204
    after = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=headers)
    assert after.status_code == 409
    assert after.json()["code"] == "IDEMPOTENCY_ANSWER_GONE"
    assert tokens["refresh_token"] not in after.text
    assert tokens["access_token"] not in after.text


async def test_a_replay_after_the_refresh_token_was_used_gives_no_tokens(
    client: Any, runtime: Any, tenant: Any
) -> None:
    body, tokens = await _validated(client, runtime, tenant, "then-refresh")
    refreshed = await client.post(
        f"{V2}/contacts/refresh", headers={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    after = await client.post(
        f"{V2}/contacts/validate_otp",
        json=body,
        headers={**key(tenant), "Idempotency-Key": "then-refresh"},
    )
    assert after.status_code == 409
    assert after.json()["code"] == "IDEMPOTENCY_ANSWER_GONE"


async def test_password_sign_in_replays_are_no_password_oracle(
    client: Any, runtime: Any, stranger: httpx.AsyncClient, tenant: Any
) -> None:
    # A password signs in once its address is proven.
    address, _ = await register_email_password_proven(client, runtime, tenant)
    body = {"username": address, "password": PASSWORD}
    headers = {**key(tenant), "Idempotency-Key": "password-key"}
    first = await client.post(f"{V2}/contacts/authenticate", json=body, headers=headers)
    assert first.status_code == 200
    right = await stranger.post(f"{V2}/contacts/authenticate", json=body, headers=headers)
    wrong = await stranger.post(
        f"{V2}/contacts/authenticate", json={**body, "password": "not it at all"}, headers=headers
    )
    assert right.status_code == wrong.status_code == 409
    assert right.json()["code"] == wrong.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert first.json()["refresh_token"] not in right.text
    again = await client.post(f"{V2}/contacts/authenticate", json=body, headers=headers)
    assert again.json()["refresh_token"] == first.json()["refresh_token"]


async def test_replays_count_against_the_flows_per_client_limit(
    client: Any, runtime: Any, tenant: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(runtime, "clock", FrozenClock())
    body, _ = await _validated(client, runtime, tenant, "replayed-often")
    headers = {**key(tenant), "Idempotency-Key": "replayed-often"}
    statuses = []
    for _ in range(200):
        replay = await client.post(f"{V2}/contacts/validate_otp", json=body, headers=headers)
        statuses.append(replay.status_code)
        if replay.status_code != 200:
            break
    assert statuses[-1] == 429
    assert set(statuses[:-1]) == {200}


@pytest.mark.parametrize("bad", ["x" * 256, "has space", "del\x7fkey"])
async def test_a_malformed_key_is_a_clear_400_and_runs_nothing(
    client: Any, runtime: Any, tenant: Any, bad: str
) -> None:
    response = await client.post(
        f"{V1}/contacts/register",
        json=_register_body(),
        headers={**key(tenant), "Idempotency-Key": bad},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert await messages(runtime, tenant.id, "OTP") == []
