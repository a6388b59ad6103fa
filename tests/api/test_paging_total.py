"""`paging.total` as the README documents it: null unless asked on contacts and audit, always a
number on the outbox; `has_more` everywhere."""

from __future__ import annotations

import httpx

from crm.tenants.schemas import CreatedTenant


def sk(tenant: CreatedTenant) -> dict[str, str]:
    return {"api_key": tenant.keys["secret_test"]}


async def test_total_is_null_unless_asked_on_contacts_and_audit_and_always_on_the_outbox(
    client: httpx.AsyncClient, tenant: CreatedTenant
) -> None:
    for n in range(3):
        made = await client.post(
            "/backoffice/v1/contacts", json={"id": f"p{n}", "first_name": "Ann"}, headers=sk(tenant)
        )
        assert made.status_code == 201
    for path, counted in (
        ("/backoffice/v1/contacts?size=2", 3),
        ("/backoffice/v1/contacts/p0/audit?size=2", 1),
    ):
        plain = (await client.get(path, headers=sk(tenant))).json()["paging"]
        assert plain["total"] is None
        asked = (await client.get(f"{path}&include_total=true", headers=sk(tenant))).json()
        assert asked["paging"]["total"] == counted
        assert asked["paging"]["has_more"] == (counted > 2)
    outbox = (await client.get("/backoffice/v1/outbox", headers=sk(tenant))).json()["paging"]
    assert outbox["total"] == 0 and outbox["has_more"] is False
