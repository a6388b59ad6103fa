"""A tenant's custom field definitions and the check of a contact's values on every surface:
undefined keys, types, lengths, allowed values, the per-tenant cap, and tenant isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crm.contacts.custom_fields import MAX_DEFINITIONS
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.api.test_contact_addresses import signed_in, sk
from tests.support.selfservice import SEED_REGISTER, key, unique_phone

BO = "/backoffice/v1"


async def define(
    client: httpx.AsyncClient, tenant: CreatedTenant, name: str, **body: Any
) -> httpx.Response:
    return await client.put(f"{BO}/custom_fields/{name}", json=body, headers=sk(tenant))


async def test_definitions_are_created_replaced_listed_and_removed(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    first = await define(client, tenant, "tier", allowed_values=["gold", "silver"])
    assert first.status_code == 201, first.text
    assert first.json()["type"] == "STRING" and first.json()["max_length"] == 255
    again = await define(client, tenant, "tier", type="STRING", max_length=10)
    assert again.status_code == 200 and again.json()["allowed_values"] == []
    await define(client, tenant, "born_on", type="DATE", description="  Birthday  ")
    listed = (await client.get(f"{BO}/custom_fields", headers=sk(tenant))).json()
    assert [(d["key"], d["type"]) for d in listed] == [("born_on", "DATE"), ("tier", "STRING")]
    assert listed[0]["description"] == "Birthday"
    assert (await client.delete(f"{BO}/custom_fields/tier", headers=sk(tenant))).status_code == 204
    gone = await client.delete(f"{BO}/custom_fields/tier", headers=sk(tenant))
    assert gone.status_code == 404 and gone.json()["code"] == "CUSTOM_FIELD_DEFINITION_NOT_FOUND"
    # A public key may not define anything.
    public = await client.put(
        f"{BO}/custom_fields/x", json={}, headers={"api_key": tenant.keys["public_live"]}
    )
    assert public.status_code == 403


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("bad key", {}),
        ("a" * 65, {}),
        ("ok", {"type": "COLOUR"}),
        ("ok", {"max_length": 0}),
        ("ok", {"max_length": 1025}),
        ("ok", {"allowed_values": ["a", "a"]}),
        ("ok", {"allowed_values": ["x"] * 51}),
        ("ok", {"description": "a\u202eb"}),
    ],
)
async def test_bad_definitions_are_refused(
    client: httpx.AsyncClient, tenant: CreatedTenant, name: str, body: dict[str, Any]
) -> None:
    response = await define(client, tenant, name, **body)
    assert response.status_code == 400, response.text
    assert (await client.get(f"{BO}/custom_fields", headers=sk(tenant))).json() == []


async def test_allowed_values_must_fit_the_definition(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    response = await define(client, tenant, "n", type="INTEGER", allowed_values=["1", "two"])
    assert response.status_code == 400 and response.json()["code"] == "CUSTOM_FIELD_INVALID_VALUE"


async def test_an_undefined_key_is_refused_naming_it_and_nothing_is_written(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await define(client, tenant, "tier")
    response = await client.post(
        f"{BO}/contacts",
        json={
            "id": "cf-1",
            "custom_fields": [{"key": "tier", "value": "gold"}, {"key": "tire", "value": "x"}],
        },
        headers=sk(tenant),
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "CUSTOM_FIELD_UNDEFINED"
    assert body["details"] == [{"field": "custom_fields.1.key", "message": "tire"}]
    assert (await client.get(f"{BO}/contacts/cf-1", headers=sk(tenant))).status_code == 404


@pytest.mark.parametrize(
    ("definition", "value", "stored"),
    [
        ({"type": "INTEGER"}, "-42", "-42"),
        ({"type": "INTEGER"}, "4.2", None),
        ({"type": "INTEGER"}, "1" * 19, None),
        ({"type": "DECIMAL"}, "12.50", "12.50"),
        ({"type": "DECIMAL"}, "1e5", None),
        ({"type": "DECIMAL"}, "NaN", None),
        ({"type": "BOOLEAN"}, " TRUE ", "true"),
        ({"type": "BOOLEAN"}, "yes", None),
        ({"type": "DATE"}, "2024-02-29", "2024-02-29"),
        ({"type": "DATE"}, "2023-02-29", None),
        ({"type": "DATE"}, "29/02/2024", None),
        ({"type": "STRING", "max_length": 5}, "abcde", "abcde"),
        ({"type": "STRING", "max_length": 5}, "abcdef", None),
        # Length counts characters after NFC: "é" decomposed is one character.
        ({"type": "STRING", "max_length": 1}, "e\u0301", "\u00e9"),
        ({"allowed_values": ["gold", "silver"]}, "gold", "gold"),
        ({"allowed_values": ["gold", "silver"]}, "GOLD", None),
    ],
)
async def test_values_are_checked_by_their_definition(
    client: httpx.AsyncClient,
    tenant: CreatedTenant,
    definition: dict[str, Any],
    value: str,
    stored: str | None,
) -> None:
    assert (await define(client, tenant, "f", **definition)).is_success
    response = await client.post(
        f"{BO}/contacts",
        json={"id": "v-1", "custom_fields": [{"key": "f", "value": value}]},
        headers=sk(tenant),
    )
    if stored is None:
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "CUSTOM_FIELD_INVALID_VALUE"
        assert response.json()["details"][0]["field"] == "custom_fields.0.value"
        return
    assert response.status_code == 201, response.text
    contact = (await client.get(f"{BO}/contacts/v-1", headers=sk(tenant))).json()
    assert contact["custom_fields"] == [{"key": "f", "value": stored}]


async def test_update_checks_values_and_an_empty_value_removes_the_field(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    await define(client, tenant, "a")
    await define(client, tenant, "b", type="INTEGER")
    created = await client.post(
        f"{BO}/contacts",
        json={"custom_fields": [{"key": "a", "value": "x"}, {"key": "b", "value": "1"}]},
        headers=sk(tenant),
    )
    ref = created.json()["id"]
    bad = await client.put(
        f"{BO}/contacts/{ref}",
        json={"custom_fields": [{"key": "b", "value": "one"}]},
        headers=sk(tenant),
    )
    assert bad.status_code == 400
    ok = await client.put(
        f"{BO}/contacts/{ref}",
        json={"custom_fields": [{"key": "a", "value": ""}, {"key": "b", "value": "2"}]},
        headers=sk(tenant),
    )
    assert ok.status_code == 200, ok.text
    contact = (await client.get(f"{BO}/contacts/{ref}", headers=sk(tenant))).json()
    assert contact["custom_fields"] == [{"key": "b", "value": "2"}]
    audit = (await client.get(f"{BO}/contacts/{ref}/audit", headers=sk(tenant))).json()
    assert ["custom_fields"] in [e["fields"] for e in audit["content"] if e["action"] == "UPDATED"]


async def test_self_service_register_and_profile_obey_the_definitions(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    body = {
        **SEED_REGISTER,
        "identity": {**SEED_REGISTER["identity"], "phone_number": unique_phone()},
        "custom_fields": [{"key": "nickname", "value": "Zed"}],
    }
    refused = await client.post(
        "/self-service/v2/contacts/register", json=body, headers=key(tenant)
    )
    assert refused.status_code == 400 and refused.json()["code"] == "CUSTOM_FIELD_UNDEFINED"

    await client.put(
        f"{BO}/custom_fields/nickname", json={"max_length": 10}, headers=sk(tenant, "secret_test")
    )
    contact_id, auth = await signed_in(client, runtime, tenant)
    too_long = await client.put(
        f"/self-service/v2/contacts/{contact_id}",
        json={"custom_fields": [{"key": "nickname", "value": "x" * 11}]},
        headers=auth,
    )
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "CUSTOM_FIELD_INVALID_VALUE"
    hidden = await client.put(
        f"/self-service/v2/contacts/{contact_id}",
        json={"custom_fields": [{"key": "nickname", "value": "Z\u200bed"}]},
        headers=auth,
    )
    assert hidden.status_code == 400
    ok = await client.put(
        f"/self-service/v2/contacts/{contact_id}",
        json={"custom_fields": [{"key": "nickname", "value": " Zed "}]},
        headers=auth,
    )
    assert ok.status_code == 200, ok.text
    profile = (await client.get(f"/self-service/v2/contacts/{contact_id}", headers=auth)).json()
    assert profile["custom_fields"] == [{"key": "nickname", "value": "Zed"}]


async def test_definitions_are_the_tenants_own_and_capped(
    client: httpx.AsyncClient, runtime: Runtime, tenant: CreatedTenant
) -> None:
    await define(client, tenant, "mine")
    async with runtime.sessions() as session:
        other = await tenants.create_tenant(session, runtime.clock, "Other Fields Ltd")
        await session.commit()
    foreign = await client.post(
        f"{BO}/contacts",
        json={"custom_fields": [{"key": "mine", "value": "x"}]},
        headers=sk(other),
    )
    assert foreign.status_code == 400 and foreign.json()["code"] == "CUSTOM_FIELD_UNDEFINED"
    assert (await client.get(f"{BO}/custom_fields", headers=sk(other))).json() == []
    not_theirs = await client.delete(f"{BO}/custom_fields/mine", headers=sk(other))
    assert not_theirs.status_code == 404

    for n in range(MAX_DEFINITIONS - 1):
        assert (await define(client, tenant, f"k{n}")).status_code == 201
    over = await define(client, tenant, "one_too_many")
    assert over.status_code == 409
    assert over.json()["code"] == "CUSTOM_FIELD_DEFINITION_LIMIT_REACHED"
    # Redefining an existing key is not a new one.
    assert (await define(client, tenant, "mine", type="INTEGER")).status_code == 200
