"""One-time codes: sending with cooldown, hourly caps and failure delays; validating once, in time,
under the policy of the application that issued the code."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver, unit_of_work
from crm.clock import Clock
from crm.errors import RateLimited, retry_after
from crm.events.sessions import identity_locked
from crm.identifiers.core import obfuscate_email, obfuscate_phone
from crm.identities import throttle
from crm.identities.errors import (
    OtpAlreadyUsed,
    OtpAttemptsExceeded,
    OtpExpired,
    OtpInvalid,
    OtpNotFound,
)
from crm.identities.models import Identity, OtpChallenge, OtpDecoy
from crm.identities.policy import Policy
from crm.identities.throttle import IdentityThrottled
from crm.ids import uuid7
from crm.messaging import outbox, templates
from crm.security import otp as otp_tools
from crm.smsguard import service as sms_guard
from crm.vocabulary import ChallengePurpose, Channel

# Challenges that carry a typed code; reset and verification tokens share the table but not
# these rules.
CODE_PURPOSES = (ChallengePurpose.REGISTER, ChallengePurpose.SIGN_IN)
_HOUR = timedelta(hours=1)


class OtpResendTooSoon(RateLimited):
    code = "OTP_RESEND_TOO_SOON"
    message = "A code was sent moments ago; wait before asking for another."


class OtpSendLimit(RateLimited):
    code = "OTP_SEND_LIMIT"
    message = "Too many codes were sent to this identity in the last hour."


__all__ = ["IdentityThrottled"]
# What a decoy's code is checked against: not hex, so no code's HMAC can ever equal it.
_NEVER = "-" * 64


def check_send_limits(
    sent: list[tuple[datetime, str | None]], policy: Policy, now: datetime, client: str
) -> None:
    """Refuse a send within the cooldown, past the identity's hourly cap, or past the share of
    it that one client may use (so a stranger cannot use up the owner's codes).

    `sent` is (created_at, client) of the codes sent to the identity in the last hour.
    """
    times = sorted(created for created, _ in sent)
    if times and policy.otp_resend_cooldown_seconds:
        allowed_at = times[-1] + timedelta(seconds=policy.otp_resend_cooldown_seconds)
        if now < allowed_at:
            raise OtpResendTooSoon(retry_after=retry_after(allowed_at, now))
    # Sliding hour: the oldest send in the window frees a slot when it leaves it.
    mine = sorted(created for created, by in sent if by == client)
    if len(mine) >= policy.otp_hourly_send_limit_per_client:
        raise OtpSendLimit(retry_after=retry_after(mine[0] + _HOUR, now))
    if len(times) >= policy.otp_hourly_send_limit:
        raise OtpSendLimit(retry_after=retry_after(times[0] + _HOUR, now))


_IDENTITY = driver.rows_of(Identity, Identity.id == bindparam("id"), lock=True)


async def lock_identity(session: AsyncSession, identity_id: str) -> Identity:
    """Load an identity for update: its counters and sends are serialised per identity.

    PostgreSQL takes a row lock; SQLite's write transaction already admits one writer.
    """
    identity = await driver.load(session, Identity, _IDENTITY, {"id": identity_id}, refresh=True)
    if identity is None:  # pragma: no cover - callers pass an id they just read
        raise OtpNotFound()
    return identity


def obfuscated(identity: Identity) -> str:
    if identity.provider == "PHONE":
        return obfuscate_phone(identity.identifier)
    return obfuscate_email(identity.display)


async def _checked_for_send(
    session: AsyncSession,
    secret: str,
    identity: Identity,
    policy: Policy,
    client: str,
    now: datetime,
) -> Identity:
    """Lock the identity, check its throttles and send limits, and expire its earlier codes."""
    identity = await lock_identity(session, identity.id)
    guard = await throttle.guard(
        session,
        secret,
        kind=throttle.Kind.CODE,
        subject=identity,
        subject_id=identity.id,
        client=client,
        policy=policy,
    )
    guard.check(now)
    sent = await session.execute(
        select(OtpChallenge.created_at, OtpChallenge.client_hash).where(
            OtpChallenge.identity_id == identity.id,
            OtpChallenge.purpose.in_(CODE_PURPOSES),
            OtpChallenge.created_at > now - _HOUR,
        )
    )
    check_send_limits([(row[0], row[1]) for row in sent], policy, now, client)
    await session.execute(
        update(OtpChallenge)
        .where(
            OtpChallenge.identity_id == identity.id,
            OtpChallenge.purpose.in_(CODE_PURPOSES),
            OtpChallenge.consumed_at.is_(None),
            OtpChallenge.expires_at > now,
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    return identity


async def send_code(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    identity: Identity,
    policy: Policy,
    purpose: str,
    tenant_name: str,
    language: str | None,
    application_id: str | None,
    sms_limits: sms_guard.Limits,
    client: str | None = None,
    new_identity: bool = False,
) -> tuple[str, str]:
    """Store a new code's HMAC and queue its message; return (auth_otp, obfuscated value).

    `client` is throttle.client_key of the caller. The new code supersedes the identity's
    earlier ones: only the newest code sent can sign in. `new_identity`: the identity was
    written in this transaction (registration), so no other request can see it yet and it has
    no failures and no earlier codes: nothing to lock, count or supersede.
    """
    now = clock.now()
    client = client or throttle.client_key(secret, None, None)
    if not new_identity:
        identity = await _checked_for_send(session, secret, identity, policy, client, now)
    challenge_id = uuid7()
    code = otp_tools.generate_code()
    expires_at = now + timedelta(seconds=policy.otp_ttl_seconds)
    channel = "SMS" if identity.provider == "PHONE" else "EMAIL"
    session.add(
        OtpChallenge(
            id=challenge_id,
            tenant_id=identity.tenant_id,
            mode=identity.mode,
            application_id=application_id,
            identity_id=identity.id,
            purpose=purpose,
            channel=channel,
            code_hmac=otp_tools.code_hmac(secret, challenge_id, code),
            attempts=0,
            created_at=now,
            expires_at=expires_at,
            client_hash=client,
        )
    )
    message = templates.render(
        "OTP",
        channel,
        language=language or templates.DEFAULT_LANGUAGE,
        tenant_name=tenant_name,
        code=code,
        ttl_minutes=max(1, policy.otp_ttl_seconds // 60),
    )
    await outbox.enqueue(
        session,
        clock,
        secret=secret,
        tenant_id=identity.tenant_id,
        mode=identity.mode,
        channel=channel,
        recipient=identity.identifier if channel == Channel.SMS else identity.display,
        purpose="OTP",
        message=message,
        contact_pk=identity.contact_pk,
        expires_at=expires_at,
    )
    if identity.provider == "PHONE":
        # The one door every SMS code passes: the pumping defence (sms_guard) sees them all.
        # Last, after everything else is written: it counts on rows every sign-up of the tenant
        # updates (the day's budget), whose lock is then held only until the commit. A refusal
        # raises and rolls all of it back.
        await unit_of_work.flush(session)
        await sms_guard.admit(
            session,
            clock,
            sms_limits,
            tenant_id=identity.tenant_id,
            mode=identity.mode,
            e164=identity.identifier,
            countries=policy.sms_countries,
        )
    return challenge_id, obfuscated(identity)


async def record_proof(
    session: AsyncSession, identity: Identity, challenge: OtpChallenge | OtpDecoy
) -> None:
    """Count a code sent by SMS and entered correctly (the pumping defence's conversion).

    The count is on a row every proof of the tenant and country updates: called as the last
    write before the commit, its lock is held for the shortest time.
    """
    if isinstance(challenge, OtpChallenge) and challenge.channel == Channel.SMS:
        await sms_guard.record_proof(
            session,
            tenant_id=identity.tenant_id,
            mode=identity.mode,
            e164=identity.identifier,
            sent_at=challenge.created_at,
        )


_CHALLENGE = driver.rows_of(
    OtpChallenge,
    OtpChallenge.id == bindparam("id"),
    OtpChallenge.tenant_id == bindparam("tenant_id"),
    OtpChallenge.mode == bindparam("mode"),
    driver.any_of(OtpChallenge.purpose, CODE_PURPOSES),
)
_DECOY = driver.rows_of(
    OtpDecoy,
    OtpDecoy.id == bindparam("id"),
    OtpDecoy.tenant_id == bindparam("tenant_id"),
    OtpDecoy.mode == bindparam("mode"),
    driver.any_of(OtpDecoy.purpose, CODE_PURPOSES),
)


async def find_challenge(
    session: AsyncSession, tenant_id: str, mode: str, auth_otp: str
) -> OtpChallenge | OtpDecoy:
    if not isinstance(auth_otp, str) or len(auth_otp) > 36:
        raise OtpNotFound()
    values = {"id": auth_otp, "tenant_id": tenant_id, "mode": mode}
    challenge = await driver.load(session, OtpChallenge, _CHALLENGE, values)
    if challenge is not None:
        return challenge
    # A code asked for an unknown identifier is found like any other, and never validates.
    decoy = await driver.load(session, OtpDecoy, _DECOY, values)
    if decoy is None:
        raise OtpNotFound()
    return decoy


async def newest_decoy(session: AsyncSession, subject: str) -> OtpDecoy:
    """newest_challenge for an unknown identifier (its decoys are named by `subject`)."""
    decoy = await session.scalar(
        select(OtpDecoy)
        .where(
            OtpDecoy.subject == subject,
            OtpDecoy.purpose.in_(CODE_PURPOSES),
            OtpDecoy.consumed_at.is_(None),
        )
        .order_by(OtpDecoy.created_at.desc(), OtpDecoy.id.desc())
        .limit(1)
    )
    if decoy is None:
        raise OtpNotFound()
    return decoy


async def newest_challenge(session: AsyncSession, identity: Identity) -> OtpChallenge:
    """The newest unused code of an identity (the seed validates by credentials, not auth_otp)."""
    challenge = await session.scalar(
        select(OtpChallenge)
        .where(
            OtpChallenge.identity_id == identity.id,
            OtpChallenge.purpose.in_(CODE_PURPOSES),
            OtpChallenge.consumed_at.is_(None),
        )
        .order_by(OtpChallenge.created_at.desc(), OtpChallenge.id.desc())
        .limit(1)
    )
    if challenge is None:
        raise OtpNotFound()
    return challenge


def record_success(identity: Identity, now: datetime) -> None:
    identity.failed_attempts = 0
    identity.last_failure_at = None
    if identity.verified_at is None:
        identity.verified_at = now


# Re-reads into the instance already loaded, built once.
_FRESH_CHALLENGE = driver.rows_of(OtpChallenge, OtpChallenge.id == bindparam("id"))
_FRESH_DECOY = driver.rows_of(OtpDecoy, OtpDecoy.id == bindparam("id"))


async def validate_code(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    challenge: OtpChallenge | OtpDecoy,
    code: str,
    policy: Policy,
    client: str | None = None,
    count_proof: bool = True,
    locked: Identity | None = None,
) -> Identity:
    """Consume `challenge` if `code` is right; raise (and count the failure) otherwise.

    `policy` is that of the application that issued the code. A wrong code raises OtpInvalid,
    a StatefulFailure: the request still commits, so the per-code tries and the failure counters
    survive the error answer. A decoy goes through the same checks and counters and always fails.
    `count_proof=False`: the caller calls `record_proof` itself, as the last write before its
    commit. `locked`: the challenge's identity, already loaded with `lock_identity`.
    """
    identity: Identity | None = None
    subject: throttle.Counted
    if isinstance(challenge, OtpDecoy):
        subject_id = challenge.subject
        subject = await throttle.counter(session, subject_id)
    else:
        identity = locked or await lock_identity(session, challenge.identity_id)
        subject_id, subject = identity.id, identity
    # Re-read the challenge after the lock so a concurrent validation is seen.
    model, fresh = (
        (OtpDecoy, _FRESH_DECOY)
        if isinstance(challenge, OtpDecoy)
        else (OtpChallenge, _FRESH_CHALLENGE)
    )
    if await driver.load(session, model, fresh, {"id": challenge.id}, refresh=True) is None:
        raise OtpNotFound()  # removed meanwhile (its claim was dropped, or the purge ran)
    now = clock.now()
    guard = await throttle.guard(
        session,
        secret,
        kind=throttle.Kind.CODE,
        subject=subject,
        subject_id=subject_id,
        client=client or throttle.client_key(secret, None, None),
        policy=policy,
    )
    # Before anything about the code is told or counted: a throttled guess costs the code no try.
    guard.check(now)
    if challenge.consumed_at is not None:
        raise OtpAlreadyUsed()
    if now >= challenge.expires_at:
        raise OtpExpired()
    if challenge.attempts >= policy.otp_max_attempts:
        raise OtpAttemptsExceeded()
    challenge.attempts += 1
    stored = challenge.code_hmac if isinstance(challenge, OtpChallenge) else _NEVER
    if otp_tools.verify_code(secret, challenge.id, code, stored) and identity is not None:
        challenge.consumed_at = now
        record_success(identity, now)
        if count_proof:
            await record_proof(session, identity, challenge)
        guard.success()
        return identity
    guard.failure(now)
    if identity is not None and identity.locked_at == now:
        await identity_locked(session, now, identity, "CODE")
    raise OtpInvalid()
