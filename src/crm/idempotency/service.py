"""Idempotency-Key: the same key and body within 24 hours gets the first answer, never a second effect.

The record is written in the same transaction as the operation's effects, so either both exist
or neither does; a concurrent duplicate loses on the primary key and is answered from the
winner's record (or told to retry while the winner is still running).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.errors import Conflict, InvalidRequest
from crm.idempotency.models import IdempotencyRecord
from crm.security.crypto import SecretBox

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was used with a different request body."


class IdempotencyKeyInvalid(InvalidRequest):
    code = "IDEMPOTENCY_KEY_INVALID"
    message = "An Idempotency-Key must be 1 to 255 printable ASCII characters."


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status_code: int
    body: Any


def request_hash(body: bytes, target: str = "") -> str:
    """A digest of the request: `target` (the concrete path) and the body.

    The scope is the path template, so the path's parameters must be hashed here: the same key
    and body sent for another contact is another request, never a retry of the first.
    """
    # Hash the canonical JSON when possible, so whitespace or key order do not count as "different".
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256()
    if target:
        digest.update(target.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(canonical)
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not all(32 < ord(c) < 127 for c in key):
        raise IdempotencyKeyInvalid()
    return key


def _box(secret: str) -> SecretBox:
    # Stored answers can hold access and refresh tokens (Self-Service): encrypted at rest.
    return SecretBox(secret, "idempotency-answers")


async def lookup(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    tenant_id: str,
    mode: str,
    scope: str,
    key: str,
    body_hash: str,
) -> StoredAnswer | None:
    """The first answer for this key, or None when the operation should run now."""
    record = await session.get(IdempotencyRecord, (tenant_id, mode, scope, check_key(key)))
    if record is None or record.created_at < clock.now() - RETENTION:
        return None
    if record.request_hash != body_hash:
        raise IdempotencyKeyReused()
    return StoredAnswer(
        record.status_code, orjson.loads(_box(secret).decrypt(record.response_body))
    )


async def remember(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    tenant_id: str,
    mode: str,
    scope: str,
    key: str,
    body_hash: str,
    status_code: int,
    body: Any,
) -> None:
    """Store the answer in the operation's own transaction (flushed now so a race fails here)."""
    existing = await session.get(IdempotencyRecord, (tenant_id, mode, scope, key))
    if existing is not None:  # an expired record: replace it
        await session.delete(existing)
        await session.flush()
    session.add(
        IdempotencyRecord(
            tenant_id=tenant_id,
            mode=mode,
            scope=scope,
            key=key,
            request_hash=body_hash,
            status_code=status_code,
            response_body=_box(secret).encrypt(orjson.dumps(body)),
            created_at=clock.now(),
        )
    )
    try:
        await session.flush()
    except IntegrityError as exc:
        raise IdempotencyInFlight() from exc


class IdempotencyInFlight(Conflict):
    code = "IDEMPOTENCY_KEY_IN_USE"
    message = "A request with this Idempotency-Key is being processed; retry shortly."


async def purge_expired(session: AsyncSession, clock: Clock) -> int:
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < clock.now() - RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
