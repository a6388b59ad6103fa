"""Failure counters that throttle guessing: per subject (an identity's codes, a contact's password,
an unknown identifier) and per client guessing at that subject.

A failure is counted on the client's own counter every time, and on the subject's counter only
while the client is not yet throttled: one client can add at most a few failures to a subject
per quiet period, so only an attacker with many addresses can ever delay a subject, and the
subject's lock (far higher) ends by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver
from crm.errors import RateLimited, retry_after
from crm.identities.errors import IdentityLocked
from crm.identities.models import FailureCounter
from crm.identities.policy import Policy
from crm.security.crypto import hmac_sha256

_SUBJECT_PURPOSE = "failure-subject"


class Kind(StrEnum):
    """What is being guessed: codes are counted per identity, passwords per contact."""

    CODE = "code"
    PASSWORD = "password"


class IdentityThrottled(RateLimited):
    code = "IDENTITY_THROTTLED"
    message = "Too many failed attempts for this identity; wait before asking for a new code."


class ClientThrottled(RateLimited):
    code = "CLIENT_THROTTLED"
    message = "Too many failed attempts from this client; wait before trying again."


class Counted(Protocol):
    """A counter's three fields: an Identity (its codes) or a FailureCounter row."""

    failed_attempts: int
    last_failure_at: datetime | None
    locked_at: datetime | None


def subject_key(secret: str, *parts: str) -> str:
    """A keyed hash naming a counter, so identifiers and addresses are not kept in the clear."""
    return hmac_sha256(secret, _SUBJECT_PURPOSE, "\x1f".join(parts).encode("utf-8"))


def client_key(secret: str, key_id: str | None, ip_address: str | None) -> str:
    """The client as this server can tell it: the API key and the address it called from."""
    return subject_key(secret, "client", key_id or "-", (ip_address or "unknown")[:64])


# Built once (see crm.driver on why the hot statements are).
_COUNTER = driver.rows_of(FailureCounter, FailureCounter.subject == bindparam("subject"), lock=True)


async def counter(session: AsyncSession, subject: str) -> FailureCounter:
    """Load (creating if needed) the counter of `subject`, locked for update on PostgreSQL."""
    dialect = session.get_bind().dialect.name
    values = {"subject": subject}
    found = await driver.load(session, FailureCounter, _COUNTER, values, refresh=True)
    if found is not None:
        return found
    # Another request may create it first: ON CONFLICT DO NOTHING leaves its row (no savepoint
    # needed), and the locked read below sees it.
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(FailureCounter.__table__)
        .values(subject=subject, failed_attempts=0)
        .on_conflict_do_nothing(index_elements=[FailureCounter.__table__.c.subject])
    )
    found = await driver.load(session, FailureCounter, _COUNTER, values, refresh=True)
    assert found is not None
    return found


@dataclass(slots=True)
class Guard:
    """The two counters one attempt is judged by: the subject's and this client's at it.

    A client that never failed at the subject has no row yet: `client` is then a new counter
    at zero, written (added to `session`) only when a failure is counted.
    """

    subject: Counted
    client: FailureCounter
    policy: Policy
    session: AsyncSession | None = None

    def check(self, now: datetime) -> None:
        """Raise before any work if the subject is locked or either counter is in its delay."""
        _forget_if_quiet(self.subject, self.policy, now)
        _forget_if_quiet(self.client, self.policy, now)
        locked_at = self.subject.locked_at
        if locked_at is not None:
            if now < locked_at + timedelta(seconds=self.policy.failure_lock_seconds):
                raise IdentityLocked()
            # The lock ends by itself: the count starts again.
            self.subject.locked_at = None
            self.subject.failed_attempts = 0
        # The client first: a guesser meets its own delay long before the identity's.
        _wait(
            self.client,
            self.policy.client_failure_delay(self.client.failed_attempts or 0),
            now,
            ClientThrottled,
        )
        _wait(
            self.subject,
            self.policy.failure_delay(self.subject.failed_attempts or 0),
            now,
            IdentityThrottled,
        )

    def failure(self, now: datetime) -> None:
        if self.session is not None and self.client not in self.session:
            self.session.add(self.client)
        client_before = self.client.failed_attempts or 0
        self.client.failed_attempts = client_before + 1
        self.client.last_failure_at = now
        if client_before >= self.policy.client_failure_delay_threshold:
            return  # a throttled client no longer moves the subject's counter
        self.subject.failed_attempts = (self.subject.failed_attempts or 0) + 1
        self.subject.last_failure_at = now
        if (
            self.subject.failed_attempts >= self.policy.failure_lock_threshold
            and self.subject.locked_at is None
        ):
            self.subject.locked_at = now

    def success(self) -> None:
        """A proven secret clears both counts (only the subject's owner can succeed at it)."""
        for counted in (self.subject, self.client):
            counted.failed_attempts = 0
            counted.last_failure_at = None


