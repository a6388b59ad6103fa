"""Creating tenants and applications, issuing, listing, revoking and resolving API keys."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm.clock import Clock
from crm.db import read_connection
from crm.ids import uuid7
from crm.tenants.errors import (
    ApiKeyNotFound,
    ApplicationNotFound,
    InvalidTenantName,
    TenantNotFound,
)
from crm.tenants.models import ApiKey, Application, Tenant
from crm.tenants.schemas import (
    KEY_KINDS,
    KEY_MODES,
    CallerKey,
    CreatedKey,
    CreatedTenant,
    KeyInfo,
    KeyKind,
    KeyMode,
    TenantInfo,
    TenantSettings,
    tenant_settings_from,
)

_PREFIX = {"public": "pk", "secret": "sk"}


def hash_key(key: str) -> str:
    # Keys carry 192 random bits, so a fast unsalted hash is safe and keeps lookup one index probe.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key(kind: KeyKind, mode: KeyMode) -> str:
    """`pk_test_...` / `sk_live_...`: the prefix makes a leaked key recognisable (and scannable)."""
    return f"{_PREFIX[kind]}_{mode}_{secrets.token_urlsafe(24)}"


async def create_tenant(session: AsyncSession, clock: Clock, name: str) -> CreatedTenant:
    clean = name.strip()
    if not clean or len(clean) > 200 or not clean.isprintable():
        raise InvalidTenantName()
    now = clock.now()
    tenant = Tenant(id=uuid7(), name=clean, settings={}, created_at=now)
    session.add(tenant)
    # No ORM relationships are declared, so flush parents before children for the foreign keys.
    await session.flush()
    application = Application(
        id=uuid7(), tenant_id=tenant.id, name="Default application", settings={}, created_at=now
    )
    session.add(application)
    await session.flush()
    keys = await issue_key_set(session, clock, tenant.id, application.id)
    return CreatedTenant(id=tenant.id, name=tenant.name, application_id=application.id, keys=keys)


async def issue_key_set(
    session: AsyncSession, clock: Clock, tenant_id: str, application_id: str | None = None
) -> dict[str, str]:
    """One key of each kind and mode, as `{"public_test": key, ...}` (plaintext, shown once)."""
    keys: dict[str, str] = {}
    for kind in KEY_KINDS:
        for mode in KEY_MODES:
            created = await create_key(session, clock, tenant_id, kind, mode, application_id)
            keys[f"{kind}_{mode}"] = created.key
    return keys


async def create_key(
    session: AsyncSession,
    clock: Clock,
    tenant_id: str,
    kind: KeyKind,
    mode: KeyMode,
    application_id: str | None = None,
) -> CreatedKey:
    if await session.get(Tenant, tenant_id) is None:
        raise TenantNotFound()
    if kind == "public":
        # Public keys belong to an application; default to the tenant's first one.
        if application_id is None:
            application_id = await session.scalar(
                select(Application.id)
                .where(Application.tenant_id == tenant_id)
                .order_by(Application.created_at)
                .limit(1)
            )
    else:
        application_id = None
    key = generate_key(kind, mode)
    row = ApiKey(
        id=uuid7(),
        tenant_id=tenant_id,
        application_id=application_id,
        kind=kind,
        mode=mode,
        key_hash=hash_key(key),
        display_prefix=key[:12],
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return CreatedKey(id=row.id, kind=kind, mode=mode, key=key)


async def list_tenants(session: AsyncSession) -> list[TenantInfo]:
    apps = (
        select(func.count(Application.id))
        .where(Application.tenant_id == Tenant.id)
        .scalar_subquery()
    )
    keys = (
        select(func.count(ApiKey.id))
        .where(ApiKey.tenant_id == Tenant.id, ApiKey.revoked_at.is_(None))
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Tenant.id, Tenant.name, Tenant.created_at, apps, keys).order_by(Tenant.created_at)
    )
    return [TenantInfo(*row) for row in rows]


async def find_tenant_by_name(session: AsyncSession, name: str) -> str | None:
    return await session.scalar(select(Tenant.id).where(Tenant.name == name).limit(1))


async def list_keys(session: AsyncSession, tenant_id: str) -> list[KeyInfo]:
    if await session.get(Tenant, tenant_id) is None:
        raise TenantNotFound()
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
    )
    return [
        KeyInfo(
            id=k.id,
            tenant_id=k.tenant_id,
            application_id=k.application_id,
            kind=k.kind,
            mode=k.mode,
            display_prefix=k.display_prefix,
            created_at=k.created_at,
            revoked_at=k.revoked_at,
        )
        for k in rows
    ]


async def revoke_key(session: AsyncSession, clock: Clock, key_id: str) -> KeyInfo:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise ApiKeyNotFound()
    if key.revoked_at is None:
        key.revoked_at = clock.now()
    return KeyInfo(
        id=key.id,
        tenant_id=key.tenant_id,
        application_id=key.application_id,
        kind=key.kind,
        mode=key.mode,
        display_prefix=key.display_prefix,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


class KeyResolver:
    """Resolves an api_key to its caller with one indexed lookup, cached briefly in-process.

    A revoked key stops working in every process within `ttl` seconds (the cache bound); the
    cache is an LRU so a flood of random keys cannot grow memory without limit.
    """

    def __init__(self, engine: AsyncEngine, ttl: float, max_entries: int = 10_000) -> None:
        self._engine = engine
        self._ttl = ttl
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, CallerKey | None]] = OrderedDict()

    async def resolve(self, key: str) -> CallerKey | None:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(digest)
            return hit[1]
        caller = await self._lookup(digest)
        if self._ttl > 0:
            self._cache[digest] = (now + self._ttl, caller)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return caller

    def clear(self) -> None:
        self._cache.clear()

    async def _lookup(self, digest: str) -> CallerKey | None:
        query = (
            select(
                ApiKey.id,
                ApiKey.tenant_id,
                Tenant.name,
                ApiKey.application_id,
                ApiKey.kind,
                ApiKey.mode,
            )
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        )
        async with read_connection(self._engine) as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        return CallerKey(
            key_id=row[0],
            tenant_id=row[1],
            tenant_name=row[2],
            application_id=row[3],
            kind=cast(KeyKind, row[4]),
            mode=cast(KeyMode, row[5]),
        )


async def create_application(
    session: AsyncSession, clock: Clock, tenant_id: str, name: str
) -> tuple[str, dict[str, str]]:
    """A new app or portal of a tenant, with its own public test and live keys (shown once)."""
    clean = name.strip()
    if not clean or len(clean) > 200 or not clean.isprintable():
        raise InvalidTenantName("An application name must be 1 to 200 printable characters.")
    if await session.get(Tenant, tenant_id) is None:
        raise TenantNotFound()
    application = Application(
        id=uuid7(), tenant_id=tenant_id, name=clean, settings={}, created_at=clock.now()
    )
    session.add(application)
    await session.flush()
    keys = {}
    for mode in KEY_MODES:
        created = await create_key(session, clock, tenant_id, "public", mode, application.id)
        keys[f"public_{mode}"] = created.key
    return application.id, keys


async def list_applications(session: AsyncSession, tenant_id: str) -> list[Application]:
    if await session.get(Tenant, tenant_id) is None:
        raise TenantNotFound()
    rows = await session.scalars(
        select(Application)
        .where(Application.tenant_id == tenant_id)
        .order_by(Application.created_at)
    )
    return list(rows)


async def get_application(session: AsyncSession, application_id: str) -> Application:
    application = await session.get(Application, application_id)
    if application is None:
        raise ApplicationNotFound()
    return application


async def update_application_settings(
    session: AsyncSession,
    application_id: str,
    changes: Mapping[str, Any],
    unset: Iterable[str] = (),
) -> dict[str, Any]:
    """Merge `changes` into the application's settings and drop `unset` keys; returns the result.

    Callers validate names and types (the self-service policy owns their meaning).
    """
    application = await get_application(session, application_id)
    merged = {**(application.settings or {}), **changes}
    for name in unset:
        merged.pop(name, None)
    # A new dict object, so the JSON column is seen as changed.
    application.settings = merged
    return merged


async def get_tenant_settings(session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """The settings a tenant stores (only the ones it overrides)."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFound()
    return dict(tenant.settings or {})


async def tenant_settings(session: AsyncSession, tenant_id: str) -> TenantSettings:
    """A tenant's overrides as typed values (None where the deployment default applies)."""
    stored = await session.scalar(select(Tenant.settings).where(Tenant.id == tenant_id))
    return tenant_settings_from(stored)


async def update_tenant_settings(
    session: AsyncSession,
    tenant_id: str,
    changes: Mapping[str, Any],
    unset: Iterable[str] = (),
) -> dict[str, Any]:
    """Merge `changes` into the tenant's settings and drop `unset` keys; returns the result.

    Callers validate names and values (schemas.TenantSettings lists them).
    """
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFound()
    merged = {**(tenant.settings or {}), **changes}
    for name in unset:
        merged.pop(name, None)
    # A new dict object, so the JSON column is seen as changed.
    tenant.settings = merged
    return merged
