"""Helpers for the Self-Service tests: read codes from the test outbox, register, sign in."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
from sqlalchemy import select, update

from crm.messaging.models import OutboxMessage
from crm.messaging.outbox import open_body
from crm.runtime import Runtime
from crm.tenants.models import Application
from crm.tenants.schemas import CreatedTenant

SEED_REGISTER = {
    "first_name": "Ahmed",
    "last_name": "Samir",
    "identity": {"provider": "PHONE", "phone_number": "9947823", "country_code": "CYP"},
    "service_acceptance": "true",
    "email_opt_out": "true",
    "sms_opt_out": "true",
}
PASSWORD = "correct horse battery staple"
_CODE = re.compile(r"\b(\d{6})\b")


def key(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["public_test"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def messages(runtime: Runtime, tenant_id: str, purpose: str | None = None) -> list[Any]:
    async with runtime.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.tenant_id == tenant_id)
        if purpose is not None:
            query = query.where(OutboxMessage.purpose == purpose)
        rows = list(
            await session.scalars(query.order_by(OutboxMessage.created_at, OutboxMessage.id))
        )
    # Bodies are sealed at rest; tests read them as the worker would. The rows are detached, so
    # opening them here changes nothing stored.
    for row in rows:
        row.body_text = open_body(runtime.secret, row.body_text)
        if row.body_html is not None:
            row.body_html = open_body(runtime.secret, row.body_html)
    return rows


async def last_code(runtime: Runtime, tenant_id: str) -> str:
    sent = await messages(runtime, tenant_id, "OTP")
    assert sent, "no OTP message in the outbox"
    match = _CODE.search(sent[-1].body_text)
    assert match is not None
    return match.group(1)


async def last_token(runtime: Runtime, tenant_id: str, purpose: str) -> str:
    sent = await messages(runtime, tenant_id, purpose)
    assert sent, f"no {purpose} message in the outbox"
    # The token is the paragraph of its own in the plain-text body.
    paragraphs = [p.strip() for p in sent[-1].body_text.split("\n\n")]
    return next(p for p in paragraphs if " " not in p and len(p) > 30)


async def set_policy(runtime: Runtime, tenant: CreatedTenant, **values: Any) -> None:
    async with runtime.sessions() as session:
        await session.execute(
            update(Application)
            .where(Application.id == tenant.application_id)
            .values(settings=values)
        )
        await session.commit()


def unique_phone() -> str:
    return "99" + "".join(secrets.choice("0123456789") for _ in range(6))


def unique_email() -> str:
    return f"user.{secrets.token_hex(4)}@Example.com"


async def register_phone(
    client: httpx.AsyncClient, tenant: CreatedTenant, number: str | None = None
) -> dict[str, Any]:
    body = {**SEED_REGISTER, "identity": {**SEED_REGISTER["identity"]}}
    body["identity"]["phone_number"] = number or unique_phone()
    response = await client.post(
        "/self-service/v1/contacts/register", json=body, headers=key(tenant)
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def sign_in_by_phone(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, number: str | None = None
) -> dict[str, Any]:
    """Register a phone contact and validate its code: the token object."""
    sent = await register_phone(client, tenant, number)
    code = await last_code(runtime, tenant.id)
    response = await client.post(
        "/self-service/v2/contacts/validate_otp",
        json={"auth_otp": sent["auth_otp"], "code": code},
        headers=key(tenant),
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def register_email_password(
    client: httpx.AsyncClient, tenant: CreatedTenant, email: str | None = None
) -> tuple[str, dict[str, Any]]:
    address = email or unique_email()
    response = await client.post(
        "/self-service/v2/contacts/register",
        json={
            "first_name": "Zoë",
            "last_name": "Quinn",
            "identification": {"provider": "EMAIL", "email": address, "password": PASSWORD},
            "accept_terms_&_conditions": True,
        },
        headers=key(tenant),
    )
    assert response.status_code == 201, response.text
    return address, response.json()


async def register_email_password_proven(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant, email: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Register by email and password (proof_first) and enter the registration's code: tokens."""
    address, sent = await register_email_password(client, tenant, email)
    assert set(sent) == {"auth_otp", "obfuscated_value"}, sent
    code = await last_code(runtime, tenant.id)
    response = await client.post(
        "/self-service/v2/contacts/validate_otp",
        json={"auth_otp": sent["auth_otp"], "code": code},
        headers=key(tenant),
    )
    assert response.status_code == 200, response.text
    return address, response.json()


async def verify_added_identity(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tenant: CreatedTenant,
    tokens: dict[str, Any],
    identity_id: str,
) -> httpx.Response:
    """Enter, in the session of `tokens`, the code last sent (to the identity just added)."""
    code = await last_code(runtime, tenant.id)
    return await client.post(
        f"/self-service/v2/contacts/{tokens['contact']['id']}/identities/{identity_id}/verify",
        json={"code": code},
        headers=bearer(tokens["access_token"]),
    )
