"""A contact's addresses one at a time, on both APIs: CRM.COM's shapes, one primary, the caps,
someone else's ids, and the audit trail and erasure."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jsonschema
import pytest

from crm.runtime import Runtime
from crm.tenants.schemas import CreatedTenant
from tests.api.test_selfservice_reference_schemas import REFERENCE, _document, _resolve, _schema
from tests.support.selfservice import bearer, sign_in_by_phone

SS = "/self-service/v2/contacts"
BO = "/backoffice/v1/contacts"
REF_PATH = "/self-service/v2/contacts/{id}/addresses"
HOME = {
    "type": "HOME",
    "name": "Mum's house",
    "address_line_1": "21 Elia Papakyriakou",
    "address_line_2": "7 Stars Tower",
    "state_province_county": "Egkomi",
    "town_city": "Nicosia",
    "postal_code": "2415",
    "country_code": "CYP",
    "lat": 35.157115,
    "lon": 33.313719,
    "google_place_id": "ChIJrTLr-GyuEmsRBfy61i59si0",
    "is_primary": True,
}
needs_reference = pytest.mark.skipif(not REFERENCE.exists(), reason="reference file not found")


def sk(tenant: CreatedTenant, name: str = "secret_live") -> dict[str, str]:
    return {"api_key": tenant.keys[name]}


def request_schema(path: str, method: str) -> dict[str, Any]:
    root = _document()
    body = root["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    resolved: dict[str, Any] = _resolve(body, root)
    return resolved


async def signed_in(client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant) -> Any:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    return tokens["contact"]["id"], bearer(tokens["access_token"])


@needs_reference
async def test_self_service_address_lifecycle_matches_reference(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    jsonschema.validate(HOME, request_schema(REF_PATH, "post"))
    contact_id, auth = await signed_in(client, runtime, tenant)
    base = f"{SS}/{contact_id}/addresses"

    added = await client.post(base, json=HOME, headers=auth)
    assert added.status_code == 201, added.text
    jsonschema.validate(added.json(), _schema(REF_PATH, "post", "201"))
    first_id = added.json()["id"]

    work = {"type": "BUSINESS", "address_line_1": "1 Office Rd", "country_code": "GRC"}
    second = await client.post(base, json={**work, "is_primary": True}, headers=auth)
    assert second.status_code == 201, second.text

    listed = await client.get(base, headers=auth)
    assert listed.status_code == 200
    body = listed.json()
    jsonschema.validate(body, _schema(REF_PATH, "get", "200"))
    by_id = {a["id"]: a for a in body["content"]}
    # The new primary took the mark; the country was read as alpha-3.
    assert by_id[second.json()["id"]]["is_primary"] is True
    assert by_id[second.json()["id"]]["country_code"] == "GRC"
    assert by_id[first_id]["is_primary"] is False
    assert by_id[first_id]["name"] == "Mum's house" and by_id[first_id]["lat"] == 35.157115
    assert body["paging"]["total"] == 2

    item = "/self-service/v2/contacts/{id}/addresses/{address_id}"
    changed = {"type": "HOME", "address_line_1": "22 Elia Papakyriakou", "town_city": "Limassol"}
    jsonschema.validate(changed, request_schema(item, "put"))
    put = await client.put(f"{base}/{first_id}", json=changed, headers=auth)
    assert put.status_code == 200, put.text
    jsonschema.validate(put.json(), _schema(item, "put", "200"))
    after = {a["id"]: a for a in (await client.get(base, headers=auth)).json()["content"]}
    # Replaced whole: members not sent are gone; is_primary not sent is kept.
    assert after[first_id]["address_line_1"] == "22 Elia Papakyriakou"
    assert "postal_code" not in after[first_id] and "name" not in after[first_id]
    assert after[first_id]["is_primary"] is False

    # Removing the primary hands the mark to the one left.
    gone = await client.delete(f"{base}/{second.json()['id']}", headers=auth)
    assert gone.status_code == 200
    left = (await client.get(base, headers=auth)).json()["content"]
    assert [(a["id"], a["is_primary"]) for a in left] == [(first_id, True)]

    # The profile's Back-Office view shows the same list (one set of rules).
    # (Self-Service signs up with the public test key: the contact is in test mode.)
    bo = await client.get(f"{BO}/{contact_id}", headers=sk(tenant, "secret_test"))
    assert [a["id"] for a in bo.json()["addresses"]] == [first_id]
    audit = await client.get(f"{BO}/{contact_id}/audit", headers=sk(tenant, "secret_test"))
    actions = [e["action"] for e in audit.json()["content"]]
    for action in ("ADDRESS_ADDED", "ADDRESS_UPDATED", "ADDRESS_REMOVED"):
        assert action in actions


async def test_another_contacts_or_tenants_addresses_are_not_found(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    owner_id, owner = await signed_in(client, runtime, tenant)
    added = await client.post(f"{SS}/{owner_id}/addresses", json=HOME, headers=owner)
    address_id = added.json()["id"]
    other_id, other = await signed_in(client, runtime, tenant)

    # Another contact's id answers like an unknown one, for every method.
    for method, path, body in (
        ("GET", f"{SS}/{owner_id}/addresses", None),
        ("POST", f"{SS}/{owner_id}/addresses", HOME),
        ("PUT", f"{SS}/{owner_id}/addresses/{address_id}", HOME),
        ("DELETE", f"{SS}/{owner_id}/addresses/{address_id}", None),
        ("GET", f"{SS}/no-such-contact/addresses", None),
    ):
        response = await client.request(method, path, json=body, headers=other)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "CONTACT_NOT_FOUND"
    # Its own path with the other contact's address id: that address is not its own.
    stolen = await client.put(f"{SS}/{other_id}/addresses/{address_id}", json=HOME, headers=other)
    assert stolen.status_code == 404 and stolen.json()["code"] == "ADDRESS_NOT_FOUND"

    # Another tenant's secret key cannot see the contact at all.
    async with runtime.sessions() as session:
        from crm.tenants import service as tenants

        stranger = await tenants.create_tenant(session, runtime.clock, "Stranger Ltd")
        await session.commit()
    response = await client.get(f"{BO}/{owner_id}/addresses", headers=sk(stranger, "secret_test"))
    assert response.status_code == 404
    # (its own tenant's test key does see them: the check above can fail)
    seen = await client.get(f"{BO}/{owner_id}/addresses", headers=sk(tenant, "secret_test"))
    assert seen.status_code == 200
    unchanged = await client.get(f"{SS}/{owner_id}/addresses", headers=owner)
    assert [a["address_line_1"] for a in unchanged.json()["content"]] == ["21 Elia Papakyriakou"]


async def test_back_office_addresses_and_the_cap(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    created = await client.post(BO, json={"first_name": "Ann"}, headers=sk(tenant))
    base = f"{BO}/{created.json()['id']}/addresses"
    # `address_type` (the Back-Office contact's spelling) is read as `type`.
    first = await client.post(
        base, json={"address_type": "ALTERNATIVE", "address_line_1": "x"}, headers=sk(tenant)
    )
    assert first.status_code == 201, first.text
    for n in range(9):
        ok = await client.post(
            base, json={"type": "HOME", "address_line_1": f"{n} Road"}, headers=sk(tenant)
        )
        assert ok.status_code == 201, ok.text
    over = await client.post(
        base, json={"type": "HOME", "address_line_1": "11th"}, headers=sk(tenant)
    )
    assert over.status_code == 409 and over.json()["code"] == "ADDRESS_LIMIT_REACHED"
    listed = (await client.get(base, headers=sk(tenant))).json()["content"]
    assert len(listed) == 10
    # The first address became primary (one is always marked while any exists).
    assert [a["is_primary"] for a in listed].count(True) == 1 and listed[0]["is_primary"]
    assert listed[0]["type"] == "ALTERNATIVE"
    # The whole-list contact update still takes back what it read.
    contact = (await client.get(f"{BO}/{created.json()['id']}", headers=sk(tenant))).json()
    again = await client.put(
        f"{BO}/{created.json()['id']}",
        json={"addresses": contact["addresses"]},
        headers=sk(tenant),
    )
    assert again.status_code == 200, again.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"address_line_1": "no type"}, "INVALID_REQUEST"),
        ({"type": "HOME"}, "INVALID_REQUEST"),
        ({"type": "HOME", "address_line_1": "   "}, "INVALID_REQUEST"),
        ({"type": "MOON", "address_line_1": "x"}, "INVALID_REQUEST"),
        ({"type": "HOME", "address_line_1": "x" * 201}, "INVALID_REQUEST"),
        ({"type": "HOME", "address_line_1": "a\u202eb"}, "INVALID_REQUEST"),
        ({"type": "HOME", "address_line_1": "zero\u200bwidth"}, "INVALID_REQUEST"),
        ({"type": "HOME", "address_line_1": "x", "country_code": "XXX"}, "INVALID_COUNTRY_CODE"),
        ({"type": "HOME", "address_line_1": "x", "lat": 91}, "INVALID_REQUEST"),
        ({"type": "HOME", "address_line_1": "x", "lon": "NaN"}, "INVALID_REQUEST"),
        ({"type": "HOME", "address_line_1": "x", "google_place_id": "a/b"}, "INVALID_REQUEST"),
        ({"type": "HOME", "address_line_1": "x", "postal_code": "1" * 21}, "INVALID_REQUEST"),
    ],
)
async def test_bad_addresses_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, tenant: CreatedTenant, body: dict[str, Any], code: str
) -> None:
    created = await client.post(BO, json={"first_name": "Bo"}, headers=sk(tenant))
    base = f"{BO}/{created.json()['id']}/addresses"
    response = await client.post(base, json=body, headers=sk(tenant))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert (await client.get(base, headers=sk(tenant))).json()["content"] == []


async def test_names_are_unique_within_a_type_and_text_is_cleaned(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    created = await client.post(BO, json={"first_name": "Cy"}, headers=sk(tenant))
    base = f"{BO}/{created.json()['id']}/addresses"
    # NFC and trimmed: the decomposed "Zoë" is stored composed.
    one = await client.post(
        base,
        json={"type": "HOME", "name": "  Zoe\u0308's  ", "address_line_1": " 1 Rd "},
        headers=sk(tenant),
    )
    assert one.status_code == 201
    stored = (await client.get(base, headers=sk(tenant))).json()["content"][0]
    assert stored["name"] == "Zo\u00eb's" and stored["address_line_1"] == "1 Rd"
    clash = await client.post(
        base, json={"type": "HOME", "name": "ZO\u00cb'S", "address_line_1": "2"}, headers=sk(tenant)
    )
    assert clash.status_code == 409 and clash.json()["code"] == "ADDRESS_NAME_TAKEN"
    other_type = await client.post(
        base,
        json={"type": "BUSINESS", "name": "Zo\u00eb's", "address_line_1": "3"},
        headers=sk(tenant),
    )
    assert other_type.status_code == 201
    unknown = await client.delete(f"{base}/not-an-address", headers=sk(tenant))
    assert unknown.status_code == 404 and unknown.json()["code"] == "ADDRESS_NOT_FOUND"


async def test_erasure_clears_addresses(client: httpx.AsyncClient, tenant: CreatedTenant) -> None:
    created = await client.post(BO, json={"first_name": "Di"}, headers=sk(tenant))
    ref = created.json()["id"]
    await client.post(f"{BO}/{ref}/addresses", json=HOME, headers=sk(tenant))
    assert (await client.delete(f"{BO}/{ref}", headers=sk(tenant))).status_code == 204
    after = await client.get(f"{BO}/{ref}/addresses", headers=sk(tenant))
    assert after.status_code == 404


async def test_concurrent_additions_are_all_kept(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    created = await client.post(BO, json={"first_name": "Race"}, headers=sk(tenant))
    base = f"{BO}/{created.json()['id']}/addresses"
    responses = await asyncio.gather(
        *(
            client.post(
                base, json={"type": "HOME", "address_line_1": f"{n} Lane"}, headers=sk(tenant)
            )
            for n in range(6)
        )
    )
    # None lost to another's write (the contact row is locked while its list changes).
    assert [r.status_code for r in responses] == [201] * 6, [r.text for r in responses]
    added = {r.json()["id"] for r in responses if r.status_code == 201}
    listed = (await client.get(base, headers=sk(tenant))).json()["content"]
    assert {a["id"] for a in listed} == added and len(added) == 6
    assert [a["is_primary"] for a in listed].count(True) == 1
