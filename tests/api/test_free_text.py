"""One free-text rule on every surface: NFC, trimmed, invisible characters refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.selfservice import (
    SEED_REGISTER,
    bearer,
    key,
    last_code,
    sign_in_by_phone,
    unique_phone,
)

V1 = "/self-service/v1"
V2 = "/self-service/v2"
HIDDEN = ["Ann\u200bX", "Ann\u202eX", "Ann\u0007X", "Ann\ufeffX"]


def _register_body(**fields: Any) -> dict[str, Any]:
    identity = {**SEED_REGISTER["identity"], "phone_number": unique_phone()}  # type: ignore[dict-item]
    return {**SEED_REGISTER, "identity": identity, **fields}


@pytest.mark.parametrize("name", HIDDEN)
async def test_invisible_characters_are_refused_on_both_surfaces(
    client: Any, tenant: Any, name: str
) -> None:
    registered = await client.post(
        f"{V1}/contacts/register", json=_register_body(first_name=name), headers=key(tenant)
    )
    assert registered.status_code == 400, registered.text
    assert registered.json()["code"] == "INVALID_REQUEST"
    titled = await client.post(
        f"{V1}/contacts/register", json=_register_body(title=name), headers=key(tenant)
    )
    assert titled.status_code == 400 and titled.json()["code"] == "INVALID_REQUEST"
    created = await client.post(
        "/backoffice/v1/contacts",
        json={"first_name": name, "last_name": "B"},
        headers={"api_key": tenant.keys["secret_test"]},
    )
    assert created.status_code == 400 and created.json()["code"] == "INVALID_REQUEST"


def _error(response: Any) -> dict[str, Any]:
    body = response.json()
    return {"status": response.status_code, **{k: body[k] for k in ("code", "message", "details")}}


async def test_a_hidden_character_in_a_name_gets_one_answer_on_every_surface(
    client: Any, runtime: Any, tenant: Any
) -> None:
    name = "Ann\u200bX"
    registered = await client.post(
        f"{V1}/contacts/register", json=_register_body(first_name=name), headers=key(tenant)
    )
    tokens = await sign_in_by_phone(client, runtime, tenant)
    updated = await client.put(
        f"{V2}/contacts/{tokens['contact']['id']}",
        json={"first_name": name},
        headers=bearer(tokens["access_token"]),
    )
    created = await client.post(
        "/backoffice/v1/contacts",
        json={"first_name": name},
        headers={"api_key": tenant.keys["secret_test"]},
    )
    want = {
        "status": 400,
        "code": "INVALID_REQUEST",
        "message": "The request is not valid.",
        "details": [
            {"field": "first_name", "message": "contains a forbidden character U+200B"},
        ],
    }
    assert _error(registered) == want
    assert _error(updated) == want
    assert _error(created) == want


async def test_profile_update_follows_the_rule(client: Any, runtime: Any, tenant: Any) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    url = f"{V2}/contacts/{tokens['contact']['id']}"
    auth = bearer(tokens["access_token"])
    refused = await client.put(url, json={"last_name": "Sa\u200bmir"}, headers=auth)
    assert refused.status_code == 400 and refused.json()["code"] == "INVALID_REQUEST"
    # A decomposed accent is stored composed, as the Back-Office stores it.
    updated = await client.put(url, json={"last_name": "Ame\u0301lie"}, headers=auth)
    assert updated.status_code in (200, 204), updated.text
    read = await client.get(url, headers=auth)
    assert read.json()["last_name"] == "Am\u00e9lie"


async def test_register_stores_nfc(client: Any, runtime: Any, tenant: Any) -> None:
    body = _register_body(first_name="  Zo\u0065\u0308  ")
    registered = await client.post(f"{V1}/contacts/register", json=body, headers=key(tenant))
    assert registered.status_code == 201, registered.text
    validated = await client.post(
        f"{V2}/contacts/validate_otp",
        json={
            "auth_otp": registered.json()["auth_otp"],
            "code": await last_code(runtime, tenant.id),
        },
        headers=key(tenant),
    )
    assert validated.status_code == 200, validated.text
    assert validated.json()["contact"]["first_name"] == "Zo\u00eb"
