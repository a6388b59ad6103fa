"""CRM.COM's v2 contact members kept by both surfaces: name day, passport, id details,
statutory number, company profile and loyalty identifiers (contacts.documents)."""

from __future__ import annotations

import json
from typing import Any

from crm.contacts import importer
from crm.tenants.schemas import CreatedTenant

BASE = "/backoffice/v1/contacts"


def secret(tenant: CreatedTenant, mode: str = "test") -> dict[str, str]:
    return {"api_key": tenant.keys[f"secret_{mode}"]}


DOCUMENTS = {
    "demographics": {
        "gender": "FEMALE",
        "date_of_birth": {"year": 1990, "month": 2, "day": 28},
        "name_day": {"month": 2, "day": 29},
        "passport": {
            "number": "K 0012-3456",
            "issuing_country_code": "cyp",
            "expiration_date": 1893456000,
        },
        "id_details": {"number": "ID998877", "issuing_country_code": "GRC"},
        "statutory_number": "st-77/12",
    },
    "company_profile": {
        "registration_number": "HE 123456",
        "registration_country": "CYP",
        "tax_reference_number": "TAX-1",
        "vat_registration_number": "CY10000000X",
        "industry_id": "0f6b8a3e-1c1a-4b51-9d0e-2a7c9b8f0c11",
        "sub_industries": [{"id": "a1"}, {"id": "b2"}, {"id": "a1"}],
    },
    "loyalty_identifiers": [{"identifier": "LOY-0001"}, {"identifier": "loy 0002"}],
}


async def test_back_office_stores_and_reads_back_every_document_member(
    client: Any, tenant: Any
) -> None:
    created = await client.post(
        BASE, json={"first_name": "Eleni", **DOCUMENTS}, headers=secret(tenant)
    )
    assert created.status_code == 201, created.text
    read = (await client.get(f"{BASE}/{created.json()['id']}", headers=secret(tenant))).json()
    demo = read["demographics"]
    assert demo["name_day"] == {"month": 2, "day": 29}
    assert demo["passport"] == {
        "number": "K00123456",
        "issuing_country_code": "CYP",
        "expiration_date": 1893456000,
    }
    assert demo["id_details"] == {
        "number": "ID998877",
        "issuing_country_code": "GRC",
        "expiration_date": None,
    }
    assert demo["statutory_number"] == "ST7712"
    assert read["company_profile"] == {
        "registration_number": "HE 123456",
        "registration_country": "CYP",
        "tax_reference_number": "TAX-1",
        "vat_registration_number": "CY10000000X",
        "industry": {"id": "0f6b8a3e-1c1a-4b51-9d0e-2a7c9b8f0c11"},
        "sub_industries": [{"id": "a1"}, {"id": "b2"}],
    }
    assert read["loyalty_identifiers"] == [{"identifier": "LOY0001"}, {"identifier": "LOY0002"}]
    # A partial update leaves the other members alone; null clears one.
    updated = await client.put(
        f"{BASE}/{read['id']}",
        json={"demographics": {"passport": None}, "company_profile": {"industry_id": None}},
        headers=secret(tenant),
    )
    assert updated.status_code == 200, updated.text
    again = (await client.get(f"{BASE}/{read['id']}", headers=secret(tenant))).json()
    assert again["demographics"]["passport"] is None
    assert again["demographics"]["statutory_number"] == "ST7712"
    assert again["demographics"]["gender"] == "FEMALE"
    assert again["company_profile"]["industry"] is None
    assert again["company_profile"]["registration_number"] == "HE 123456"


