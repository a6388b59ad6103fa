"""Sessions: starting one, rotating its refresh token (grace window, reuse detection), ending it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver
from crm.clock import Clock
from crm.contacts.models import Contact
from crm.events import sessions as events
from crm.identities.errors import RefreshTokenInvalid, RefreshTokenReused
from crm.identities.models import RetiredRefreshToken, Session
from crm.identities.tokens import MAX_REFRESH_TOKEN_LENGTH, new_refresh_token, refresh_hash
from crm.ids import uuid7
from crm.security.crypto import SecretBox
from crm.vocabulary import RevokeReason

_BOX_PURPOSE = "refresh-successor"


@dataclass(frozen=True, slots=True)
class Started:
    session: Session
    refresh_token: str


class SessionSettings(Protocol):
    """The deployment settings a session's lifetime follows."""

    @property
    def refresh_absolute_ttl_seconds(self) -> int: ...
    @property
    def refresh_idle_ttl_seconds(self) -> int: ...
    @property
    def refresh_grace_seconds(self) -> int: ...


# Built once (see crm.driver on why the hot statements are).
_BY_REFRESH_HASH = driver.rows_of(
    Session,
    or_(
        Session.refresh_hash == bindparam("digest"),
        Session.previous_refresh_hash == bindparam("digest"),
    ),
    lock=True,
)
_REVOKE_ALL = driver.Statement(
    update(driver.table_of(Session))
    .where(
        # An UPDATE's parameters may not be named after its table's columns.
        Session.contact_pk == bindparam("contact"),
        Session.revoked_at.is_(None),
        Session.id != bindparam("spared"),
    )
    .values(
        revoked_at=bindparam("now"),
        revoked_reason=bindparam("reason"),
        current_refresh_encrypted=None,
    )
    .returning(driver.table_of(Session).c.id)
)


def _box(secret: str) -> SecretBox:
    return SecretBox(secret, _BOX_PURPOSE)


def start_session(
    db: AsyncSession,
    clock: Clock,
    settings: SessionSettings,
    *,
    contact: Contact,
    application_id: str | None,
    user_agent: str | None,
    ip_address: str | None,
) -> Started:
    now = clock.now()
    token = new_refresh_token()
    absolute = now + timedelta(seconds=settings.refresh_absolute_ttl_seconds)
    row = Session(
        id=uuid7(),
        tenant_id=contact.tenant_id,
        mode=contact.mode,
        application_id=application_id,
        contact_pk=contact.pk,
        refresh_hash=refresh_hash(token),
        created_at=now,
        last_used_at=now,
        idle_expires_at=min(absolute, now + timedelta(seconds=settings.refresh_idle_ttl_seconds)),
        absolute_expires_at=absolute,
        user_agent=(user_agent or None) and user_agent[:400],
        ip_address=(ip_address or None) and ip_address[:64],
    )
    db.add(row)
    events.session_started(db, now, contact, row.id, application_id)
    return Started(session=row, refresh_token=token)


def _live(row: Session, now: datetime) -> bool:
    return row.revoked_at is None and now < row.idle_expires_at and now < row.absolute_expires_at


def _revoke(row: Session, now: datetime, reason: str) -> None:
    if row.revoked_at is None:
        row.revoked_at = now
        row.revoked_reason = reason
    # The successor must not stay readable once the family is dead.
    row.current_refresh_encrypted = None


