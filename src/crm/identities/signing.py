"""The deployment's JWT signing keys: created on first use, rotated, cached in-process, published."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm.clock import Clock
from crm.db import read_connection, session_factory
from crm.identities.models import SigningKey
from crm.security import jwt as jwt_tools
from crm.security.crypto import SecretBox
from crm.unit_of_work import session_scope

_BOX_PURPOSE = "jwt-signing-key"
# How long a process keeps signing with the key it loaded before looking for a newer one:
# `crm keys rotate-signing` takes effect everywhere within this time.
SIGNER_CACHE_SECONDS = 60.0
# A token carrying an unknown kid makes us re-read the keys at most this often, so garbage
# kids cannot turn into one database query each.
_UNKNOWN_KID_RELOAD_SECONDS = 5.0
# Any constant: the PostgreSQL advisory lock that serialises creating the first key.
_BOOTSTRAP_LOCK_ID = 0x63726D6B  # "crmk"


def _key_object(jwk: dict[str, Any]) -> Ed25519PublicKey | dict[str, Any]:
    """The JWK as a key object; anything unexpected stays a dict for verify to refuse."""
    x = jwk.get("x")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(x, str):
        return jwk
    try:
        return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
    except (ValueError, binascii.Error):
        return jwk


def publish_window(access_ttl_seconds: int) -> timedelta:
    """How long a retired key stays published: its last tokens' lifetime plus cache and skew."""
    return timedelta(
        seconds=access_ttl_seconds + SIGNER_CACHE_SECONDS + jwt_tools.DEFAULT_LEEWAY_SECONDS + 60
    )


@dataclass(slots=True)
class _Signer:
    kid: str
    private_pem: bytes


@dataclass
class KeyRing:
    """Per-engine cache of the signing key and the public keys (keys are the deployment's)."""

    engine: AsyncEngine
    secret: str
    public: dict[str, Any] = field(default_factory=dict)
    jwks: list[dict[str, Any]] = field(default_factory=list)
    public_loaded_at: float = -1e9
    signer: _Signer | None = None
    signer_loaded_at: float = -1e9
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Signature checks already passed, by exact token: an app reuses its access token for many
    # calls, and Ed25519 verification is the largest CPU cost of a signed-in read. Bounded LRU.
    verified: OrderedDict[tuple[str, str, str | None], Any] = field(default_factory=OrderedDict)

    def remember(self, key: tuple[str, str, str | None], claims: Any, *, limit: int) -> None:
        if limit <= 0:
            return
        self.verified[key] = claims
        self.verified.move_to_end(key)
        while len(self.verified) > limit:
            self.verified.popitem(last=False)

    async def signing_key(self, clock: Clock, access_ttl: int) -> _Signer:
        now = time.monotonic()
        if self.signer is not None and now - self.signer_loaded_at < SIGNER_CACHE_SECONDS:
            return self.signer
        async with self.lock:
            if (
                self.signer is None
                or time.monotonic() - self.signer_loaded_at >= SIGNER_CACHE_SECONDS
            ):
                self.signer = await self._load_signer(clock)
                self.signer_loaded_at = time.monotonic()
                await self._load_public(clock, access_ttl)
        return self.signer

    async def public_keys(
        self, clock: Clock, access_ttl: int, kid: str | None = None
    ) -> dict[str, Any]:
        """The verification keys; re-read when stale, or (throttled) when `kid` is unknown."""
        age = time.monotonic() - self.public_loaded_at
        stale = age >= SIGNER_CACHE_SECONDS
        unknown = kid is not None and kid not in self.public and age >= _UNKNOWN_KID_RELOAD_SECONDS
        if stale or unknown:
            async with self.lock:
                await self._load_public(clock, access_ttl)
        return self.public

    async def _load_public(self, clock: Clock, access_ttl: int) -> None:
        cutoff = clock.now() - publish_window(access_ttl)
        query = select(SigningKey.kid, SigningKey.public_jwk).where(
            or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > cutoff)
        )
        async with read_connection(self.engine) as connection:
            rows = (await connection.execute(query)).all()
        # Parsed once into key objects, so verification does no JWK decoding per request.
        fresh = {kid: _key_object(dict(jwk)) for kid, jwk in rows}
        if set(self.public) - set(fresh):
            # A key left publication: tokens it signed must be verified (and refused) afresh.
            self.verified.clear()
        self.public = fresh
        self.jwks = [dict(jwk) for _kid, jwk in rows]
        self.public_loaded_at = time.monotonic()

    async def _load_signer(self, clock: Clock) -> _Signer:
        row = await self._current_row()
        if row is None:
            await ensure_signing_key(self.engine, self.secret, clock)
            row = await self._current_row()
            if row is None:  # pragma: no cover - ensure_signing_key just committed one
                raise RuntimeError("no signing key after creating one")
        kid, encrypted = row
        pem = SecretBox(self.secret, _BOX_PURPOSE).decrypt(encrypted)
        return _Signer(kid=kid, private_pem=pem)

    async def _current_row(self) -> tuple[str, str] | None:
        query = (
            select(SigningKey.kid, SigningKey.private_key_encrypted)
            .where(SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc(), SigningKey.kid)
            .limit(1)
        )
        async with read_connection(self.engine) as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else (row[0], row[1])

    def forget(self) -> None:
        self.verified.clear()
        self.signer = None
        self.public_loaded_at = -1e9


# Keyed by engine rather than stored on Runtime so the ring lives exactly as long as the
# database it caches; weak keys let a disposed engine's cache go with it.
_RINGS: weakref.WeakKeyDictionary[AsyncEngine, KeyRing] = weakref.WeakKeyDictionary()


def key_ring(engine: AsyncEngine, secret: str) -> KeyRing:
    ring = _RINGS.get(engine)
    if ring is None:
        ring = KeyRing(engine=engine, secret=secret)
        _RINGS[engine] = ring
    return ring


def _new_row(secret: str, now: datetime) -> SigningKey:
    kid, pem, jwk = jwt_tools.generate_signing_key()
    return SigningKey(
        kid=kid,
        algorithm=jwt_tools.ALGORITHM,
        private_key_encrypted=SecretBox(secret, _BOX_PURPOSE).encrypt(pem),
        public_jwk=jwk,
        created_at=now,
    )


async def _serialise_key_changes(session: AsyncSession) -> None:
    # Two processes starting at once must not each create "the first" key. PostgreSQL: a
    # transaction-scoped advisory lock; SQLite: the write transaction (BEGIN IMMEDIATE, see
    # crm.db) already admits one writer at a time, so the check below is race-free there.
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _BOOTSTRAP_LOCK_ID})
    else:
        await session.execute(select(SigningKey.kid).limit(1))


async def ensure_signing_key(engine: AsyncEngine, secret: str, clock: Clock) -> None:
    """Create the first signing key unless one exists, in its own transaction."""
    async with session_scope(session_factory(engine)) as session:
        await _serialise_key_changes(session)
        existing = await session.scalar(
            select(SigningKey.kid).where(SigningKey.retired_at.is_(None)).limit(1)
        )
        if existing is None:
            session.add(_new_row(secret, clock.now()))


async def rotate(session: AsyncSession, clock: Clock, secret: str) -> str:
    """Add a new signing key and retire the current ones (still published until their tokens expire)."""
    await _serialise_key_changes(session)
    now = clock.now()
    await session.execute(
        update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now)
    )
    row = _new_row(secret, now)
    session.add(row)
    await session.flush()
    return row.kid
