"""Idempotency-Key: one key, one effect, and its answer replayed only to the caller that made it.

A request first reserves its key in a committed row of its own (insert-or-conflict on the
primary key, under a lease so that a crashed request does not hold the key for ever); every
other request with that key is then told it is in use. The operation runs, and its answer is
written into the reserved row in the operation's own transaction, fenced by the reservation's
owner, so the effects and the answer commit together or not at all. A failed request releases
its reservation: there was no effect to protect, so its retry runs.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.errors import Conflict, InvalidRequest
from crm.idempotency import grants
from crm.idempotency.models import IdempotencyRecord, RecordState
from crm.security.crypto import SecretBox, hmac_sha256
from crm.unit_of_work import session_scope

RETENTION = timedelta(hours=24)
# How long a reservation holds its key without an answer. The answer is fenced by the owner,
# so a request still running past its lease cannot commit a second effect: this only bounds
# how long a crashed request keeps a key from its retries.
LEASE = timedelta(seconds=60)
MAX_KEY_LENGTH = 255
# Each round ends in a decision unless the row changed under it; a few rounds are plenty.
_RESERVE_ROUNDS = 5


class IdempotencyKeyReused(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was already used for another request; use a new key."


class IdempotencyInFlight(Conflict):
    code = "IDEMPOTENCY_KEY_IN_USE"
    message = "A request with this Idempotency-Key is being processed; retry shortly."

    def __init__(self, message: str | None = None) -> None:
        # The first request usually answers within a second; its retry then gets the answer.
        super().__init__(message, headers={"Retry-After": "1"})


class IdempotencyAnswerGone(Conflict):
    code = "IDEMPOTENCY_ANSWER_GONE"
    message = (
        "The first answer to this Idempotency-Key held tokens of a session that has ended or "
        "been refreshed since; sign in again with a new key."
    )


class IdempotencyKeyInvalid(InvalidRequest):
    code = "IDEMPOTENCY_KEY_INVALID"
    message = "An Idempotency-Key must be 1 to 255 printable ASCII characters."


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status_code: int
    body: Any


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one key's record lives: tenant, mode, caller (digested), operation and key."""

    tenant_id: str
    mode: str
    caller: str
    scope: str
    key: str

    def matches(self) -> list[ColumnElement[bool]]:
        return [
            IdempotencyRecord.tenant_id == self.tenant_id,
            IdempotencyRecord.mode == self.mode,
            IdempotencyRecord.caller == self.caller,
            IdempotencyRecord.scope == self.scope,
            IdempotencyRecord.key == self.key,
        ]


@dataclass(frozen=True, slots=True)
class Reserved:
    """This request holds the key: run the operation, then fill or release."""

    owner: str


@dataclass(frozen=True, slots=True)
class Busy:
    """Another request holds the key and has not answered yet."""


@dataclass(frozen=True, slots=True)
class Found:
    """The key has a remembered answer (not yet compared with this request)."""

    client: str | None
    request_hash: str
    refused: int
    status_code: int
    response_body: str


def check_key(key: str) -> str:
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not all(32 < ord(c) < 127 for c in key):
        raise IdempotencyKeyInvalid()
    return key


def slot(secret: str, *, tenant_id: str, mode: str, caller: str, scope: str, key: str) -> Slot:
    """The record's address; `caller` names who made the request ("key:<id>", "session:<id>")."""
    digest = hmac_sha256(secret, "idempotency-caller", caller.encode("utf-8", "surrogateescape"))
    return Slot(tenant_id, mode, digest, scope, check_key(key))


def client_digest(secret: str, client: str) -> str:
    """The client address as stored: enough to tell it again, not to read it back."""
    return hmac_sha256(secret, "idempotency-client", client.encode("utf-8", "surrogateescape"))


def request_hash(secret: str, body: bytes, target: str = "") -> str:
    """A keyed digest of the request: `target` (the concrete path) and the body.

    The scope is the path template, so the path's parameters must be hashed here: the same key
    and body sent for another contact is another request, never a retry of the first. Keyed
    with the server secret because the body can hold a one-time code or a password, which a
    bare digest would let anyone holding the database test offline.
    """
    # Hash the canonical JSON when possible, so whitespace or key order do not count as "different".
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    prefix = target.encode("utf-8", "surrogateescape") + b"\0" if target else b""
    return hmac_sha256(secret, "idempotency-request", prefix + canonical)


def _box(secret: str) -> SecretBox:
    # Stored answers can hold access and refresh tokens (Self-Service): encrypted at rest.
    return SecretBox(secret, "idempotency-answers")


def _fresh_values(clock: Clock, owner: str, client: str | None, body_hash: str) -> dict[str, Any]:
    now = clock.now()
    return {
        "client": client,
        "request_hash": body_hash,
        "state": RecordState.PENDING.value,
        "owner": owner,
        "lease_expires_at": now + LEASE,
        "refused": 0,
        "status_code": None,
        "response_body": None,
        "created_at": now,
    }


