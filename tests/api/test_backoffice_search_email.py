"""Back-Office search by email: proven identities first; an unproven profile email says so."""

from __future__ import annotations

from typing import Any

import httpx

from crm.tenants.schemas import CreatedTenant

BASE = "/backoffice/v1/contacts"


def key(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["secret_live"]}


async def make(client: httpx.AsyncClient, tenant: CreatedTenant, **body: Any) -> str:
    response = await client.post(BASE, json=body, headers=key(tenant))
    assert response.status_code == 201, response.text
    contact_id: str = response.json()["id"]
    return contact_id


async def prove_email(
    client: httpx.AsyncClient, tenant: CreatedTenant, contact_id: str, email: str
) -> None:
    response = await client.post(
        f"{BASE}/{contact_id}/identities",
        json={"provider": "EMAIL", "email": email, "verified": True},
        headers=key(tenant),
    )
    assert response.status_code == 201, response.text


async def search(
    client: httpx.AsyncClient, tenant: CreatedTenant, **params: str
) -> list[dict[str, Any]]:
    response = await client.get(BASE, params=params, headers=key(tenant))
    assert response.status_code == 200, response.text
    content: list[dict[str, Any]] = response.json()["content"]
    return content


async def test_search_by_email_lists_the_proven_owner_before_a_newer_claim(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    owner = await make(client, tenant, first_name="Owner", email_address="maria@example.com")
    await prove_email(client, tenant, owner, "maria@example.com")
    # Newer, so first by the default order: a profile that merely claims the owner's address.
    stranger = await make(client, tenant, first_name="Stranger", email_address="Maria@Example.com")
    nobody = await make(client, tenant, first_name="Nobody")

    for params in (
        {"email_address": "maria@example.com"},
        {"email_address": "MARIA@example.com", "order": "DESC"},
        {"search_value": "maria@example.com"},
    ):
        found = await search(client, tenant, **params)
        assert [c["id"] for c in found] == [owner, stranger], params
        assert [c["email_verified"] for c in found] == [True, False]

    listed = {c["id"]: c["email_verified"] for c in await search(client, tenant)}
    assert listed == {owner: True, stranger: False, nobody: None}


async def test_an_identity_proven_by_another_contact_does_not_vouch_for_a_profile_email(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    holder = await make(client, tenant, first_name="Holder")
    await prove_email(client, tenant, holder, "nikos@example.com")
    claimant = await make(client, tenant, first_name="Claimant", email_address="nikos@example.com")
    found = await search(client, tenant, search_value="nikos@example.com", order="ASC")
    assert [(c["id"], c["email_verified"]) for c in found] == [
        (holder, None),
        (claimant, False),
    ]
    # Oldest-first order is kept among the rest, and the proven holder still leads it.
    found = await search(client, tenant, search_value="nikos@example.com", order="DESC")
    assert [c["id"] for c in found] == [holder, claimant]


async def test_unproven_identity_of_the_contact_itself_leaves_the_email_unverified(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    contact = await make(client, tenant, first_name="Eleni", email_address="eleni@example.com")
    response = await client.post(
        f"{BASE}/{contact}/identities",
        json={"provider": "EMAIL", "email": "eleni@example.com"},
        headers=key(tenant),
    )
    assert response.status_code == 201, response.text
    (found,) = await search(client, tenant, email_address="eleni@example.com")
    assert found["email_verified"] is False


async def test_openapi_documents_email_verified(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    field = document["components"]["schemas"]["ContactFound"]["properties"]["email_verified"]
    assert "proven" in field["description"]
