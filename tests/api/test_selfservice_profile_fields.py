"""The Self-Service profile keeps every writable member of CRM.COM's v2 contact schema that it
owns, reads each back, and reads phones back in the shape they are written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_selfservice_reference_schemas import REFERENCE, _check, _document, _resolve
from tests.support.selfservice import (
    bearer,
    key,
    set_policy,
    sign_in_by_phone,
    unique_phone,
)

pytestmark = pytest.mark.skipif(not REFERENCE.exists(), reason="reference OpenAPI file not found")
V2 = "/self-service/v2"
PROFILE = "/self-service/v2/contacts/{id}"
# Kept by other parts of the product, with their own routes; not this test's to check.
ELSEWHERE = {"custom_fields", "custom_fields[].key", "custom_fields[].value"}
# Not data: the path names the contact.
NOT_WRITABLE = {"id"}

EVERYTHING = {
    "first_name": "Eleni",
    "middle_name": "Maria",
    "last_name": "Georgiou",
    "language_code": "EL",
    "email": "eleni.georgiou@example.com",
    "phone": {"type": "LANDLINE", "country_code": "CYP", "number": "22265566"},
    "demographics": {
        "gender": "FEMALE",
        "date_of_birth": {"year": 1988, "month": 6, "day": 21},
        "name_day": {"month": 5, "day": 21},
        "passport": {
            "number": "K00123456",
            "issuing_country_code": "CYP",
            "expiration_date": 1893456000,
        },
        "id_details": {
            "number": "X998877",
            "issuing_country_code": "GRC",
            "expiration_date": 1861920000,
        },
        "statutory_number": "SN12345",
    },
    "sms_opt_out": True,
    "email_opt_out": True,
    "company_name": "Georgiou Trading",
    "company_profile": {
        "registration_number": "HE123456",
        "registration_country": "CYP",
        "tax_reference_number": "12345678X",
        "vat_registration_number": "CY12345678X",
        "industry_id": "0f6b8a3e-1c1a-4b51-9d0e-2a7c9b8f0c11",
        "sub_industries": [{"id": "5a0c3e1e-aaaa-4b51-9d0e-2a7c9b8f0c11"}],
    },
}


def _members(schema: Any, prefix: str = "") -> set[str]:
    """Every member path of a request schema: `phone.number`, `custom_fields[].key`."""
    found: set[str] = set()
    if not isinstance(schema, dict):
        return found
    for part in schema.get("allOf", []):
        found |= _members(part, prefix)
    for name, sub in (schema.get("properties") or {}).items():
        found.add(prefix + name)
        found |= _members(sub, f"{prefix}{name}.")
        if isinstance(sub, dict) and sub.get("items"):
            found |= _members(sub["items"], f"{prefix}{name}[].")
    return found


def _sent(body: Any, prefix: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(body, dict):
        for name, value in body.items():
            found.add(prefix + name)
            found |= _sent(value, f"{prefix}{name}.")
    elif isinstance(body, list):
        for item in body:
            found |= _sent(item, prefix[:-1] + "[].")
    return found


def _put_schema() -> Any:
    root = _document()
    operation = root["paths"]["/self-service/v2/contacts/{id}"]["put"]
    return _resolve(operation["requestBody"]["content"]["application/json"]["schema"], root)


def test_the_update_body_sends_every_writable_member_of_the_reference() -> None:
    # If CRM.COM's schema grows a member, this fails until the profile keeps it (or refuses it).
    assert _members(_put_schema()) - ELSEWHERE - NOT_WRITABLE == _sent(EVERYTHING)


async def _profile(client: Any, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(
        PROFILE.format(id=tokens["contact"]["id"]), headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 200, response.text
    _check(response.json(), "/self-service/v2/contacts/{id}", "get", "200")
    body: dict[str, Any] = response.json()
    return body


async def _put(client: Any, tokens: dict[str, Any], body: dict[str, Any]) -> Any:
    return await client.put(
        PROFILE.format(id=tokens["contact"]["id"]),
        json=body,
        headers=bearer(tokens["access_token"]),
    )


async def test_profile_update_stores_and_reads_back_every_member(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    updated = await _put(client, tokens, EVERYTHING)
    assert updated.status_code == 200, updated.text
    read = await _profile(client, tokens)
    for name in ("first_name", "middle_name", "last_name", "language_code", "company_name"):
        assert read[name] == EVERYTHING[name], name
    assert read["email"] == EVERYTHING["email"]
    assert read["sms_opt_out"] is True and read["email_opt_out"] is True
    phone = read["phone"]
    assert {k: phone[k] for k in ("type", "country_code", "number")} == EVERYTHING["phone"]
    assert phone["id"]
    assert read["demographics"] == EVERYTHING["demographics"]
    sent_company = EVERYTHING["company_profile"]
    assert read["company_profile"] == {
        **{k: v for k, v in sent_company.items() if k not in ("industry_id",)},
        "industry": {"id": sent_company["industry_id"]},
    }
    # The Back-Office contact shows the same record.
    back = await client.get(
        f"/backoffice/v1/contacts/{tokens['contact']['id']}",
        headers={"api_key": tenant.keys["secret_test"]},
    )
    assert back.status_code == 200, back.text
    contact = back.json()
    assert contact["demographics"]["passport"] == EVERYTHING["demographics"]["passport"]
    assert contact["company_profile"]["vat_registration_number"] == "CY12345678X"
    assert contact["phones"][0]["number"] == "+35722265566"
    assert contact["phones"][0]["phone_type"] == "LANDLINE"


async def test_writing_back_what_was_read_changes_nothing(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    first = await _profile(client, tokens)
    # The registration's phone reads back as a national number beside its country.
    assert first["phone"]["country_code"] == "CYP"
    assert not first["phone"]["number"].startswith("+")
    for _ in range(2):
        again = await _put(client, tokens, await _profile(client, tokens))
        assert again.status_code == 200, again.text
    assert await _profile(client, tokens) == first
    # So does a full profile, written twice.
    assert (await _put(client, tokens, EVERYTHING)).status_code == 200
    full = await _profile(client, tokens)
    assert (await _put(client, tokens, full)).status_code == 200
    assert await _profile(client, tokens) == full


async def test_phone_forms_that_mean_one_number_store_one_number(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    signs_in_with = (await _profile(client, tokens))["phone"]["number"]
    national = unique_phone()
    for form in (
        {"number": national, "country_code": "CYP"},
        {"number": f"+357{national}", "country_code": "CYP"},
        {"number": f"00357 {national[:2]} {national[2:]}"},
    ):
        response = await _put(client, tokens, {"phone": {"type": "MOBILE", **form}})
        assert response.status_code == 200, (form, response.text)
        phone = (await _profile(client, tokens))["phone"]
        assert (phone["number"], phone["country_code"]) == (national, "CYP"), form
    # Without a country and without a calling code: refused, unless the application has a
    # default country.
    bare = {"phone": {"type": "MOBILE", "number": "99112233"}}
    assert (await _put(client, tokens, bare)).status_code == 400
    await set_policy(runtime, tenant, default_country="CYP")
    assert (await _put(client, tokens, bare)).status_code == 200
    assert (await _profile(client, tokens))["phone"]["number"] == "99112233"
    # An empty number is a blank form member: the phone stays.
    blank = await _put(client, tokens, {"phone": {"type": "MOBILE", "number": ""}})
    assert blank.status_code == 200
    assert (await _profile(client, tokens))["phone"]["number"] == "99112233"
    # null removes the contact's phone; the phone it signs in with is what the profile shows then.
    assert (await _put(client, tokens, {"phone": None})).status_code == 200
    assert (await _profile(client, tokens))["phone"]["number"] == signs_in_with
    bad = await _put(client, tokens, {"phone": {"type": "PAGER", "number": national}})
    assert bad.status_code == 400


async def test_profile_documents_are_unique_and_partial(
    client: Any, runtime: Any, tenant: Any
) -> None:
    first = await sign_in_by_phone(client, runtime, tenant)
    second = await sign_in_by_phone(client, runtime, tenant)
    passport = {"demographics": {"passport": {"number": "P-777 001"}}}
    assert (await _put(client, first, passport)).status_code == 200
    taken = await _put(client, second, passport)
    assert taken.status_code == 409, taken.text
    assert taken.json()["code"] == "DOCUMENT_IN_USE"
    assert taken.json()["details"][0]["field"] == "demographics.passport.number"
    # A partial demographics leaves the passport; the gender alone changes.
    assert (await _put(client, first, {"demographics": {"gender": "MALE"}})).status_code == 200
    read = await _profile(client, first)
    assert read["demographics"]["passport"]["number"] == "P777001"
    assert read["demographics"]["gender"] == "MALE"
    # Unregistering frees the number for someone else.
    gone = await client.delete(
        PROFILE.format(id=first["contact"]["id"]), headers=bearer(first["access_token"])
    )
    assert gone.status_code == 200
    assert (await _put(client, second, passport)).status_code == 200


async def test_register_refuses_gift_pass_members_it_does_not_keep(
    client: Any, tenant: Any
) -> None:
    body = {
        "identification": {
            "provider": "PHONE",
            "phone": {"number": unique_phone(), "country_code": "CYP"},
        },
        "pass_code": "GP-1234",
    }
    refused = await client.post(f"{V2}/contacts/register", json=body, headers=key(tenant))
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "FIELD_NOT_SUPPORTED"
    assert refused.json()["details"][0]["field"] == "pass_code"
    # Empty, as a generated client fills members it has no value for: absent.
    body["pass_code"] = ""
    ok = await client.post(f"{V2}/contacts/register", json=body, headers=key(tenant))
    assert ok.status_code == 201, ok.text
