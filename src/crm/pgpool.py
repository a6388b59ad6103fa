"""A small asyncpg pool for single statements outside any transaction on PostgreSQL: the
signed-in read, and the per-client counts that must outlive the request's transaction.

Why not the engine's pool: a checkout from it, with SQLAlchemy's execution layer around the
statement, costs several times the driver's CPU for the statement, more than the one statement
itself. These statements need none of it, so they get their own pool (half the engine pool's
size: each holds a connection for one round trip) with the same server settings, closed when
the engine is disposed, and are compiled once to the driver's SQL (`crm.driver.Statement`). A broken connection is simply discarded by asyncpg and the error answered 503,
as elsewhere.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from crm.driver import Statement
from crm.errors import ServiceUnavailable

# Keyed by engine, then by event loop: asyncpg pools belong to the loop that made them.
_POOLS: weakref.WeakKeyDictionary[AsyncEngine, dict[asyncio.AbstractEventLoop, Any]] = (
    weakref.WeakKeyDictionary()
)
_LOCKS: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _dsn(engine: AsyncEngine) -> str:
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _no_reset(connection: Any) -> None:
    return None


class PoolSettings(Protocol):
    """The deployment settings the pool is sized and bounded by."""

    @property
    def db_pool_size(self) -> int: ...
    @property
    def db_statement_timeout_ms(self) -> int: ...


async def _pool(engine: AsyncEngine, settings: PoolSettings) -> Any:
    loop = asyncio.get_running_loop()
    pools = _POOLS.get(engine)
    if pools is not None and loop in pools:
        return pools[loop]
    lock = _LOCKS.setdefault(engine, asyncio.Lock())
    async with lock:
        pools = _POOLS.setdefault(engine, {})
        if loop in pools:
            return pools[loop]
        server_settings = {"application_name": "crm-direct"}
        if settings.db_statement_timeout_ms:
            server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        pool = await asyncpg.create_pool(
            _dsn(engine),
            min_size=1,
            max_size=max(1, settings.db_pool_size // 2),
            server_settings=server_settings,
            # The default reset (RESET ALL, UNLISTEN, ...) is a round trip per release; these
            # connections only ever run one statement outside a transaction and change no
            # session state.
            reset=_no_reset,
        )
        pools[loop] = pool

        def _close(*_: Any) -> None:
            # Engine disposal is synchronous; terminate closes the sockets without awaiting.
            pool.terminate()

        event.listen(engine.sync_engine, "engine_disposed", _close, once=True)
        return pool


async def fetchrow(
    engine: AsyncEngine, settings: PoolSettings, sql: str, *args: Any
) -> dict[str, Any] | None:
    """Run one statement in autocommit; a database failure is ServiceUnavailable (503)."""
    try:
        pool = await _pool(engine, settings)
        record = await pool.fetchrow(sql, *args)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise ServiceUnavailable() from exc
    return dict(record) if record is not None else None


async def run(
    engine: AsyncEngine, settings: PoolSettings, statement: Statement, values: dict[str, Any]
) -> dict[str, Any] | None:
    """`fetchrow` of a statement compiled once, with its values by name."""
    sql, args = statement.sql_and_args(values)
    return await fetchrow(engine, settings, sql, *args)