async def _insert_if_absent(session: AsyncSession, key: Slot, values: dict[str, Any]) -> bool:
    row = {
        "tenant_id": key.tenant_id,
        "mode": key.mode,
        "caller": key.caller,
        "scope": key.scope,
        "key": key.key,
        **values,
    }
    # ON CONFLICT DO NOTHING on both dialects: the primary key decides who holds the key, and
    # the loser learns it from the empty RETURNING instead of from an aborted transaction.
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(IdempotencyRecord).values(row).on_conflict_do_nothing()
        inserted = await session.execute(pg.returning(IdempotencyRecord.owner))
    else:
        lite = sqlite.insert(IdempotencyRecord).values(row).on_conflict_do_nothing()
        inserted = await session.execute(lite.returning(IdempotencyRecord.owner))
    return inserted.scalar_one_or_none() is not None


async def reserve(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    key: Slot,
    client: str | None,
    body_hash: str,
) -> Reserved | Busy | Found:
    """Hold the key for this request (committed at once), or say who has it.

    Runs in transactions of its own, before the request's: other requests must see the
    reservation while the operation is still running.
    """
    owner = uuid.uuid4().hex
    for _ in range(_RESERVE_ROUNDS):
        async with session_scope(sessions) as session:
            values = _fresh_values(clock, owner, client, body_hash)
            if await _insert_if_absent(session, key, values):
                return Reserved(owner)
            row = (
                await session.execute(select(IdempotencyRecord).where(*key.matches()))
            ).scalar_one_or_none()
            if row is None:  # released between the two statements: try again
                continue
            now = clock.now()
            done = row.state == RecordState.DONE and row.response_body is not None
            if done and row.created_at >= now - RETENTION:
                return Found(
                    client=row.client,
                    request_hash=row.request_hash,
                    refused=row.refused,
                    status_code=row.status_code or 200,
                    response_body=row.response_body or "",
                )
            if row.state == RecordState.PENDING and row.lease_expires_at > now:
                return Busy()
            # An expired answer or an abandoned reservation: take it over, unless another
            # request did so first (the owner it had is the fence) or its holder answered
            # meanwhile. The conditions are repeated in the statement because PostgreSQL
            # re-checks them on the row as committed by a holder it waited for.
            takeable = or_(
                IdempotencyRecord.created_at < now - RETENTION,
                and_(
                    IdempotencyRecord.state == RecordState.PENDING.value,
                    IdempotencyRecord.lease_expires_at <= now,
                ),
            )
            taken = await session.execute(
                update(IdempotencyRecord)
                .where(*key.matches(), IdempotencyRecord.owner == row.owner, takeable)
                .values(**values)
                .returning(IdempotencyRecord.owner)
                .execution_options(synchronize_session=False)
            )
            if taken.scalar_one_or_none() is not None:
                return Reserved(owner)
    return Busy()


async def fill(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    key: Slot,
    owner: str,
    status_code: int,
    body: Any,
) -> None:
    """Write the answer into the reservation, in the operation's own transaction.

    Raises IdempotencyInFlight when the reservation is no longer this request's (its lease ran
    out and another request took the key): the caller's transaction then rolls back, effects
    included, so the key still has one effect.
    """
    filled = await session.execute(
        update(IdempotencyRecord)
        .where(
            *key.matches(),
            IdempotencyRecord.owner == owner,
            IdempotencyRecord.state == RecordState.PENDING.value,
        )
        .values(
            state=RecordState.DONE.value,
            status_code=status_code,
            response_body=_box(secret).encrypt(orjson.dumps(body)),
            created_at=clock.now(),
        )
        .returning(IdempotencyRecord.owner)
        .execution_options(synchronize_session=False)
    )
    if filled.scalar_one_or_none() is None:
        raise IdempotencyInFlight()


async def release(session: AsyncSession, *, key: Slot, owner: str) -> None:
    """Free the key of a request that failed, so its retry runs."""
    await session.execute(
        delete(IdempotencyRecord)
        .where(
            *key.matches(),
            IdempotencyRecord.owner == owner,
            IdempotencyRecord.state == RecordState.PENDING.value,
        )
        .execution_options(synchronize_session=False)
    )


def _holds_tokens(body: Any) -> bool:
    return isinstance(body, dict) and ("refresh_token" in body or "access_token" in body)


async def replay(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    secret: str,
    *,
    key: Slot,
    found: Found,
    client: str | None,
    body_hash: str,
) -> StoredAnswer:
    """The remembered answer, if this request may have it; else IdempotencyKeyReused.

    The answer never depends on the body unless this is the caller that made the request: a
    replay must not be a way to test guesses (a code, a password) against a stored body.
    """
    if found.client != client:
        # Another client behind the same public key: refused before any comparison.
        raise IdempotencyKeyReused()
    body = orjson.loads(_box(secret).decrypt(found.response_body))
    tokens = _holds_tokens(body)
    if tokens and found.refused:
        # Someone sent this key with another body: tokens are withheld from then on, so each
        # key gives at most one guess, whatever the body of the next request.
        raise IdempotencyKeyReused()
    if not hmac.compare_digest(found.request_hash, body_hash):
        async with session_scope(sessions) as session:
            await session.execute(
                update(IdempotencyRecord)
                .where(*key.matches())
                .values(refused=IdempotencyRecord.refused + 1)
                .execution_options(synchronize_session=False)
            )
        raise IdempotencyKeyReused()
    if tokens and not await grants.still_live(sessions, clock, body):
        raise IdempotencyAnswerGone()
    return StoredAnswer(found.status_code, body)


async def purge_expired(session: AsyncSession, clock: Clock) -> int:
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < clock.now() - RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
