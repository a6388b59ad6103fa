"""Migrations build the whole schema on an empty database, and the models match them."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import crm.models
from crm.db import create_engine
from crm.migrate import head_revision, is_up_to_date
from tests.conftest import base_settings


def test_migrated_database_matches_models(database_url: str) -> None:
    async def check() -> tuple[list[object], set[str], bool]:
        engine = create_engine(base_settings(database_url=database_url))
        try:
            async with engine.connect() as conn:
                diff = await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync), crm.models.Base.metadata
                    )
                )
                tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            return diff, tables, await is_up_to_date(engine)
        finally:
            await engine.dispose()

    diff, tables, current = asyncio.run(check())
    assert diff == []
    assert set(crm.models.Base.metadata.tables) <= tables
    assert current
    assert head_revision() is not None
