"""The applications' self-service policies, cached briefly in-process like the API keys.

Every self-service request needs its application's policy (limits, code lifetimes, phone rules),
often twice (the per-client limit, then the flow). The settings change rarely and only through
the back office, so they are read once per `ttl` seconds per process, from a pooled connection
outside the request's transaction; a change reaches every process within `ttl` seconds (the same
bound as a revoked key: `CRM_API_KEY_CACHE_SECONDS`). The cache is an LRU of bounded size.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm.db import read_connection
from crm.identities.policy import Policy, from_settings
from crm.tenants.models import Application

_Defaults = tuple[tuple[str, int], ...]


class _Entry:
    __slots__ = ("built", "expires", "raw")

    def __init__(self, expires: float, raw: Mapping[str, Any] | None) -> None:
        self.expires = expires
        self.raw = raw
        # Policies built from `raw`, per (mode, deployment defaults): building one parses and
        # clamps every field, so it is done once per entry, not per request.
        self.built: dict[tuple[str, _Defaults | None], Policy] = {}


class PolicyCache:
    def __init__(self, engine: AsyncEngine, ttl: float, max_entries: int = 10_000) -> None:
        self._engine = engine
        self._ttl = ttl
        self._max = max_entries
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    async def policy(
        self,
        application_id: str | None,
        mode: str,
        client_defaults: Mapping[str, int] | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> Policy:
        """The policy of `application_id` (defaults when it has none or no application is known).

        A miss is read through `session` when given: a request that already holds a connection
        (on SQLite, the write lock) must not wait for a second one from the pool.
        """
        if application_id is None:
            return from_settings(None, mode, client_defaults)
        entry = await self._entry(application_id, session)
        key = (mode, tuple(sorted(client_defaults.items())) if client_defaults else None)
        built = entry.built.get(key)
        if built is None:
            built = entry.built[key] = from_settings(entry.raw, mode, client_defaults)
        return built

    def clear(self) -> None:
        self._cache.clear()

    async def _entry(self, application_id: str, session: AsyncSession | None) -> _Entry:
        now = time.monotonic()
        entry = self._cache.get(application_id)
        if entry is not None and entry.expires > now:
            self._cache.move_to_end(application_id)
            return entry
        query = select(Application.settings).where(Application.id == application_id)
        if session is not None:
            raw = (await session.execute(query)).scalar_one_or_none()
        else:
            async with read_connection(self._engine) as connection:
                raw = (await connection.execute(query)).scalar_one_or_none()
        entry = _Entry(now + self._ttl, raw)
        if self._ttl > 0:
            self._cache[application_id] = entry
            self._cache.move_to_end(application_id)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return entry
