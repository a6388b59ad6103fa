"""Fixed-window counters in the database, so a limit holds across every server process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Insert, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from crm import driver, pgpool
from crm.clock import Clock
from crm.errors import RateLimited
from crm.pgpool import PoolSettings
from crm.ratelimits.models import RateCounter

_TABLE = RateCounter.__table__


def _window(clock: Clock, window_seconds: int) -> tuple[datetime, int]:
    """The start of the current window and the seconds a refused caller should wait."""
    now = clock.timestamp()
    start = int(now // window_seconds) * window_seconds
    return datetime.fromtimestamp(start, UTC), int(start + window_seconds - now) + 1


async def hit(
    session: AsyncSession, clock: Clock, bucket: str, *, limit: int, window_seconds: int
) -> None:
    """Count one event in `bucket`; raise RateLimited (429, Retry-After) past `limit` per window.

    Counted in the caller's transaction: a rollback of it takes the count back too.
    """
    window, retry_after = _window(clock, window_seconds)
    bound = _increment(session.get_bind().dialect.name, bucket, window, below=limit)
    if limit < 1 or (await session.execute(bound.statement, bound.values)).scalar() is None:
        raise RateLimited(retry_after=retry_after)


async def hit_now(
    engine: AsyncEngine,
    clock: Clock,
    bucket: str,
    *,
    limit: int,
    window_seconds: int,
    pool: PoolSettings,
) -> None:
    """`hit`, committed at once whatever the caller's own transaction does afterwards.

    One statement on PostgreSQL, in autocommit on crm.pgpool's connections (no BEGIN/COMMIT, no
    checkout ping, the driver's cost only: it runs before most self-service flows); on SQLite a
    write transaction of its own, taken before the caller holds the write lock.
    """
    window, retry_after = _window(clock, window_seconds)
    if limit < 1:
        raise RateLimited(retry_after=retry_after)
    bound = _increment(engine.dialect.name, bucket, window, below=limit)
    if engine.dialect.name == "postgresql":
        counted = await pgpool.run(engine, pool, _PG_BOUNDED_UPSERT, bound.values) is not None
    else:
        async with engine.begin() as connection:
            counted = await _counted(connection, bound)
    if not counted:
        raise RateLimited(retry_after=retry_after)


async def _counted(connection: AsyncConnection, bound: _Bound) -> bool:
    return (await connection.execute(bound.statement, bound.values)).scalar() is not None


async def add(session: AsyncSession, bucket: str, window: datetime) -> int:
    """Count one event in `bucket` for the window starting at `window`; return the new count.

    One upsert: concurrent first hits of a window meet at the primary key, and the loser adds
    to the winner's row instead of failing (no savepoint, no second statement).
    """
    bound = _increment(session.get_bind().dialect.name, bucket, window)
    return int((await session.execute(bound.statement, bound.values)).scalar_one())


def _increment(dialect: str, bucket: str, window: datetime, below: int | None = None) -> _Bound:
    """An upsert adding one to the window's count, returning the new count.

    With `below`, a count already at `below` is left alone and nothing is returned: a refused
    request is not counted, so a client that waits gets exactly the limit again.
    """
    statement = _UPSERTS[(dialect == "postgresql", below is not None)]
    values: dict[str, Any] = {"bucket": bucket, "window_start": window}
    if below is not None:
        values["below"] = below
    return _Bound(statement, values)


class _Bound:
    """A prepared upsert and its values (built once per dialect: constructing the statement
    per hit cost more CPU than sending it)."""

    __slots__ = ("statement", "values")

    def __init__(self, statement: Insert, values: dict[str, Any]) -> None:
        self.statement = statement
        self.values = values


def _upsert(postgres: bool, bounded: bool) -> Insert:
    insert: Any = postgresql.insert if postgres else sqlite.insert
    statement = insert(_TABLE).values(
        bucket=bindparam("bucket"), window_start=bindparam("window_start"), count=1
    )
    statement = statement.on_conflict_do_update(
        index_elements=[_TABLE.c.bucket, _TABLE.c.window_start],
        set_={"count": _TABLE.c.count + 1},
        where=_TABLE.c.count < bindparam("below") if bounded else None,
    )
    return statement.returning(_TABLE.c.count)  # type: ignore[no-any-return]


_UPSERTS = {
    (pg, bounded): _upsert(pg, bounded) for pg in (True, False) for bounded in (True, False)
}
_PG_BOUNDED_UPSERT = driver.Statement(_UPSERTS[(True, True)])
