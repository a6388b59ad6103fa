"""One Idempotency-Key across two real `crm serve` processes on one database: one effect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crm.runtime import Runtime
from crm.tenants import service as tenants
from tests.support.databases import migrated_database, settings_for
from tests.support.server import CrmProcess

CONCURRENT = 20


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with migrated_database(request.param, tmp_path) as url:
        yield url


async def _secret_key(url: str) -> str:
    runtime = Runtime.build(settings_for(url))
    try:
        async with runtime.sessions() as session:
            tenant = await tenants.create_tenant(session, runtime.clock, "Acme")
            await session.commit()
        return tenant.keys["secret_test"]
    finally:
        await runtime.close()


async def test_one_key_sent_to_two_server_processes_creates_one_contact(
    tmp_path: Path, database: str
) -> None:
    secret = await _secret_key(database)
    servers = [CrmProcess.serve(tmp_path, database, name=f"serve{n}").start() for n in (1, 2)]
    try:
        headers = {"api_key": secret, "Idempotency-Key": "two-processes"}
        async with httpx.AsyncClient(timeout=30) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        f"{servers[n % 2].base_url}/backoffice/v1/contacts",
                        json={"first_name": "Once"},
                        headers=headers,
                    )
                    for n in range(CONCURRENT)
                )
            )
            listed = await http.get(
                f"{servers[0].base_url}/backoffice/v1/contacts",
                params={"include_total": "true"},
                headers={"api_key": secret},
            )
    finally:
        for server in servers:
            server.stop()
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    assert 201 in statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} <= {
        "IDEMPOTENCY_KEY_IN_USE"
    }
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    assert listed.json()["paging"]["total"] == 1