def _forget_if_quiet(counted: Counted, policy: Policy, now: datetime) -> None:
    last = counted.last_failure_at
    if (
        last is not None
        and counted.locked_at is None
        and now - last >= timedelta(seconds=policy.failure_reset_seconds)
    ):
        counted.failed_attempts = 0
        counted.last_failure_at = None


def _wait(counted: Counted, delay: int, now: datetime, error: type[RateLimited]) -> None:
    if not delay or counted.last_failure_at is None:
        return
    allowed_at = counted.last_failure_at + timedelta(seconds=delay)
    if now < allowed_at:
        raise error(retry_after=retry_after(allowed_at, now))


async def guard(
    session: AsyncSession,
    secret: str,
    *,
    kind: Kind,
    subject: Counted,
    subject_id: str,
    client: str,
    policy: Policy,
) -> Guard:
    """The guard of one attempt at `subject` (named `subject_id`) by `client`.

    The caller holds `subject` locked (the identity's row, or its counter's), and every use of
    a pair counter happens under its subject's lock: so a missing pair row cannot be created
    by anyone else before this transaction ends, and it is written only if a failure is counted
    (most attempts succeed: no row, no round trips).
    """
    name = subject_key(secret, "pair", kind.value, client, subject_id)
    row = await driver.load(session, FailureCounter, _COUNTER, {"subject": name}, refresh=True)
    if row is None:
        row = FailureCounter(subject=name, failed_attempts=0, last_failure_at=None, locked_at=None)
    return Guard(subject=subject, client=row, policy=policy, session=session)


def password_subject(contact_pk: int) -> str:
    return f"password:contact:{contact_pk}"


def unknown_subject(kind: Kind, tenant_id: str, mode: str, provider: str, identifier: str) -> str:
    """The name of an unknown identifier's counter (and of its decoys)."""
    return f"{kind.value}:unknown:{tenant_id}:{mode}:{provider}:{identifier}"


async def forget_password_failures(session: AsyncSession, contact_pk: int) -> None:
    """Lift a contact's password count and lock (the back office's unlock)."""
    await session.execute(
        delete(FailureCounter).where(FailureCounter.subject == password_subject(contact_pk))
    )


async def password_guard(
    session: AsyncSession,
    secret: str,
    *,
    tenant_id: str,
    mode: str,
    provider: str,
    identifier: str,
    contact_pk: int | None,
    client: str,
    policy: Policy,
) -> Guard:
    """The guard of a password attempt: counted per contact (one password per contact), and for
    an identifier nobody uses, per identifier, so that it is throttled exactly like a known one."""
    # A contact's counter is named plainly (the back office lifts it without the secret); an
    # unknown identifier's by a keyed hash, so that no identifier is kept in the clear.
    subject_id = (
        password_subject(contact_pk)
        if contact_pk is not None
        else subject_key(
            secret, unknown_subject(Kind.PASSWORD, tenant_id, mode, provider, identifier)
        )
    )
    subject = await counter(session, subject_id)
    return await guard(
        session,
        secret,
        kind=Kind.PASSWORD,
        subject=subject,
        subject_id=subject_id,
        client=client,
        policy=policy,
    )
