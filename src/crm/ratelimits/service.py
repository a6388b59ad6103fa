"""Fixed-window counters in the database, so a limit holds across every server process."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.errors import RateLimited
from crm.ratelimits.models import RateCounter


async def hit(
    session: AsyncSession, clock: Clock, bucket: str, *, limit: int, window_seconds: int
) -> None:
    """Count one event in `bucket`; raise RateLimited (429, Retry-After) past `limit` per window."""
    now = clock.timestamp()
    start = int(now // window_seconds) * window_seconds
    retry_after = int(start + window_seconds - now) + 1
    count = await add(session, bucket, datetime.fromtimestamp(start, UTC))
    if count > limit:
        raise RateLimited(retry_after=retry_after)


async def add(session: AsyncSession, bucket: str, window: datetime) -> int:
    """Count one event in `bucket` for the window starting at `window`; return the new count.

    Runs in its own savepoint so a lost insert race does not spoil the caller's transaction.
    """
    increment = (
        update(RateCounter)
        .where(RateCounter.bucket == bucket, RateCounter.window_start == window)
        .values(count=RateCounter.count + 1)
        .returning(RateCounter.count)
    )
    count = (await session.execute(increment)).scalar_one_or_none()
    if count is not None:
        return int(count)
    try:
        async with session.begin_nested():
            session.add(RateCounter(bucket=bucket, window_start=window, count=1))
        return 1
    except IntegrityError:
        return int((await session.execute(increment)).scalar_one())
