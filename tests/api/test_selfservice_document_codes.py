"""Codes by other credentials: a loyalty identifier, id number, passport or statutory id names
a contact, whose proven phone or email gets the code; nothing matching answers as an unknown
credential does. Phones without a calling code use the application's default country."""

from __future__ import annotations

from typing import Any

from tests.support.selfservice import (
    key,
    last_code,
    messages,
    set_policy,
    sign_in_by_phone,
    unique_phone,
)

V2 = "/self-service/v2"
BO = "/backoffice/v1/contacts"
DOCS = {
    "demographics": {
        "date_of_birth": {"year": 1979, "month": 3, "day": 14},
        "passport": {"number": "PA 445566", "issuing_country_code": "CYP"},
        "id_details": {"number": "ID-1002003"},
        "statutory_number": "ST 9988",
    },
    "loyalty_identifiers": [{"identifier": "LOY-42"}],
}
CREDENTIALS = [
    ("PASSPORT", "pa445566"),
    ("ID_NUMBER", "id1002003"),
    ("STATUTORY_ID", "st-9988"),
    ("LOYALTY_IDENTIFIER", "loy 42"),
]


async def _holder(client: Any, runtime: Any, tenant: Any) -> dict[str, Any]:
    """A contact registered (and proven) by phone, given documents by the back office."""
    await set_policy(
        runtime,
        tenant,
        otp_resend_cooldown_seconds=0,
        otp_hourly_send_limit=50,
        otp_hourly_send_limit_per_client=50,
        default_country="CYP",
    )
    tokens = await sign_in_by_phone(client, runtime, tenant)
    given = await client.put(
        f"{BO}/{tokens['contact']['id']}",
        json=DOCS,
        headers={"api_key": tenant.keys["secret_test"]},
    )
    assert given.status_code == 200, given.text
    return tokens


async def _ask(client: Any, tenant: Any, *credentials: tuple[str, str], **extra: Any) -> Any:
    return await client.post(
        f"{V2}/contacts/otp",
        json={"credentials": [{"name": n, "value": v} for n, v in credentials], **extra},
        headers=key(tenant),
    )


