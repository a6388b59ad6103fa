"""One identifier, one person, over HTTP on both databases: emails, phones, test addresses, passwords."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.selfservice import (
    SEED_REGISTER,
    key,
    last_code,
    messages,
    set_policy,
    sign_in_by_phone,
)

V1 = "/self-service/v1"
V2 = "/self-service/v2"


async def _register_email(client: Any, headers: dict[str, str], email: str) -> Any:
    return await client.post(
        f"{V2}/contacts/register",
        json={
            "first_name": "Jo",
            "last_name": "Doe",
            "identification": {"provider": "EMAIL", "email": email},
        },
        headers=headers,
    )


async def _prove(client: Any, runtime: Any, tenant: Any, auth_otp: str) -> dict[str, Any]:
    response = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": auth_otp, "code": await last_code(runtime, tenant.id)},
        headers=key(tenant),
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _register_phone(client: Any, tenant: Any, number: str, country: str = "CYP") -> Any:
    body = {**SEED_REGISTER, "identity": {**SEED_REGISTER["identity"]}}
    body["identity"].update(phone_number=number, country_code=country)
    return await client.post(f"{V1}/contacts/register", json=body, headers=key(tenant))


# --- emails ---


async def test_sharp_s_and_ss_domains_are_two_people(
    client: Any, runtime: Any, tenant: Any
) -> None:
    first = await _register_email(client, key(tenant), "x@faß.de")
    assert first.status_code == 201, first.text
    # The mask shows a non-ASCII domain as its A-label.
    assert first.json()["obfuscated_value"] == "***@xn--fa-hia.de"
    owner = await _prove(client, runtime, tenant, first.json()["auth_otp"])

    second = await _register_email(client, key(tenant), "x@fass.de")
    assert second.status_code == 201, second.text
    assert second.json()["obfuscated_value"] == "***@fass.de"
    other = await _prove(client, runtime, tenant, second.json()["auth_otp"])
    assert other["contact"]["id"] != owner["contact"]["id"]

    # Each spelling still finds its own owner, and the A-label finds the Unicode one.
    again = await _register_email(client, key(tenant), "X@xn--fa-hia.de")
    assert again.status_code == 409
    assert again.json()["code"] == "IDENTITY_ALREADY_EXISTS"


@pytest.mark.parametrize("address", ["x@ex\u0430mple.com", "x@xn--exmple-4nf.com"])
async def test_a_domain_mixing_scripts_is_refused(client: Any, tenant: Any, address: str) -> None:
    response = await _register_email(client, key(tenant), address)
    assert response.status_code == 400
    assert response.json()["code"] == "EMAIL_DOMAIN_MIXED_SCRIPTS"


# --- test mode takes test addresses ---


@pytest.mark.parametrize("tld", ["test", "example", "invalid", "localhost"])
async def test_test_keys_take_reserved_test_domains_and_live_keys_do_not(
    client: Any, runtime: Any, tenant: Any, tld: str
) -> None:
    address = f"someone@shop.{tld}"
    live = await _register_email(client, {"api_key": tenant.keys["public_live"]}, address)
    assert live.status_code == 400
    assert live.json()["code"] == "INVALID_EMAIL"
    assert "special-use or reserved name" in live.json()["message"]

    test = await _register_email(client, key(tenant), address)
    assert test.status_code == 201, test.text
    await _prove(client, runtime, tenant, test.json()["auth_otp"])
    # The address is found again by sign-in in test mode: a code is sent to it.
    await set_policy(runtime, tenant, otp_resend_cooldown_seconds=0)
    before = len(await messages(runtime, tenant.id, "OTP"))
    otp = await client.post(
        f"{V2}/contacts/otp",
        json={"method": "EMAIL", "credentials": [{"name": "EMAIL", "value": address.upper()}]},
        headers=key(tenant),
    )
    assert otp.status_code == 200, otp.text
    sent = await messages(runtime, tenant.id, "OTP")
    assert len(sent) == before + 1
    assert sent[-1].recipient == address


async def test_back_office_contact_email_follows_the_key_mode(client: Any, tenant: Any) -> None:
    body = {"first_name": "Test", "email_address": "buyer@shop.test"}
    live = await client.post(
        "/backoffice/v1/contacts", json=body, headers={"api_key": tenant.keys["secret_live"]}
    )
    assert live.status_code == 400
    assert live.json()["code"] == "INVALID_EMAIL"
    test = await client.post(
        "/backoffice/v1/contacts", json=body, headers={"api_key": tenant.keys["secret_test"]}
    )
    assert test.status_code == 201, test.text


# --- phones ---


@pytest.mark.parametrize(
    ("first", "second", "country"),
    [
        ("+357 99 123456", "+357 099 123456", "CYP"),
        ("099 123456", "+35799123456", "CYP"),
        ("+52 55 1234 5678", "+52 1 55 1234 5678", "MEX"),
        ("+5215512345678", "55 1234 5678", "MEX"),
    ],
)
async def test_two_spellings_of_one_handset_are_one_identity(
    client: Any, runtime: Any, tenant: Any, first: str, second: str, country: str
) -> None:
    sent = await _register_phone(client, tenant, first, country)
    assert sent.status_code == 201, sent.text
    await _prove(client, runtime, tenant, sent.json()["auth_otp"])
    again = await _register_phone(client, tenant, second, country)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "IDENTITY_ALREADY_EXISTS"


@pytest.mark.parametrize("number", ["+449012345678", "+1900555012", "+34901123456"])
async def test_premium_rate_and_shared_cost_numbers_get_no_codes(
    client: Any, runtime: Any, tenant: Any, number: str
) -> None:
    response = await _register_phone(client, tenant, number)
    assert response.status_code == 400
    assert response.json()["code"] == "PHONE_NUMBER_NOT_FOR_SMS"


@pytest.mark.parametrize("number", ["+357 1234", "+357 123456789012"])
async def test_numbers_of_impossible_length_get_no_codes(
    client: Any, tenant: Any, number: str
) -> None:
    response = await _register_phone(client, tenant, number)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_PHONE"


async def test_the_seed_short_number_still_registers(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant, "9947823")
    assert tokens["access_token"]


# --- passwords ---


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("aaaaaaaa", "PASSWORD_REPETITIVE"),
        ("abababab", "PASSWORD_REPETITIVE"),
        ("abcdefgh", "PASSWORD_SEQUENTIAL"),
        ("87654321", "PASSWORD_SEQUENTIAL"),
        ("wertyuiop", "PASSWORD_SEQUENTIAL"),
        (" " * 8, "PASSWORD_WHITESPACE_ONLY"),
        ("\u3000" * 8, "PASSWORD_WHITESPACE_ONLY"),
        ("12345678", "PASSWORD_TOO_WEAK"),
    ],
)
async def test_weak_passwords_are_refused_with_their_own_code(
    client: Any, tenant: Any, password: str, code: str
) -> None:
    response = await client.post(
        f"{V2}/contacts/register",
        json={
            "first_name": "A",
            "last_name": "B",
            "identification": {
                "provider": "EMAIL",
                "email": "pw@example.com",
                "password": password,
            },
        },
        headers=key(tenant),
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert response.json()["message"]
