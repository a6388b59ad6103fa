"""Console sessions: a random token in the cookie, its SHA-256 here, with idle and absolute ends."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.ids import uuid7
from crm.operators.models import Operator, OperatorSession

# Writing last_seen_at on every page view would make every read a write; a minute's precision
# is plenty for an idle limit of minutes.
_TOUCH_EVERY = timedelta(seconds=60)
MAX_TOKEN = 100


def token_hash(token: str) -> str:
    # 256 random bits: a fast unsalted hash is safe and keeps the lookup one index probe.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Lifetimes:
    idle_seconds: int
    absolute_seconds: int


async def start(
    session: AsyncSession,
    clock: Clock,
    *,
    operator: Operator,
    mode: str,
    user_agent: str | None,
    ip_address: str | None,
) -> tuple[str, OperatorSession]:
    """A new session (a new id and token on every sign-in: no fixation); the token is returned once."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    row = OperatorSession(
        id=uuid7(),
        operator_id=operator.id,
        token_hash=token_hash(token),
        csrf_token=secrets.token_urlsafe(32),
        mode=mode,
        user_agent=(user_agent or "")[:200] or None,
        ip_address=(ip_address or "")[:64] or None,
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    await session.flush()
    return token, row


def is_live(row: OperatorSession, now: datetime, lifetimes: Lifetimes) -> bool:
    return (
        row.ended_at is None
        and now < row.last_seen_at + timedelta(seconds=lifetimes.idle_seconds)
        and now < row.created_at + timedelta(seconds=lifetimes.absolute_seconds)
    )


async def resolve(
    session: AsyncSession, clock: Clock, token: str, lifetimes: Lifetimes
) -> tuple[OperatorSession, Operator] | None:
    """The live session of a cookie's token and its (enabled) operator, or None."""
    if not token or len(token) > MAX_TOKEN:
        return None
    row = await session.scalar(
        select(OperatorSession).where(OperatorSession.token_hash == token_hash(token))
    )
    now = clock.now()
    if row is None or not is_live(row, now, lifetimes):
        return None
    operator = await session.get(Operator, row.operator_id)
    if operator is None or operator.disabled_at is not None:
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
    return row, operator


async def list_live(
    session: AsyncSession, clock: Clock, operator_id: str, lifetimes: Lifetimes
) -> list[OperatorSession]:
    rows = await session.scalars(
        select(OperatorSession)
        .where(OperatorSession.operator_id == operator_id, OperatorSession.ended_at.is_(None))
        .order_by(OperatorSession.created_at.desc(), OperatorSession.id)
        .limit(200)
    )
    now = clock.now()
    return [row for row in rows if is_live(row, now, lifetimes)]


async def end(session: AsyncSession, clock: Clock, *, operator_id: str, session_id: str) -> bool:
    """End one of the operator's own sessions; False if there is no such live one."""
    if not isinstance(session_id, str) or len(session_id) > 36:
        return False
    result = await session.execute(
        update(OperatorSession)
        .where(
            OperatorSession.id == session_id,
            OperatorSession.operator_id == operator_id,
            OperatorSession.ended_at.is_(None),
        )
        .values(ended_at=clock.now())
        .execution_options(synchronize_session="fetch")
    )
    return bool(getattr(result, "rowcount", 0))


async def end_all(session: AsyncSession, clock: Clock, operator_id: str) -> None:
    await session.execute(
        update(OperatorSession)
        .where(OperatorSession.operator_id == operator_id, OperatorSession.ended_at.is_(None))
        .values(ended_at=clock.now())
        .execution_options(synchronize_session="fetch")
    )


async def set_mode(session: AsyncSession, session_id: str, mode: str) -> None:
    """The mode the console shows in this session: `live` or (anything else) `test`."""
    await session.execute(
        update(OperatorSession)
        .where(OperatorSession.id == session_id)
        .values(mode="live" if mode == "live" else "test")
        .execution_options(synchronize_session="fetch")
    )
