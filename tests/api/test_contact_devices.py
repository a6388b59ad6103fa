"""A contact's push devices, on both APIs: a token belongs to one contact of a tenant at a time,
the per-contact cap forgets the oldest, bad tokens are refused, and erasure forgets them all."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import func, select

from crm.contacts.devices import MAX_DEVICES
from crm.contacts.models import ContactDevice
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant
from tests.api.test_contact_addresses import needs_reference, request_schema, signed_in, sk
from tests.api.test_selfservice_reference_schemas import _schema

SS = "/self-service/v2/contacts"
BO = "/backoffice/v1/contacts"
REF_PATH = "/self-service/v2/contacts/{id}/devices"
FCM = "dK3x_Rk:APA91bH-abcdefghijklmnopqrstuvwxyz0123456789"


def device(token: str = FCM, **extra: Any) -> dict[str, Any]:
    return {"registration_token": token, "platform": "MOBILE", **extra}


@needs_reference
async def test_register_list_remove_match_the_reference(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    body = device(serial_number="SN-1", mac_address="00:1A:2B:3C:4D:5E", electronic_id="E1")
    jsonschema.validate(body, request_schema(REF_PATH, "post"))
    contact_id, auth = await signed_in(client, runtime, tenant)
    base = f"{SS}/{contact_id}/devices"
    added = await client.post(base, json=body, headers=auth)
    assert added.status_code == 201, added.text
    jsonschema.validate(added.json(), _schema(REF_PATH, "post", "201"))
    # Registering the same token again is the same device, with fresh details.
    again = await client.post(base, json=device(platform="BROWSER"), headers=auth)
    assert again.status_code == 201 and again.json()["id"] == added.json()["id"]

    listed = await client.get(base, headers=auth)
    assert listed.status_code == 200
    jsonschema.validate(listed.json(), _schema(REF_PATH, "get", "200"))
    [only] = listed.json()["content"]
    assert only["registration_token"] == FCM and only["platform"] == "BROWSER"
    assert "serial_number" not in only and only["registration_date"] > 0

    gone = await client.delete(f"{base}/{FCM}", headers=auth)
    assert gone.status_code == 200
    assert (await client.get(base, headers=auth)).json()["content"] == []
    twice = await client.delete(f"{base}/{FCM}", headers=auth)
    assert twice.status_code == 404 and twice.json()["code"] == "DEVICE_NOT_FOUND"
    audit = await client.get(f"{BO}/{contact_id}/audit", headers=sk(tenant, "secret_test"))
    actions = [e["action"] for e in audit.json()["content"]]
    assert "DEVICE_REGISTERED" in actions and "DEVICE_REMOVED" in actions


async def test_a_token_moves_to_the_contact_who_registers_it_last(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    first_id, first = await signed_in(client, runtime, tenant)
    second_id, second = await signed_in(client, runtime, tenant)
    assert (await client.post(f"{SS}/{first_id}/devices", json=device(), headers=first)).is_success
    moved = await client.post(f"{SS}/{second_id}/devices", json=device(), headers=second)
    assert moved.status_code == 201
    # The install now belongs to the second contact: no push of the first may reach it.
    assert (await client.get(f"{SS}/{first_id}/devices", headers=first)).json()["content"] == []
    mine = (await client.get(f"{SS}/{second_id}/devices", headers=second)).json()["content"]
    assert [d["registration_token"] for d in mine] == [FCM]
    # The first contact cannot remove (or learn of) the second's device.
    theirs = await client.delete(f"{SS}/{first_id}/devices/{FCM}", headers=first)
    assert theirs.status_code == 404
    peek = await client.get(f"{SS}/{second_id}/devices", headers=first)
    assert peek.status_code == 404 and peek.json()["code"] == "CONTACT_NOT_FOUND"
    audit = await client.get(f"{BO}/{first_id}/audit", headers=sk(tenant, "secret_test"))
    assert "DEVICE_MOVED_AWAY" in [e["action"] for e in audit.json()["content"]]


async def test_tokens_are_per_tenant_and_mode(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    live = await client.post(BO, json={"first_name": "Live"}, headers=sk(tenant))
    test = await client.post(BO, json={"first_name": "Test"}, headers=sk(tenant, "secret_test"))
    for ref, headers in ((live, sk(tenant)), (test, sk(tenant, "secret_test"))):
        response = await client.post(
            f"{BO}/{ref.json()['id']}/devices", json=device(), headers=headers
        )
        assert response.status_code == 201, response.text
    # The same token in the other mode is another device: both stay.
    for ref, headers in ((live, sk(tenant)), (test, sk(tenant, "secret_test"))):
        listed = await client.get(f"{BO}/{ref.json()['id']}/devices", headers=headers)
        assert len(listed.json()["content"]) == 1


async def test_the_cap_forgets_the_oldest_device(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    created = await client.post(BO, json={"first_name": "Many"}, headers=sk(tenant))
    base = f"{BO}/{created.json()['id']}/devices"
    for n in range(MAX_DEVICES + 3):
        response = await client.post(base, json=device(f"token-{n:03d}"), headers=sk(tenant))
        assert response.status_code == 201, response.text
    tokens = {
        d["registration_token"]
        for d in (await client.get(base, headers=sk(tenant))).json()["content"]
    }
    assert len(tokens) == MAX_DEVICES
    assert "token-000" not in tokens and f"token-{MAX_DEVICES + 2:03d}" in tokens
    async with runtime.sessions() as session:
        stored = await session.scalar(
            select(func.count()).where(ContactDevice.tenant_id == tenant.id)
        )
    assert stored == MAX_DEVICES


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"platform": "MOBILE"},
        {"registration_token": ""},
        {"registration_token": "a/b"},
        {"registration_token": "a b"},
        {"registration_token": "../../etc/passwd"},
        {"registration_token": "tok\u200ben"},
        {"registration_token": "x" * 513},
        {"registration_token": "ok", "platform": "PHONE"},
        {"registration_token": "ok", "mac_address": "<script>"},
        {"registration_token": "ok", "serial_number": "a\u202eb"},
        {"registration_token": "ok", "serial_number": "s" * 101},
    ],
)
async def test_bad_devices_are_refused(
    client: httpx.AsyncClient, tenant: CreatedTenant, body: dict[str, Any]
) -> None:
    created = await client.post(BO, json={"first_name": "Bad"}, headers=sk(tenant))
    base = f"{BO}/{created.json()['id']}/devices"
    response = await client.post(base, json=body, headers=sk(tenant))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_REQUEST"
    assert (await client.get(base, headers=sk(tenant))).json()["content"] == []


async def test_erasure_forgets_devices_and_frees_their_tokens(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    contact_id, auth = await signed_in(client, runtime, tenant)
    await client.post(f"{SS}/{contact_id}/devices", json=device(), headers=auth)
    assert (await client.delete(f"{SS}/{contact_id}", headers=auth)).status_code == 200
    async with runtime.sessions() as session:
        left = await session.scalar(
            select(func.count()).where(ContactDevice.tenant_id == tenant.id)
        )
    assert left == 0
