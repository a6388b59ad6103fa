"""Twenty concurrent requests with one Idempotency-Key have one effect, on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from crm.idempotency import service as idempotency
from crm.idempotency.models import IdempotencyRecord, RecordState
from crm.tenants.schemas import CreatedTenant
from tests.support.selfservice import (
    key,
    messages,
    register_email_password_proven,
    unique_phone,
)

CONCURRENT = 20
CONTACTS = "/backoffice/v1/contacts"
V2 = "/self-service/v2"


def sk(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["secret_test"]}


async def _together(send: Any) -> list[httpx.Response]:
    responses: list[httpx.Response] = await asyncio.gather(*(send() for _ in range(CONCURRENT)))
    return responses


def _only_one_ran(responses: list[httpx.Response], success: int) -> None:
    statuses = [r.status_code for r in responses]
    assert statuses.count(success) >= 1, statuses
    assert set(statuses) <= {success, 409}, statuses
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
            assert response.headers["retry-after"] == "1"


async def test_concurrent_contact_creation_with_one_key_creates_one_contact(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    headers = {**sk(tenant), "Idempotency-Key": "race-contact"}

    async def send() -> httpx.Response:
        return await client.post(CONTACTS, json={"first_name": "Once"}, headers=headers)

    responses = await _together(send)
    _only_one_ran(responses, 201)
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    listed = await client.get(CONTACTS, params={"include_total": "true"}, headers=sk(tenant))
    assert listed.json()["paging"]["total"] == 1
    # Once the first request is done, a retry is a replay of its answer.
    again = await send()
    assert again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"


async def test_concurrent_code_requests_with_one_key_send_one_code(
    client: httpx.AsyncClient, runtime: Any, tenant: CreatedTenant
) -> None:
    # Added by the back office, so no code was sent yet and none is held back by a resend delay.
    phone = unique_phone()
    created = await client.post(CONTACTS, json={"first_name": "Code"}, headers=sk(tenant))
    added = await client.post(
        f"{CONTACTS}/{created.json()['id']}/identities",
        json={"provider": "PHONE", "phone": {"number": phone, "country_code": "CYP"}},
        headers=sk(tenant),
    )
    assert added.status_code == 201, added.text
    before = len(await messages(runtime, tenant.id, "OTP"))
    headers = {**key(tenant), "Idempotency-Key": "race-otp"}
    body = {"method": "SMS", "credentials": [{"name": "PHONE", "value": "+357" + phone}]}

    async def send() -> httpx.Response:
        return await client.post(f"{V2}/contacts/otp", json=body, headers=headers)

    responses = await _together(send)
    _only_one_ran(responses, 200)
    assert len(await messages(runtime, tenant.id, "OTP")) == before + 1
    assert len({r.json()["auth_otp"] for r in responses if r.status_code == 200}) == 1


async def test_concurrent_reset_requests_with_one_key_send_one_email(
    client: httpx.AsyncClient, runtime: Any, tenant: CreatedTenant
) -> None:
    # A reset link goes only to a proven address: prove the registration first.
    address, _ = await register_email_password_proven(client, runtime, tenant)
    headers = {**key(tenant), "Idempotency-Key": "race-reset"}

    async def send() -> httpx.Response:
        return await client.post(
            f"{V2}/contacts/forgot_password", json={"username": address}, headers=headers
        )

    responses = await _together(send)
    _only_one_ran(responses, 204)
    assert len(await messages(runtime, tenant.id, "PASSWORD_RESET")) == 1


async def test_a_reservation_in_flight_answers_in_use_until_its_lease_ends(
    client: httpx.AsyncClient, runtime: Any, tenant: CreatedTenant
) -> None:
    """A request that crashed holding a key blocks its retries only until the lease ends."""
    headers = {**sk(tenant), "Idempotency-Key": "crashed"}
    first = await client.post(CONTACTS, json={"first_name": "Crash"}, headers=headers)
    assert first.status_code == 201
    # Turn the remembered answer back into a reservation, as a request that died mid-way leaves.
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.tenant_id == tenant.id)
            .values(
                state=RecordState.PENDING.value,
                lease_expires_at=now + timedelta(minutes=5),
                status_code=None,
                response_body=None,
            )
        )
        await session.commit()
    held = await client.post(CONTACTS, json={"first_name": "Crash"}, headers=headers)
    assert held.status_code == 409
    assert held.headers["retry-after"] == "1"
    assert held.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
    # Another body gets the same answer: nothing about the held request is compared.
    other = await client.post(CONTACTS, json={"first_name": "Other"}, headers=headers)
    assert other.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
    async with runtime.sessions() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.tenant_id == tenant.id)
            .values(lease_expires_at=now - timedelta(seconds=1))
        )
        await session.commit()
    retried = await client.post(CONTACTS, json={"first_name": "Crash"}, headers=headers)
    assert retried.status_code == 201
    assert retried.headers.get("idempotent-replayed") is None


async def test_an_expired_answer_is_replaced_not_replayed(
    client: httpx.AsyncClient, runtime: Any, tenant: CreatedTenant
) -> None:
    headers = {**sk(tenant), "Idempotency-Key": "old"}
    first = await client.post(CONTACTS, json={"first_name": "Old"}, headers=headers)
    async with runtime.sessions() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.tenant_id == tenant.id)
            .values(created_at=runtime.clock.now() - idempotency.RETENTION - timedelta(1))
        )
        await session.commit()
    second = await client.post(CONTACTS, json={"first_name": "Old"}, headers=headers)
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    async with runtime.sessions() as session:
        rows = list(
            await session.scalars(
                select(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant.id)
            )
        )
    assert len(rows) == 1
    assert rows[0].state == RecordState.DONE
