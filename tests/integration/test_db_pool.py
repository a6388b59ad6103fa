"""The engine's pool keeps the connections it opened: a load above its size waits for one
rather than opening and closing extra connections (each new connection pays its set-up and
prepares every statement again)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from crm.runtime import Runtime
from tests.conftest import POSTGRES_ADMIN_URL, base_settings
from tests.support.databases import migrated_database

pytestmark = pytest.mark.skipif(POSTGRES_ADMIN_URL is None, reason="PostgreSQL tier skipped")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with migrated_database("postgresql", tmp_path) as url:
        yield url


async def test_a_load_above_the_pool_size_reuses_its_connections(database: str) -> None:
    size = 2
    runtime = Runtime.build(base_settings(database_url=database, db_pool_size=size))
    backends: set[int] = set()

    async def transaction() -> None:
        async with runtime.sessions() as db:
            backends.add(int(await db.scalar(text("SELECT pg_backend_pid()"))))
            await asyncio.sleep(0.01)  # held a moment, so the transactions overlap
            await db.commit()

    try:
        for _ in range(4):  # bounded: four rounds of three times the pool's size at once
            await asyncio.wait_for(asyncio.gather(*(transaction() for _ in range(3 * size))), 30)
    finally:
        await runtime.close()
    # The same connections served every round; none was opened beyond the pool.
    assert len(backends) <= size
