"""The per-process runtime: settings, the resolved secret, the engine and the shared services."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.db import create_engine, session_factory
from crm.identities.policy_cache import PolicyCache
from crm.media import MediaStore, media_store
from crm.settings import Settings
from crm.tenants.service import KeyResolver


@dataclass
class Runtime:
    """Everything a request or a command needs, built once per process (no module globals)."""

    settings: Settings
    secret: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keys: KeyResolver
    # The applications' self-service policies, cached as briefly as the keys.
    policies: PolicyCache
    clock: Clock = field(default_factory=Clock)
    # Set after a commit that queued messages, so the delivery worker starts at once.
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        engine = create_engine(settings)
        return cls(
            settings=settings,
            secret=settings.resolved_secret(),
            engine=engine,
            sessions=session_factory(engine),
            keys=KeyResolver(engine, settings.api_key_cache_seconds),
            policies=PolicyCache(engine, settings.api_key_cache_seconds),
            clock=clock or Clock(),
        )

    @property
    def media(self) -> MediaStore:
        """Where contact pictures are kept, as the settings say now (tests change them)."""
        return media_store(self.settings)

    async def close(self) -> None:
        await self.engine.dispose()
