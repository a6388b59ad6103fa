"""A small asyncpg pool for the signed-in read path on PostgreSQL: one round trip per request.

Why not the engine's pool: its checkout pings every connection (on asyncpg a BEGIN/ROLLBACK
pair, two round trips) and opens throw-away overflow connections under bursts, which together
cost more than the read itself. The signed-in read is one SELECT that needs neither, so it gets
its own pool of the same size and server settings, closed when the engine is disposed.
A broken connection is simply discarded by asyncpg and the error answered 503, as elsewhere.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

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
    """The deployment settings the read pool is sized and bounded by."""

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
        server_settings = {"application_name": "crm-read"}
        if settings.db_statement_timeout_ms:
            server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        pool = await asyncpg.create_pool(
            _dsn(engine),
            min_size=1,
            max_size=settings.db_pool_size,
            server_settings=server_settings,
            # The default reset (RESET ALL, UNLISTEN, ...) is a round trip per release; these
            # connections only ever run one SELECT outside a transaction and change no state.
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
    """Run one read-only statement; a database failure is ServiceUnavailable (503)."""
    try:
        pool = await _pool(engine, settings)
        record = await pool.fetchrow(sql, *args)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise ServiceUnavailable() from exc
    return dict(record) if record is not None else None