async def rotate_refresh(
    db: AsyncSession, clock: Clock, settings: SessionSettings, secret: str, token: str
) -> Started:
    """Exchange a refresh token for its successor (OAuth 2.0 Security BCP, section 4.14).

    - the current token: a new one is issued, the old becomes "previous" for the grace window;
    - the previous token within `refresh_grace_seconds` of the rotation: the SAME successor is
      returned (two tabs refreshing at once both stay signed in);
    - the previous token after the window, or any older one: the session is revoked and
      RefreshTokenReused (a StatefulFailure, so the revocation is committed) is raised.
    The session row is locked (PostgreSQL FOR UPDATE; SQLite's single writer) so concurrent
    refreshes are decided one after the other.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
        raise RefreshTokenInvalid()
    digest = refresh_hash(token)
    now = clock.now()
    row = await driver.load(db, Session, _BY_REFRESH_HASH, {"digest": digest}, refresh=True)
    if row is None:
        retired = await db.get(RetiredRefreshToken, digest)
        if retired is None:
            raise RefreshTokenInvalid()
        family = await db.get(Session, retired.session_id, with_for_update=_pg(db))
        if family is not None:
            await _end(db, family, now, RevokeReason.REFRESH_TOKEN_REUSED)
        raise RefreshTokenReused()
    if not _live(row, now):
        raise RefreshTokenInvalid()
    if row.refresh_hash != digest:
        rotated_at = row.rotated_at
        grace = timedelta(seconds=settings.refresh_grace_seconds)
        if rotated_at is not None and now - rotated_at <= grace and row.current_refresh_encrypted:
            successor = _box(secret).decrypt(row.current_refresh_encrypted).decode("utf-8")
            return Started(session=row, refresh_token=successor)
        await _end(db, row, now, RevokeReason.REFRESH_TOKEN_REUSED)
        raise RefreshTokenReused()

    successor = new_refresh_token()
    if row.previous_refresh_hash is not None:
        db.add(
            RetiredRefreshToken(
                token_hash=row.previous_refresh_hash, session_id=row.id, retired_at=now
            )
        )
    row.previous_refresh_hash = digest
    row.refresh_hash = refresh_hash(successor)
    row.current_refresh_encrypted = _box(secret).encrypt(successor)
    row.rotated_at = now
    row.last_used_at = now
    row.idle_expires_at = min(
        row.absolute_expires_at, now + timedelta(seconds=settings.refresh_idle_ttl_seconds)
    )
    return Started(session=row, refresh_token=successor)


async def _end(db: AsyncSession, row: Session, now: datetime, reason: str) -> None:
    """Revoke one session and say so (`session.ended`) when it was still live."""
    if row.revoked_at is None:
        await events.sessions_ended(db, now, row.contact_pk, [row.id], reason)
    _revoke(row, now, reason)


def _pg(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "postgresql"


async def revoke_session(db: AsyncSession, clock: Clock, session_id: str, reason: str) -> bool:
    row = await db.get(Session, session_id)
    if row is None or row.revoked_at is not None:
        return False
    await _end(db, row, clock.now(), reason)
    return True


async def list_sessions(
    db: AsyncSession, contact_pk: int, *, clock: Clock | None = None
) -> list[Session]:
    """The contact's sessions that can still be refreshed, newest first."""
    now = (clock or Clock()).now()
    rows = await db.scalars(
        select(Session)
        .where(
            Session.contact_pk == contact_pk,
            Session.revoked_at.is_(None),
            Session.idle_expires_at > now,
            Session.absolute_expires_at > now,
        )
        .order_by(Session.created_at.desc(), Session.id)
    )
    return list(rows)


async def revoke_all_sessions(
    db: AsyncSession,
    clock: Clock,
    contact_pk: int,
    reason: str,
    *,
    except_session_id: str | None = None,
) -> int:
    """End every live session of a contact (access tokens are refused at once); return how many."""
    # One statement: the update returns the sessions it ended. The empty id spared is none.
    values = {
        "contact": contact_pk,
        "spared": except_session_id or "",
        "now": clock.now(),
        "reason": reason[:40],
    }
    ended = [row["id"] for row in await driver.fetch(db, _REVOKE_ALL, values)]
    # Sessions this request already holds as objects see the change, as `synchronize_session`
    # would have done.
    driver.refreshed(
        db,
        Session,
        ended,
        revoked_at=values["now"],
        revoked_reason=values["reason"],
        current_refresh_encrypted=None,
    )
    await events.sessions_ended(db, clock.now(), contact_pk, ended, reason)
    return len(ended)
