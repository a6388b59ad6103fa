"""Back-Office credentials: adding, listing and removing identities, sessions, and signing in after."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from crm.identities.signing import ensure_signing_key
from crm.messaging.models import OutboxMessage
from crm.messaging.outbox import open_body
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant

BASE = "/backoffice/v1/contacts"


def sk(tenant: CreatedTenant, mode: str = "live") -> dict[str, str]:
    return {"api_key": tenant.keys[f"secret_{mode}"]}


async def new_contact(
    client: httpx.AsyncClient, tenant: CreatedTenant, contact_id: str, mode: str = "live"
) -> None:
    response = await client.post(
        BASE, json={"id": contact_id, "first_name": "Ann"}, headers=sk(tenant, mode)
    )
    assert response.status_code == 201


async def test_add_list_and_remove_identities(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await new_contact(client, tenant, "c1")
    email = await client.post(
        f"{BASE}/c1/identities",
        json={
            "provider": "EMAIL",
            "email": "Ann@Example.com",
            "password": "correct horse battery 9",
            "verified": "true",
        },
        headers=sk(tenant),
    )
    assert email.status_code == 201, email.text
    phone = await client.post(
        f"{BASE}/c1/identities",
        json={"provider": "PHONE", "phone": {"number": "99 123456", "country_code": "CYP"}},
        headers=sk(tenant),
    )
    assert phone.status_code == 201
    listed = (await client.get(f"{BASE}/c1/identities", headers=sk(tenant))).json()
    assert [(i["provider"], i["value"], i["is_verified"], i["has_password"]) for i in listed] == [
        ("EMAIL", "Ann@Example.com", True, True),
        ("PHONE", "+35799123456", False, False),
    ]
    assert "password" not in str(listed).replace("has_password", "")
    removed = await client.delete(f"{BASE}/c1/identities/{phone.json()['id']}", headers=sk(tenant))
    assert removed.status_code == 204
    listed = (await client.get(f"{BASE}/c1/identities", headers=sk(tenant))).json()
    assert [i["provider"] for i in listed] == ["EMAIL"]
    again = await client.delete(f"{BASE}/c1/identities/{phone.json()['id']}", headers=sk(tenant))
    assert again.status_code == 404
    # Audit names the change but never the password.
    audit = (await client.get(f"{BASE}/c1/audit", headers=sk(tenant))).json()["content"]
    assert [e["action"] for e in audit][:3] == [
        "IDENTITY_REMOVED",
        "IDENTITY_ADDED",
        "IDENTITY_ADDED",
    ]
    assert "correct horse" not in str(audit)


async def test_v1_username_password_adds_an_email_identity(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await new_contact(client, tenant, "v1")
    response = await client.post(
        f"{BASE}/v1/identities",
        json={"username": "v1@example.com", "password": "tr0ub4dor&3-horse"},
        headers=sk(tenant),
    )
    assert response.status_code == 201
    listed = (await client.get(f"{BASE}/v1/identities", headers=sk(tenant))).json()
    assert listed[0]["provider"] == "EMAIL" and listed[0]["has_password"] is True


async def test_identity_of_another_contact_is_409_and_bad_ones_400(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await new_contact(client, tenant, "a")
    await new_contact(client, tenant, "b")
    body = {"provider": "EMAIL", "email": "shared@example.com"}
    assert (
        await client.post(f"{BASE}/a/identities", json=body, headers=sk(tenant))
    ).status_code == 201
    taken = await client.post(
        f"{BASE}/b/identities", json={**body, "email": "SHARED@example.com"}, headers=sk(tenant)
    )
    assert taken.status_code == 409 and taken.json()["code"] == "IDENTITY_ALREADY_EXISTS"
    bad = await client.post(
        f"{BASE}/b/identities", json={"provider": "FACEBOOK"}, headers=sk(tenant)
    )
    assert bad.status_code == 400 and bad.json()["code"] == "PROVIDER_NOT_SUPPORTED"
    weak = await client.post(
        f"{BASE}/b/identities",
        json={"provider": "EMAIL", "email": "b@example.com", "password": "123"},
        headers=sk(tenant),
    )
    assert weak.status_code == 400
    assert (await client.get(f"{BASE}/b/identities", headers=sk(tenant))).json() == []


async def test_add_identity_idempotency_replays_and_conflicts(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await new_contact(client, tenant, "idem")
    headers = {**sk(tenant), "Idempotency-Key": "add-1"}
    body = {"provider": "EMAIL", "email": "idem@example.com"}
    first = await client.post(f"{BASE}/idem/identities", json=body, headers=headers)
    second = await client.post(f"{BASE}/idem/identities", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    other = await client.post(
        f"{BASE}/idem/identities", json={**body, "email": "x@example.com"}, headers=headers
    )
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len((await client.get(f"{BASE}/idem/identities", headers=sk(tenant))).json()) == 1


async def test_idempotency_key_reused_for_another_contact_is_not_a_replay(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await new_contact(client, tenant, "idem-a")
    await new_contact(client, tenant, "idem-b")
    headers = {**sk(tenant), "Idempotency-Key": "add-same"}
    body = {"provider": "EMAIL", "email": "shared.key@example.com"}
    first = await client.post(f"{BASE}/idem-a/identities", json=body, headers=headers)
    assert first.status_code == 201
    # Same key and body, other contact: answering with idem-a's identity would tell the caller
    # that idem-b got it.
    other = await client.post(f"{BASE}/idem-b/identities", json=body, headers=headers)
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await client.get(f"{BASE}/idem-b/identities", headers=sk(tenant))).json() == []


async def test_erase_removes_identities_so_the_value_is_free_again(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await new_contact(client, tenant, "gone")
    body = {"provider": "EMAIL", "email": "gone@example.com"}
    await client.post(f"{BASE}/gone/identities", json=body, headers=sk(tenant))
    assert (await client.delete(f"{BASE}/gone", headers=sk(tenant))).status_code == 204
    assert (await client.get(f"{BASE}/gone/identities", headers=sk(tenant))).status_code == 404
    await new_contact(client, tenant, "next")
    assert (
        await client.post(f"{BASE}/next/identities", json=body, headers=sk(tenant))
    ).status_code == 201


async def test_back_office_contact_signs_in_through_self_service_otp(
    client: httpx.AsyncClient, tenant: CreatedTenant, runtime: Runtime
) -> None:
    # The first signing key is made up front, as a server does at start-up: made lazily inside a
    # request it needs a second write transaction, which SQLite's single writer cannot give.
    await ensure_signing_key(runtime.engine, runtime.secret, runtime.clock)
    await new_contact(client, tenant, "otp-user", mode="test")
    added = await client.post(
        f"{BASE}/otp-user/identities",
        json={"provider": "EMAIL", "email": "otp.user@example.com", "verified": True},
        headers=sk(tenant, "test"),
    )
    assert added.status_code == 201
    pk = {"api_key": tenant.keys["public_test"]}
    sent = await client.post(
        "/self-service/v2/contacts/otp",
        json={
            "method": "EMAIL",
            "credentials": [{"name": "EMAIL", "value": "otp.user@example.com"}],
        },
        headers=pk,
    )
    assert sent.status_code == 200, sent.text
    async with runtime.sessions() as session:
        body = await session.scalar(
            select(OutboxMessage.body_text)
            .where(OutboxMessage.tenant_id == tenant.id, OutboxMessage.mode == "test")
            .order_by(OutboxMessage.created_at.desc())
            .limit(1)
        )
    assert body is not None
    match = re.search(r"\b(\d{6})\b", open_body(runtime.secret, body))
    assert match is not None
    validated = await client.post(
        "/self-service/v2/contacts/validate_otp",
        json={"auth_otp": sent.json()["auth_otp"], "code": match.group(1)},
        headers=pk,
    )
    assert validated.status_code == 200, validated.text
    assert validated.json()["contact"]["id"] == "otp-user"
    sessions = (await client.get(f"{BASE}/otp-user/sessions", headers=sk(tenant, "test"))).json()
    assert len(sessions) == 1
    revoked = await client.delete(f"{BASE}/otp-user/sessions", headers=sk(tenant, "test"))
    assert revoked.json() == {"revoked": 1}
    assert (await client.get(f"{BASE}/otp-user/sessions", headers=sk(tenant, "test"))).json() == []