async def test_document_numbers_are_unique_per_tenant_and_mode(client: Any, tenant: Any) -> None:
    first = await client.post(BASE, json={"first_name": "A", **DOCUMENTS}, headers=secret(tenant))
    assert first.status_code == 201, first.text
    for body, member in (
        ({"demographics": {"passport": {"number": "k0012 3456"}}}, "demographics.passport.number"),
        (
            {"demographics": {"id_details": {"number": "id-998877"}}},
            "demographics.id_details.number",
        ),
        ({"demographics": {"statutory_number": "ST 7712"}}, "demographics.statutory_number"),
        (
            {"loyalty_identifiers": [{"identifier": "x1"}, {"identifier": "LOY0002"}]},
            "loyalty_identifiers.1.identifier",
        ),
    ):
        taken = await client.post(BASE, json={"first_name": "B", **body}, headers=secret(tenant))
        assert taken.status_code == 409, taken.text
        assert taken.json()["code"] == "DOCUMENT_IN_USE"
        assert taken.json()["details"][0]["field"] == member
        # Another mode is another book of contacts.
        live = await client.post(
            BASE, json={"first_name": "B", **body}, headers=secret(tenant, "live")
        )
        assert live.status_code == 201, live.text
    # Updating a contact with its own numbers is no conflict; erasing frees them.
    own = await client.put(f"{BASE}/{first.json()['id']}", json=DOCUMENTS, headers=secret(tenant))
    assert own.status_code == 200, own.text
    erased = await client.delete(f"{BASE}/{first.json()['id']}", headers=secret(tenant))
    assert erased.status_code in (200, 204)
    again = await client.post(BASE, json={"first_name": "C", **DOCUMENTS}, headers=secret(tenant))
    assert again.status_code == 201, again.text


async def test_bad_document_members_are_refused_and_nothing_is_written(
    client: Any, tenant: Any
) -> None:
    cases = [
        ({"demographics": {"passport": {"number": "K#1"}}}, "INVALID_DOCUMENT_NUMBER"),
        ({"demographics": {"passport": {"number": "Κ123"}}}, "INVALID_DOCUMENT_NUMBER"),
        ({"demographics": {"statutory_number": "x" * 65}}, "INVALID_DOCUMENT_NUMBER"),
        ({"demographics": {"name_day": {"month": 2, "day": 30}}}, "INVALID_NAME_DAY"),
        ({"demographics": {"passport": {"number": "K1", "issuing_country_code": "XX"}}}, None),
        ({"company_profile": {"registration_country": "ZZZ"}}, None),
        ({"loyalty_identifiers": [{"identifier": ""}]}, None),
        ({"loyalty_identifiers": [{"identifier": str(i)} for i in range(11)]}, None),
        ({"demographics": {"passport": {"number": "K1", "expiration_date": -1}}}, None),
    ]
    for body, code in cases:
        refused = await client.post(BASE, json={"first_name": "Z", **body}, headers=secret(tenant))
        assert refused.status_code == 400, (body, refused.text)
        if code is not None:
            assert refused.json()["code"] == code, refused.text
    listed = await client.get(BASE, headers=secret(tenant))
    assert listed.json()["content"] == []


async def test_import_keeps_documents_and_rejects_a_taken_one(
    client: Any, runtime: Any, tenant: Any
) -> None:
    first = await client.post(
        BASE,
        json={"first_name": "A", "demographics": {"passport": {"number": "IMP-1"}}},
        headers=secret(tenant, "live"),
    )
    assert first.status_code == 201, first.text

    def row(contact_id: str, passport: str) -> dict[str, str | None]:
        demo = {"passport": {"number": passport, "issuing_country_code": "CYP"}}
        return {"id": contact_id, "first_name": "B", "demographics": json.dumps(demo)}

    async with runtime.sessions() as session:
        written = await importer.import_batch(
            session,
            runtime.clock,
            tenant_id=tenant.id,
            mode="live",
            rows=[(2, row("imp-a", "IMP 2")), (3, row("imp-b", "imp1"))],
            actor="cli:import",
        )
        await session.commit()
    assert written.created == 1
    [rejected] = written.rejected
    assert rejected.line == 3 and "DOCUMENT_IN_USE" in rejected.reason
    read = await client.get(f"{BASE}/imp-a", headers=secret(tenant, "live"))
    assert read.json()["demographics"]["passport"]["number"] == "IMP2"
    assert read.json()["loyalty_identifiers"] == []
