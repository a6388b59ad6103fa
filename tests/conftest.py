"""Test fixtures: a real database per backend (SQLite always, PostgreSQL when one answers)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import string
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from crm.app import create_app
from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.settings import Settings
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant

TEST_SECRET = "test-secret-" + "x" * 40
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def _postgres_admin_url() -> str | None:
    """The PostgreSQL to test against, or None to skip that tier (CRM_TEST_POSTGRES=off forces it)."""
    if os.environ.get("CRM_TEST_POSTGRES", "").lower() in {"0", "off", "false", "no"}:
        return None
    url = os.environ.get("CRM_TEST_POSTGRES_URL") or PG_DEFAULT
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # A pytest-xdist worker takes the controller's decision (below) instead of probing.
        return url
    parsed = urlsplit(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=0.5
        ):
            return url
    except OSError:
        return None


POSTGRES_ADMIN_URL = _postgres_admin_url()
if not os.environ.get("PYTEST_XDIST_WORKER"):
    # The run's one decision, handed to the pytest-xdist workers (started after this import,
    # with this environment): every worker then collects the same tiers the header announces,
    # even if PostgreSQL were slow to answer one worker's probe.
    if POSTGRES_ADMIN_URL:
        os.environ["CRM_TEST_POSTGRES_URL"] = POSTGRES_ADMIN_URL
    else:
        os.environ["CRM_TEST_POSTGRES"] = "off"
# Without PostgreSQL the tier is left out (not skipped test by test); the summary says so.
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_ADMIN_URL else ["sqlite"]


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_ADMIN_URL:
        return f"database tiers: sqlite, postgresql ({POSTGRES_ADMIN_URL.rsplit('@', 1)[-1]})"
    return "database tiers: sqlite only (PostgreSQL tier skipped: no PostgreSQL answers)"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not POSTGRES_ADMIN_URL:
        terminalreporter.write_line(
            "PostgreSQL tier skipped: no PostgreSQL answers (set CRM_TEST_POSTGRES_URL, "
            "or run one on 127.0.0.1:5432)"
        )


def _letters(n: int) -> str:
    # Letters only: a tenant name with six digits in a row would read as a code in message bodies.
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


def base_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_key": TEST_SECRET,
        "log_format": "json",
        "api_key_cache_seconds": 0,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


async def _pg_execute(admin_url: str, sql: str) -> None:
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_url_for(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, migrated database for this test run, dropped afterwards."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "crm.db"
        url = f"sqlite:///{path}"
        upgrade(base_settings(database_url=url))
        yield url
        return
    assert POSTGRES_ADMIN_URL is not None
    name = f"crm_test_{secrets.token_hex(6)}"
    asyncio.run(_pg_execute(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    url = _pg_url_for(POSTGRES_ADMIN_URL, name)
    try:
        upgrade(base_settings(database_url=url))
        yield url
    finally:
        asyncio.run(
            _pg_execute(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session")
async def runtime(database_url: str) -> AsyncIterator[Runtime]:
    rt = Runtime.build(base_settings(database_url=database_url))
    yield rt
    await rt.close()


@pytest.fixture(scope="session")
async def app(runtime: Runtime) -> Any:
    return create_app(runtime.settings, runtime=runtime)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def tenant(runtime: Runtime) -> CreatedTenant:
    """A new tenant per test: tenancy isolation keeps tests independent without truncation."""
    async with runtime.sessions() as session:
        created = await tenants.create_tenant(session, runtime.clock, f"Acme {_letters(6)}")
        await session.commit()
    return created
