"""Proof before power: each takeover path ends with the owner in their own contact, the
stranger's sessions and password gone, and an UNPROVEN_ACCESS_ENDED audit entry."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crm.clock import FrozenClock
from crm.contacts.models import AuditEvent, Contact
from crm.identities.models import Identity
from tests.support.selfservice import (
    PASSWORD,
    bearer,
    key,
    last_code,
    last_token,
    messages,
    register_email_password,
    register_phone,
    set_policy,
    sign_in_by_phone,
    unique_email,
    unique_phone,
    verify_added_identity,
)

V2 = "/self-service/v2"
TOKENS_FIRST = {"email_password_registration": "tokens_first", "otp_resend_cooldown_seconds": 0}
PROOF_FIRST = {"otp_resend_cooldown_seconds": 0}


async def _audit(runtime: Any, contact_id: str) -> list[tuple[str, list[str]]]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.contact_id == contact_id)
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        return [(r.action, list(r.fields)) for r in rows]


async def _identifiers(runtime: Any, contact_id: str) -> set[str]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(Identity.identifier)
            .join(Contact, Contact.pk == Identity.contact_pk)
            .where(Contact.id == contact_id)
        )
        return set(rows)


async def _contact_exists(runtime: Any, contact_id: str) -> bool:
    async with runtime.sessions() as session:
        found = await session.scalar(select(Contact.pk).where(Contact.id == contact_id))
        return found is not None


async def _request_code(client: Any, tenant: Any, name: str, value: str) -> Any:
    method = "EMAIL" if name == "EMAIL" else "SMS"
    return await client.post(
        f"{V2}/contacts/otp",
        json={"method": method, "credentials": [{"name": name, "value": value}]},
        headers=key(tenant),
    )


async def _answers_as_unknown(
    client: Any, runtime: Any, tenant: Any, name: str, value: str
) -> None:
    """A sign-in code request answered as for an identifier nobody holds: 200, nothing sent."""
    before = len(await messages(runtime, tenant.id, "OTP"))
    answered = await _request_code(client, tenant, name, value)
    assert answered.status_code == 200, answered.text
    assert len(await messages(runtime, tenant.id, "OTP")) == before


async def _sign_in_by_code(client: Any, runtime: Any, tenant: Any, name: str, value: str) -> Any:
    sent = await _request_code(client, tenant, name, value)
    assert sent.status_code == 200, sent.text
    code = await last_code(runtime, tenant.id)
    return await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": sent.json()["auth_otp"], "code": code},
        headers=key(tenant),
    )


async def _authenticate(client: Any, tenant: Any, username: str, password: str) -> Any:
    return await client.post(
        f"{V2}/contacts/authenticate",
        json={"provider": "EMAIL", "username": username, "password": password},
        headers=key(tenant),
    )


async def _follow_link(client: Any, runtime: Any, tenant: Any) -> None:
    token = await last_token(runtime, tenant.id, "EMAIL_VERIFICATION")
    followed = await client.get(
        f"{V2}/contacts/verify_email", params={"token": token}, headers=key(tenant)
    )
    assert followed.status_code == 200, followed.text


async def _add(client: Any, tokens: dict[str, Any], body: dict[str, Any]) -> Any:
    return await client.post(
        f"{V2}/contacts/{tokens['contact']['id']}/identities",
        json=body,
        headers=bearer(tokens["access_token"]),
    )


async def _assert_stranger_locked_out(
    client: Any, tenant: Any, stranger: dict[str, Any], contact_id: str, address: str | None
) -> None:
    refreshed = await client.post(
        f"{V2}/contacts/refresh", headers=bearer(stranger["refresh_token"])
    )
    assert refreshed.status_code == 401
    read = await client.get(f"{V2}/contacts/{contact_id}", headers=bearer(stranger["access_token"]))
    assert read.status_code in (401, 403)
    if address is not None:
        assert (await _authenticate(client, tenant, address, PASSWORD)).status_code == 401


# --- path 1: a stranger pre-registers the owner's email; the owner follows the link ------------


@pytest.mark.parametrize("proof", ["link", "code"])
async def test_pre_registration_with_password_ends_when_the_owner_proves_the_address(
    client: Any, runtime: Any, tenant: Any, proof: str
) -> None:
    await set_policy(runtime, tenant, **TOKENS_FIRST)
    address, stranger = await register_email_password(client, tenant)
    contact_id = stranger["contact"]["id"]
    if proof == "link":
        await _follow_link(client, runtime, tenant)
        # The link alone ends the stranger's access, before the owner ever signs in.
        await _assert_stranger_locked_out(client, tenant, stranger, contact_id, address)
    owner = await _sign_in_by_code(client, runtime, tenant, "EMAIL", address)
    assert owner.status_code == 200, owner.text
    owned = owner.json()["contact"]["id"]
    await _assert_stranger_locked_out(client, tenant, stranger, owned, address)
    mine = await client.get(f"{V2}/contacts/{owned}", headers=bearer(owner.json()["access_token"]))
    assert mine.status_code == 200
    ended = [f for action, f in await _audit(runtime, owned) if action == "UNPROVEN_ACCESS_ENDED"]
    assert ended and {"sessions", "password"} <= set(ended[0])


async def test_proof_first_registration_gives_a_stranger_nothing(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, **PROOF_FIRST)
    address, sent = await register_email_password(client, tenant)
    assert set(sent) == {"auth_otp", "obfuscated_value"}  # no tokens
    assert (await _authenticate(client, tenant, address, PASSWORD)).status_code == 401
    # The owner asks for the verification link and follows it: the stranger's password is gone.
    asked = await client.post(
        f"{V2}/contacts/request_email_verification",
        json={"email_address": address},
        headers=key(tenant),
    )
    assert asked.status_code == 204
    await _follow_link(client, runtime, tenant)
    assert (await _authenticate(client, tenant, address, PASSWORD)).status_code == 401
    owner = await _sign_in_by_code(client, runtime, tenant, "EMAIL", address)
    assert owner.status_code == 200, owner.text
    assert ("UNPROVEN_ACCESS_ENDED", ["password"]) in await _audit(
        runtime, owner.json()["contact"]["id"]
    )


# --- path 2: a signed-in stranger adds the owner's email and phone -------------------------------


async def test_an_added_identity_gives_no_power_until_proven_in_the_session(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, **PROOF_FIRST)
    stranger = await sign_in_by_phone(client, runtime, tenant)
    address, phone = unique_email(), unique_phone()
    added_email = await _add(
        client, stranger, {"provider": "EMAIL", "email": address, "password": PASSWORD}
    )
    assert added_email.status_code == 201, added_email.text
    added_phone = await _add(
        client, stranger, {"provider": "PHONE", "phone": {"number": phone, "country_code": "CYP"}}
    )
    assert added_phone.status_code == 201, added_phone.text
    # A code, not a link, went to each; nothing signs in with them yet.
    assert await messages(runtime, tenant.id, "EMAIL_VERIFICATION") == []
    assert (await _authenticate(client, tenant, address, PASSWORD)).status_code == 401
    # A sign-in code request answers exactly as for an unknown identifier.
    for name, value, unknown in (
        ("EMAIL", address, unique_email()),
        ("PHONE", f"+357{phone}", f"+357{unique_phone()}"),
    ):
        before = len(await messages(runtime, tenant.id))
        claimed = await _request_code(client, tenant, name, value)
        nobody = await _request_code(client, tenant, name, unknown)
        assert claimed.status_code == nobody.status_code == 200
        assert set(claimed.json()) == set(nobody.json()) == {"auth_otp", "obfuscated_value"}
        assert len(await messages(runtime, tenant.id)) == before  # nothing sent to either
    # The code sent to the added identity does not validate outside the session.
    resent = await client.post(
        f"{V2}/contacts/{stranger['contact']['id']}/identities/{added_phone.json()['id']}/otp",
        headers=bearer(stranger["access_token"]),
    )
    assert resent.status_code == 200, resent.text
    code = await last_code(runtime, tenant.id)
    outside = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": resent.json()["auth_otp"], "code": code},
        headers=key(tenant),
    )
    assert outside.status_code == 404
    # The owner registers their own phone: accepted, and whoever proves first owns it.
    owner_sent = await register_phone(client, tenant, phone)
    owner_code = await last_code(runtime, tenant.id)
    owner = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": owner_sent["auth_otp"], "code": owner_code},
        headers=key(tenant),
    )
    assert owner.status_code == 200, owner.text
    owned = owner.json()["contact"]["id"]
    assert owned != stranger["contact"]["id"]
    assert f"+357{phone}" not in await _identifiers(runtime, stranger["contact"]["id"])
    assert ("UNPROVEN_ACCESS_ENDED", ["identities"]) in await _audit(
        runtime, stranger["contact"]["id"]
    )
    # The stranger's code for the dropped claim proves nothing any more.
    late = await verify_added_identity(client, runtime, tenant, stranger, added_phone.json()["id"])
    assert late.status_code == 404
    read = await client.get(f"{V2}/contacts/{owned}", headers=bearer(stranger["access_token"]))
    assert read.status_code == 403


@pytest.mark.parametrize("proof", ["link", "code"])
async def test_someone_elses_added_email_does_not_block_or_hold_the_owner(
    client: Any, runtime: Any, tenant: Any, proof: str
) -> None:
    await set_policy(runtime, tenant, **(TOKENS_FIRST if proof == "link" else PROOF_FIRST))
    stranger = await sign_in_by_phone(client, runtime, tenant)
    address = unique_email()
    added = await _add(client, stranger, {"provider": "EMAIL", "email": address})
    assert added.status_code == 201
    registered = await client.post(
        f"{V2}/contacts/register",
        json={"identification": {"provider": "EMAIL", "email": address, "password": PASSWORD}},
        headers=key(tenant),
    )
    assert registered.status_code == 201, registered.text
    if proof == "link":
        await _follow_link(client, runtime, tenant)
        owner = await _sign_in_by_code(client, runtime, tenant, "EMAIL", address)
    else:
        code = await last_code(runtime, tenant.id)
        owner = await client.post(
            f"{V2}/contacts/validate_otp",
            json={"auth_otp": registered.json()["auth_otp"], "code": code},
            headers=key(tenant),
        )
    assert owner.status_code == 200, owner.text
    owned = owner.json()["contact"]["id"]
    assert owned != stranger["contact"]["id"]
    assert address.lower() in await _identifiers(runtime, owned)
    assert address.lower() not in await _identifiers(runtime, stranger["contact"]["id"])
    assert ("UNPROVEN_ACCESS_ENDED", ["identities"]) in await _audit(
        runtime, stranger["contact"]["id"]
    )


# --- path 3: a stranger pre-registers the owner's email and adds their own phone --------------


@pytest.mark.parametrize("proof", ["link", "code"])
async def test_pre_registration_plus_the_strangers_own_phone_ends_at_the_owners_proof(
    client: Any, runtime: Any, tenant: Any, proof: str
) -> None:
    await set_policy(runtime, tenant, **TOKENS_FIRST)
    address, stranger = await register_email_password(client, tenant)
    contact_id = stranger["contact"]["id"]
    phone = unique_phone()
    added = await _add(
        client, stranger, {"provider": "PHONE", "phone": {"number": phone, "country_code": "CYP"}}
    )
    assert added.status_code == 201, added.text
    proven = await verify_added_identity(client, runtime, tenant, stranger, added.json()["id"])
    assert proven.status_code == 204, proven.text
    # Proven in the stranger's own session: nothing ended, the phone signs in.
    assert (
        await client.get(f"{V2}/contacts/{contact_id}", headers=bearer(stranger["access_token"]))
    ).status_code == 200
    if proof == "link":
        await _follow_link(client, runtime, tenant)
    owner = await _sign_in_by_code(client, runtime, tenant, "EMAIL", address)
    assert owner.status_code == 200, owner.text
    owned = owner.json()["contact"]["id"]
    await _assert_stranger_locked_out(client, tenant, stranger, owned, address)
    # The stranger's phone no longer reaches the owner's contact.
    assert await _identifiers(runtime, owned) == {address.lower()}
    await _answers_as_unknown(client, runtime, tenant, "PHONE", f"+357{phone}")
    ended = [f for action, f in await _audit(runtime, owned) if action == "UNPROVEN_ACCESS_ENDED"]
    assert ended and {"sessions", "password", "identities"} <= set(ended[0])


# --- claims ----------------------------------------------------------------------------------


async def test_a_strangers_unproven_registration_does_not_block_the_owner(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, **PROOF_FIRST)
    number = unique_phone()
    stranger = await register_phone(client, tenant, number)
    stranger_code = await last_code(runtime, tenant.id)
    async with runtime.sessions() as session:
        stranger_contact = await session.scalar(
            select(Contact.id)
            .join(Identity, Identity.contact_pk == Contact.pk)
            .where(Identity.identifier == f"+357{number}")
        )
    assert stranger_contact is not None
    exists = await client.get(
        f"{V2}/contacts", params={"phone": number, "country_code": "CYP"}, headers=key(tenant)
    )
    assert exists.json() == {"contact_exists": False}
    owner = await register_phone(client, tenant, number)
    assert set(owner) == {"auth_otp", "obfuscated_value"}
    code = await last_code(runtime, tenant.id)
    validated = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": owner["auth_otp"], "code": code},
        headers=key(tenant),
    )
    assert validated.status_code == 200, validated.text
    # The stranger's claim is dropped with the contact only it made.
    assert not await _contact_exists(runtime, stranger_contact)
    late = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": stranger["auth_otp"], "code": stranger_code},
        headers=key(tenant),
    )
    assert late.status_code == 404
    taken = await client.post(
        "/self-service/v1/contacts/register",
        json={"identity": {"provider": "PHONE", "phone_number": number, "country_code": "CYP"}},
        headers=key(tenant),
    )
    assert taken.status_code == 409


async def test_an_expired_claim_cannot_be_proven(
    client: Any, runtime: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(runtime, "clock", clock)
    # The link outlives the claim here (a week), so the claim's own expiry is what refuses it.
    await set_policy(runtime, tenant, **TOKENS_FIRST, email_verification_ttl_seconds=7 * 86400)
    await register_email_password(client, tenant)
    token = await last_token(runtime, tenant.id, "EMAIL_VERIFICATION")
    clock.advance(runtime.settings.unproven_identity_hours * 3600 + 60)
    late = await client.get(
        f"{V2}/contacts/verify_email", params={"token": token}, headers=key(tenant)
    )
    assert late.status_code == 400
    assert late.json()["code"] == "IDENTITY_CLAIM_EXPIRED"


async def test_a_reset_link_never_goes_to_an_unproven_added_email(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, **PROOF_FIRST)
    stranger = await sign_in_by_phone(client, runtime, tenant)
    profile = await client.get(
        f"{V2}/contacts/{stranger['contact']['id']}", headers=bearer(stranger["access_token"])
    )
    address = unique_email()
    added = await _add(client, stranger, {"provider": "EMAIL", "email": address})
    assert added.status_code == 201
    # Its own pending claim is not added twice.
    again = await _add(client, stranger, {"provider": "EMAIL", "email": address.upper()})
    assert again.status_code == 409
    forgot = await client.post(
        f"{V2}/contacts/forgot_password",
        json={"username": profile.json()["phone"]["number"]},
        headers=key(tenant),
    )
    assert forgot.status_code == 204
    assert await messages(runtime, tenant.id, "PASSWORD_RESET") == []


async def test_a_back_office_identity_keeps_todays_rule_the_first_code_proves_it(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await set_policy(runtime, tenant, **PROOF_FIRST)
    secret = {"api_key": tenant.keys["secret_test"]}
    address = unique_email()
    ref = f"bo-{address.split('@')[0][5:]}"
    created = await client.post(
        "/backoffice/v1/contacts", json={"id": ref, "first_name": "Maria"}, headers=secret
    )
    assert created.status_code == 201, created.text
    added = await client.post(
        f"/backoffice/v1/contacts/{ref}/identities",
        json={"provider": "EMAIL", "email": address, "password": PASSWORD},
        headers=secret,
    )
    assert added.status_code == 201, added.text
    # The business's claim holds at once: it blocks a registration and its password signs in.
    taken = await client.post(
        f"{V2}/contacts/register",
        json={"identification": {"provider": "EMAIL", "email": address}},
        headers=key(tenant),
    )
    assert taken.status_code == 409
    early = await _authenticate(client, tenant, address, PASSWORD)
    assert early.status_code == 200, early.text
    # The first code proves it and ends what came before, as it always did.
    owner = await _sign_in_by_code(client, runtime, tenant, "EMAIL", address)
    assert owner.status_code == 200, owner.text
    assert owner.json()["contact"]["id"] == ref
    refreshed = await client.post(
        f"{V2}/contacts/refresh", headers=bearer(early.json()["refresh_token"])
    )
    assert refreshed.status_code == 401
    assert (await _authenticate(client, tenant, address, PASSWORD)).status_code == 401
    assert ("UNPROVEN_ACCESS_ENDED", ["password", "sessions"]) in await _audit(runtime, ref)
