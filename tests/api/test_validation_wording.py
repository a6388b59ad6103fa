"""The API's validation details are sentences, the same ones the console shows."""

from __future__ import annotations

import httpx

from crm.tenants.schemas import CreatedTenant


async def test_details_speak_plainly(client: httpx.AsyncClient, tenant: CreatedTenant) -> None:
    response = await client.post(
        "/backoffice/v1/contacts",
        json={"first_name": 5, "phones": "x"},
        headers={"api_key": tenant.keys["secret_test"]},
    )
    assert response.status_code == 400
    details = {d["field"]: d["message"] for d in response.json()["details"]}
    assert details == {"first_name": "Must be text.", "phones": "Must be a list."}
    for message in details.values():
        assert "Input should" not in message and "Value error" not in message
