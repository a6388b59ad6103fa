"""What a self-service flow may read besides its database session and its request's caller and
metadata (which it receives as arguments of their own).

A flow is handed this, not the process's whole runtime, so the domain states its few needs
(clock, secret, the settings it reads, the engine for its out-of-transaction counters and read
pool, the policy cache) and never reaches for the rest. It is a structural type: the
composition root's runtime, built once per process, already has these attributes, so a request
passes it as is and pays no allocation.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.identities.policy_cache import PolicyCache
from crm.settings import Settings


class FlowContext(Protocol):
    """Read-only: a flow never rewires the process it runs in."""

    @property
    def clock(self) -> Clock: ...

    @property
    def secret(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    # Counters that must outlive a rolled-back request (client limits, verify keys, read pool).
    @property
    def engine(self) -> AsyncEngine: ...

    # A second session for counters that commit on their own (see proof.count).
    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def policies(self) -> PolicyCache: ...
