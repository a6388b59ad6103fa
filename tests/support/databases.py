"""Migrated databases of their own for tests that start real server processes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from crm.migrate import upgrade
from crm.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL, _pg_execute, _pg_url_for
from tests.support.server import TEST_SECRET


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None)  # type: ignore[call-arg]


@contextmanager
def migrated_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A migrated `kind` ("sqlite" or "postgresql") database, dropped afterwards (PostgreSQL)."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        upgrade(settings_for(url))
        yield url
        return
    if POSTGRES_ADMIN_URL is None:
        pytest.skip("PostgreSQL tier skipped: nothing answers on 127.0.0.1:5432")
    name = f"crm_e2e_{secrets.token_hex(6)}"
    asyncio.run(_pg_execute(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    url = _pg_url_for(POSTGRES_ADMIN_URL, name)
    try:
        upgrade(settings_for(url))
        yield url
    finally:
        asyncio.run(
            _pg_execute(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )
