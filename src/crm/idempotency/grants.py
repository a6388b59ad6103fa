"""Whether a remembered answer's tokens still belong to a live session, so it may be replayed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.identities.models import Session
from crm.identities.tokens import refresh_hash


async def still_live(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, body: dict[str, Any]
) -> bool:
    """True while the answer's refresh token is its session's current one and the session lives.

    A signed-out, revoked or expired session gives no tokens again; nor does one whose refresh
    token was used since (the stored one is spent, and presenting it would look like theft).
    """
    token = body.get("refresh_token")
    if not isinstance(token, str) or not token:
        return False
    async with sessions() as db:
        row = (
            await db.execute(
                select(
                    Session.revoked_at, Session.idle_expires_at, Session.absolute_expires_at
                ).where(Session.refresh_hash == refresh_hash(token))
            )
        ).one_or_none()
    if row is None:
        return False
    now = clock.now()
    return row.revoked_at is None and now < row.idle_expires_at and now < row.absolute_expires_at
