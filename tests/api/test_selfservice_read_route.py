"""The signed-in profile read, served outside FastAPI's dependency solver, answers as declared."""

from __future__ import annotations

from typing import Any

from tests.support.selfservice import bearer, key, sign_in_by_phone

V1 = "/self-service/v1"
V2 = "/self-service/v2"


async def test_read_answers_the_profile_on_both_versions(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    contact_id = tokens["contact"]["id"]
    for prefix in (V1, V2):
        response = await client.get(
            f"{prefix}/contacts/{contact_id}", headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 200, response.text
        assert response.json()["id"] == contact_id
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-request-id"]


async def test_read_without_token_is_401_with_a_stable_code(client: Any) -> None:
    response = await client.get(f"{V2}/contacts/whoever")
    assert response.status_code == 401
    assert response.json()["code"]
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_read_of_another_contact_is_403(client: Any, runtime: Any, tenant: Any) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    response = await client.get(
        f"{V2}/contacts/someone-else", headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 403


async def test_overlong_id_is_refused_as_declared(client: Any, runtime: Any, tenant: Any) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    for contact_id in ("x" * 65, "x" * 5000):
        response = await client.get(
            f"{V2}/contacts/{contact_id}", headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 400, response.text
        assert response.json()["details"][0]["field"] == "id"
        assert response.json()["code"] == "INVALID_REQUEST"
    # Exactly the declared maximum is an id like any other: not this contact's, so 403.
    response = await client.get(f"{V2}/contacts/{'x' * 64}", headers=bearer(tokens["access_token"]))
    assert response.status_code == 403
    # The token is judged first, as the declared dependencies are resolved before the path.
    response = await client.get(f"{V2}/contacts/{'x' * 65}")
    assert response.status_code == 401


async def test_read_with_a_key_of_the_tokens_tenant_is_accepted(
    client: Any, runtime: Any, tenant: Any
) -> None:
    tokens = await sign_in_by_phone(client, runtime, tenant)
    headers = {**bearer(tokens["access_token"]), **key(tenant)}
    response = await client.get(f"{V2}/contacts/{tokens['contact']['id']}", headers=headers)
    assert response.status_code == 200
