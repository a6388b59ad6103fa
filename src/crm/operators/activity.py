"""The tenant's activity log: what its operators did in the console and what administrators did
with the command line (sign-ins, failed ones, operators, providers, keys). A change to a contact
is not here: it goes to that contact's audit trail, which names the operator too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.ids import uuid7
from crm.operators.models import OperatorActivity
from crm.vocabulary import OperatorAction

MAX_PAGE = 100
COMMAND_LINE = "command line"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, and from where (the console's request; nothing for the command line)."""

    label: str  # the operator's email, or COMMAND_LINE
    operator_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None


CLI_ACTOR = Actor(label=COMMAND_LINE)


def record(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    actor: Actor,
    action: OperatorAction,
    target: str | None = None,
    detail: Mapping[str, str] | None = None,
) -> None:
    """Add one entry to the caller's transaction: it commits with the change it describes."""
    session.add(
        OperatorActivity(
            id=uuid7(),
            tenant_id=tenant_id,
            operator_id=actor.operator_id,
            actor=actor.label[:320],
            action=action.value,
            target=target[:200] if target else None,
            detail=dict(detail) if detail else None,
            ip_address=actor.ip_address[:64] if actor.ip_address else None,
            user_agent=actor.user_agent[:200] if actor.user_agent else None,
            created_at=clock.now(),
        )
    )


async def newest(
    session: AsyncSession,
    *,
    tenant_id: str,
    before: str | None = None,
    size: int = 50,
    action: OperatorAction | None = None,
) -> list[OperatorActivity]:
    """A page of the tenant's entries, newest first; `before` is the last id of the previous page."""
    query = select(OperatorActivity).where(OperatorActivity.tenant_id == tenant_id)
    if before:
        query = query.where(OperatorActivity.id < before[:36])
    if action is not None:
        query = query.where(OperatorActivity.action == action.value)
    query = query.order_by(OperatorActivity.id.desc()).limit(max(1, min(size, MAX_PAGE)))
    return list(await session.scalars(query))


async def purge(session: AsyncSession, now: datetime, retention_days: int) -> int:
    """Delete entries older than the retention (housekeeping)."""
    result = await session.execute(
        delete(OperatorActivity).where(
            OperatorActivity.created_at < now - timedelta(days=retention_days)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
