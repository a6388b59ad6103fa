"""Pooled PostgreSQL connections cut under the server (a restart, a failover, an idle timeout).

Connections idle past CRM_DB_PING_IDLE_SECONDS are checked before use, so a quiet server meets
none of the cut ones; a connection cut while busy fails its one request with 503, never a 500,
and the pool reconnects for the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crm.app import create_app
from crm.runtime import Runtime
from crm.tenants import service as tenants
from tests.conftest import POSTGRES_ADMIN_URL, _pg_execute, base_settings
from tests.support.databases import migrated_database

pytestmark = pytest.mark.skipif(POSTGRES_ADMIN_URL is None, reason="PostgreSQL tier skipped")


async def _cut_connections(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    assert POSTGRES_ADMIN_URL is not None
    await _pg_execute(
        POSTGRES_ADMIN_URL,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with migrated_database("postgresql", tmp_path) as url:
        yield url


async def _server(url: str, idle_seconds: float) -> tuple[Runtime, httpx.AsyncClient, str]:
    runtime = Runtime.build(base_settings(database_url=url, db_ping_idle_seconds=idle_seconds))
    async with runtime.sessions() as session:
        created = await tenants.create_tenant(session, runtime.clock, "Reconnect")
        await session.commit()
    app = create_app(runtime.settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    return runtime, client, created.keys["secret_test"]


async def test_an_idle_connection_cut_by_the_database_is_replaced_unseen(database: str) -> None:
    runtime, client, key = await _server(database, idle_seconds=0.2)
    try:
        headers = {"api_key": key}
        assert (await client.get("/backoffice/v1/contacts", headers=headers)).status_code == 200
        await _cut_connections(database)
        await asyncio.sleep(0.3)  # past the idle threshold: the next checkout pings first
        for _ in range(3):
            response = await client.get("/backoffice/v1/contacts", headers=headers)
            assert response.status_code == 200, response.text
    finally:
        await client.aclose()
        await runtime.close()


async def test_a_busy_connection_cut_fails_one_request_with_503_then_recovers(
    database: str,
) -> None:
    runtime, client, key = await _server(database, idle_seconds=3600)
    try:
        headers = {"api_key": key}
        assert (await client.get("/backoffice/v1/contacts", headers=headers)).status_code == 200
        await _cut_connections(database)
        first = await client.get("/backoffice/v1/contacts", headers=headers)
        assert first.status_code == 503, first.text
        assert first.json()["code"] == "SERVICE_UNAVAILABLE"
        # The pool was invalidated by the failure: everything after reconnects.
        for _ in range(3):
            response = await client.get("/backoffice/v1/contacts", headers=headers)
            assert response.status_code == 200, response.text
    finally:
        await client.aclose()
        await runtime.close()


async def test_a_statement_cancelled_by_the_timeout_is_503_and_changes_nothing(
    database: str,
) -> None:
    """A row held by another transaction past CRM_DB_STATEMENT_TIMEOUT_MS (overload, a stuck
    writer): the waiting request is cancelled by PostgreSQL and answers 503, not 500."""
    import asyncpg

    runtime = Runtime.build(base_settings(database_url=database, db_statement_timeout_ms=300))
    app = create_app(runtime.settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with runtime.sessions() as session:
        created = await tenants.create_tenant(session, runtime.clock, "Timeout")
        await session.commit()
    headers = {"api_key": created.keys["secret_test"]}
    holder = await asyncpg.connect(database)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            made = await client.post(
                "/backoffice/v1/contacts", json={"first_name": "Ann"}, headers=headers
            )
            assert made.status_code == 201, made.text
            contact_id = made.json()["id"]
            async with holder.transaction():
                await holder.execute("SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE", contact_id)
                response = await client.put(
                    f"/backoffice/v1/contacts/{contact_id}",
                    json={"first_name": "Bea"},
                    headers=headers,
                )
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "SERVICE_UNAVAILABLE"
            after = await client.get(f"/backoffice/v1/contacts/{contact_id}", headers=headers)
            assert after.json()["first_name"] == "Ann"
    finally:
        await holder.close()
        await runtime.close()
