"""Takeover attempts against the real `crm serve` process (SQLite, and PostgreSQL when one
answers): a stranger's unproven access ends when the owner proves the address, and the owner
lands in a contact the stranger can no longer read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crm.contacts.models import AuditEvent
from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant
from tests.support.selfservice import (
    PASSWORD,
    bearer,
    key,
    last_code,
    last_token,
    messages,
    register_email_password,
    set_policy,
    unique_email,
    unique_phone,
    verify_added_identity,
)
from tests.support.server import CrmProcess

V2 = "/self-service/v2"


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # The delivery worker is left out: the test reads codes from the test outbox.
    with CrmProcess.serve(tmp_path, database_url, CRM_WORKER_ENABLED="false") as process:
        async with httpx.AsyncClient(base_url=process.base_url, timeout=10.0) as client:
            yield client


async def _ended(runtime: Runtime, contact_id: str) -> list[list[str]]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(AuditEvent.fields).where(
                AuditEvent.contact_id == contact_id, AuditEvent.action == "UNPROVEN_ACCESS_ENDED"
            )
        )
        return [list(f) for f in rows]


async def _sign_in_by_code(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, name: str, value: str
) -> Any:
    sent = await client.post(
        f"{V2}/contacts/otp",
        json={"credentials": [{"name": name, "value": value}]},
        headers=key(tenant),
    )
    assert sent.status_code == 200, sent.text
    code = await last_code(runtime, tenant.id)
    return await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": sent.json()["auth_otp"], "code": code},
        headers=key(tenant),
    )


async def test_pre_registration_and_the_strangers_phone_end_at_the_owners_link(
    server: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    await set_policy(
        runtime, tenant, email_password_registration="tokens_first", otp_resend_cooldown_seconds=0
    )
    address, stranger = await register_email_password(server, tenant)
    phone = unique_phone()
    added = await server.post(
        f"{V2}/contacts/{stranger['contact']['id']}/identities",
        json={"provider": "PHONE", "phone": {"number": phone, "country_code": "CYP"}},
        headers=bearer(stranger["access_token"]),
    )
    assert added.status_code == 201, added.text
    proven = await verify_added_identity(server, runtime, tenant, stranger, added.json()["id"])
    assert proven.status_code == 204, proven.text

    # The owner follows the verification link in their mailbox, then signs in by code.
    token = await last_token(runtime, tenant.id, "EMAIL_VERIFICATION")
    followed = await server.get(
        f"{V2}/contacts/verify_email", params={"token": token}, headers=key(tenant)
    )
    assert followed.status_code == 200
    owner = await _sign_in_by_code(server, runtime, tenant, "EMAIL", address)
    assert owner.status_code == 200, owner.text
    owned = owner.json()["contact"]["id"]

    read = await server.get(f"{V2}/contacts/{owned}", headers=bearer(stranger["access_token"]))
    assert read.status_code == 401
    refreshed = await server.post(
        f"{V2}/contacts/refresh", headers=bearer(stranger["refresh_token"])
    )
    assert refreshed.status_code == 401
    password = await server.post(
        f"{V2}/contacts/authenticate",
        json={"provider": "EMAIL", "username": address, "password": PASSWORD},
        headers=key(tenant),
    )
    assert password.status_code == 401
    # The stranger's phone was removed from the owner's contact: it reaches nobody now, and a
    # code request for it is answered as for any unknown number (200, nothing sent).
    sent_before = len(await messages(runtime, tenant.id, "OTP"))
    phone_code = await server.post(
        f"{V2}/contacts/otp",
        json={"credentials": [{"name": "PHONE", "value": f"+357{phone}"}]},
        headers=key(tenant),
    )
    assert phone_code.status_code == 200
    assert len(await messages(runtime, tenant.id, "OTP")) == sent_before
    assert any(
        {"sessions", "password", "identities"} <= set(f) for f in await _ended(runtime, owned)
    )


async def test_an_added_identity_neither_blocks_nor_holds_the_owner(
    server: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    await set_policy(runtime, tenant, otp_resend_cooldown_seconds=0)
    phone, address = unique_phone(), unique_email()
    registered = await server.post(
        "/self-service/v1/contacts/register",
        json={"identity": {"provider": "PHONE", "phone_number": phone, "country_code": "CYP"}},
        headers=key(tenant),
    )
    code = await last_code(runtime, tenant.id)
    stranger = (
        await server.post(
            f"{V2}/contacts/validate_otp",
            json={"auth_otp": registered.json()["auth_otp"], "code": code},
            headers=key(tenant),
        )
    ).json()
    added = await server.post(
        f"{V2}/contacts/{stranger['contact']['id']}/identities",
        json={"provider": "EMAIL", "email": address, "password": PASSWORD},
        headers=bearer(stranger["access_token"]),
    )
    assert added.status_code == 201, added.text
    owner_registered = await server.post(
        f"{V2}/contacts/register",
        json={"identification": {"provider": "EMAIL", "email": address}},
        headers=key(tenant),
    )
    assert owner_registered.status_code == 201, owner_registered.text
    owner_code = await last_code(runtime, tenant.id)
    owner = await server.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": owner_registered.json()["auth_otp"], "code": owner_code},
        headers=key(tenant),
    )
    assert owner.status_code == 200, owner.text
    owned = owner.json()["contact"]["id"]
    assert owned != stranger["contact"]["id"]
    read = await server.get(f"{V2}/contacts/{owned}", headers=bearer(stranger["access_token"]))
    assert read.status_code == 403
    password = await server.post(
        f"{V2}/contacts/authenticate",
        json={"provider": "EMAIL", "username": address, "password": PASSWORD},
        headers=key(tenant),
    )
    assert password.status_code == 401
    assert ["identities"] in await _ended(runtime, stranger["contact"]["id"])