async def test_a_document_sends_the_code_to_its_contacts_phone(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await _holder(client, runtime, tenant)
    for credential in CREDENTIALS:
        before = len(await messages(runtime, tenant.id, "OTP"))
        asked = await _ask(client, tenant, credential)
        assert asked.status_code == 200, (credential, asked.text)
        assert set(asked.json()) == {"auth_otp", "obfuscated_value"}
        assert asked.json()["obfuscated_value"].startswith("+357")
        sent = await messages(runtime, tenant.id, "OTP")
        assert len(sent) == before + 1 and sent[-1].channel == "SMS"
        validated = await client.post(
            f"{V2}/contacts/validate_otp",
            json={
                "auth_otp": asked.json()["auth_otp"],
                "code": await last_code(runtime, tenant.id),
            },
            headers=key(tenant),
        )
        assert validated.status_code == 200, validated.text
        assert validated.json()["contact"]["id"] == tokens["contact"]["id"]


async def test_nothing_matching_answers_like_an_unknown_credential(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await _holder(client, runtime, tenant)
    known = await _ask(client, tenant, ("PASSPORT", "PA445566"))
    sent = len(await messages(runtime, tenant.id, "OTP"))
    cases = [
        [("PASSPORT", "PA000000")],
        [("LOYALTY_IDENTIFIER", "nobody")],
        # Two documents of... one known, one of nobody.
        [("PASSPORT", "PA445566"), ("ID_NUMBER", "ID999")],
        # A birth date that is not the holder's.
        [("PASSPORT", "PA445566"), ("BIRTHDATE", "1980-01-01")],
        # A value no document can have.
        [("STATUTORY_ID", "#!?")],
    ]
    for credentials in cases:
        answer = await _ask(client, tenant, *credentials)
        assert answer.status_code == known.status_code == 200, (credentials, answer.text)
        assert set(answer.json()) == set(known.json())
        assert answer.json()["obfuscated_value"].startswith("+357"), answer.json()
        # The same made-up destination every time, like a real contact's.
        again = await _ask(client, tenant, *credentials)
        assert again.json()["obfuscated_value"] == answer.json()["obfuscated_value"]
        wrong = await client.post(
            f"{V2}/contacts/validate_otp",
            json={"auth_otp": answer.json()["auth_otp"], "code": "000000"},
            headers=key(tenant),
        )
        assert wrong.status_code in (400, 401, 404)
    assert len(await messages(runtime, tenant.id, "OTP")) == sent  # nothing was sent
    # Two spellings of one unknown number answer alike, as they do for a number someone holds.
    spelled = [await _ask(client, tenant, ("PASSPORT", v)) for v in ("ZZ 000-111", "zz000111")]
    assert spelled[0].json()["obfuscated_value"] == spelled[1].json()["obfuscated_value"]
    # Beside the holder's passport, a wrong extra credential changes nothing in the answer: the
    # birth date or the other document cannot be guessed from it.
    for extra in (("ID_NUMBER", "ID999"), ("BIRTHDATE", "1980-01-01")):
        answer = await _ask(client, tenant, ("PASSPORT", "PA445566"), extra)
        assert answer.json()["obfuscated_value"] == known.json()["obfuscated_value"]
    assert len(await messages(runtime, tenant.id, "OTP")) == sent
    # Asking for EMAIL for a contact without a proven email: a decoy too, an email's shape.
    by_mail = await _ask(client, tenant, ("PASSPORT", "PA445566"), method="EMAIL")
    assert by_mail.status_code == 200 and "@" in by_mail.json()["obfuscated_value"]
    assert len(await messages(runtime, tenant.id, "OTP")) == sent


async def test_birthdate_narrows_and_never_stands_alone(
    client: Any, runtime: Any, tenant: Any
) -> None:
    await _holder(client, runtime, tenant)
    alone = await _ask(client, tenant, ("BIRTHDATE", "1979-03-14"))
    assert alone.status_code == 400
    assert alone.json()["code"] == "BIRTHDATE_NEEDS_ANOTHER_CREDENTIAL"
    before = len(await messages(runtime, tenant.id, "OTP"))
    matched = await _ask(client, tenant, ("PASSPORT", "PA445566"), ("BIRTHDATE", "1979-03-14"))
    assert matched.status_code == 200, matched.text
    assert len(await messages(runtime, tenant.id, "OTP")) == before + 1
    malformed = await _ask(client, tenant, ("PASSPORT", "PA445566"), ("BIRTHDATE", "14/03/1979"))
    assert malformed.status_code == 400


async def test_card_and_gift_pass_belong_to_other_products(client: Any, tenant: Any) -> None:
    for name in ("CARD", "GIFT_PASS"):
        refused = await _ask(client, tenant, (name, "4111111111111111"))
        assert refused.status_code == 400
        assert refused.json()["code"] == "CREDENTIAL_NOT_SUPPORTED"
    unknown = await _ask(client, tenant, ("FINGERPRINT", "x"))
    assert unknown.status_code == 400 and unknown.json()["code"] == "PROVIDER_NOT_SUPPORTED"


async def test_a_phone_without_calling_code_uses_the_default_country(
    client: Any, runtime: Any, tenant: Any
) -> None:
    number = unique_phone()
    # Registered as CRM.COM's SDK writes it: a national number and a country.
    registered = await client.post(
        f"{V2}/contacts/register",
        json={
            "identification": {
                "provider": "PHONE",
                "phone": {"number": number, "country_code": "CYP"},
            }
        },
        headers=key(tenant),
    )
    assert registered.status_code == 201, registered.text
    code = await last_code(runtime, tenant.id)
    proven = await client.post(
        f"{V2}/contacts/validate_otp",
        json={"auth_otp": registered.json()["auth_otp"], "code": code},
        headers=key(tenant),
    )
    assert proven.status_code == 200
    exists = await client.get(f"{V2}/contacts", params={"phone": number}, headers=key(tenant))
    # Without a default country the bare digits are read with their calling code: nobody.
    assert exists.status_code == 400 or exists.json() == {"contact_exists": False}
    await set_policy(runtime, tenant, default_country="CYP", otp_resend_cooldown_seconds=0)
    exists = await client.get(f"{V2}/contacts", params={"phone": number}, headers=key(tenant))
    assert exists.json() == {"contact_exists": True}
    # The calling-code spellings still mean the same number.
    for spelling in (f"+357{number}", f"357{number}", f"00357{number}"):
        found = await client.get(f"{V2}/contacts", params={"phone": spelling}, headers=key(tenant))
        assert found.json() == {"contact_exists": True}, spelling
    before = len(await messages(runtime, tenant.id, "OTP"))
    asked = await _ask(client, tenant, ("PHONE", number))
    assert asked.status_code == 200, asked.text
    assert len(await messages(runtime, tenant.id, "OTP")) == before + 1
    signed_in = await client.post(
        f"{V2}/contacts/authenticate",
        json={"provider": "PHONE", "phone": {"number": number, "country_code": ""}},
        headers=key(tenant),
    )
    assert signed_in.status_code == 200, signed_in.text
    assert len(await messages(runtime, tenant.id, "OTP")) == before + 2
