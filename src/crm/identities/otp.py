"""One-time codes: sending with cooldown, hourly cap and failure delay; validating once, in time."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.errors import RateLimited
from crm.identities.errors import (
    IdentityLocked,
    OtpAlreadyUsed,
    OtpAttemptsExceeded,
    OtpExpired,
    OtpInvalid,
    OtpNotFound,
)
from crm.identities.identifiers import obfuscate_email, obfuscate_phone
from crm.identities.models import Identity, OtpChallenge
from crm.identities.policy import Policy
from crm.ids import uuid7
from crm.messaging import outbox, templates
from crm.security import otp as otp_tools
from crm.smsguard import service as sms_guard

# Challenges that carry a typed code; reset and verification tokens share the table but not
# these rules.
CODE_PURPOSES = ("REGISTER", "SIGN_IN")
_HOUR = timedelta(hours=1)


class OtpResendTooSoon(RateLimited):
    code = "OTP_RESEND_TOO_SOON"
    message = "A code was sent moments ago; wait before asking for another."


class OtpSendLimit(RateLimited):
    code = "OTP_SEND_LIMIT"
    message = "Too many codes were sent to this identity in the last hour."


class IdentityThrottled(RateLimited):
    code = "IDENTITY_THROTTLED"
    message = "Too many failed attempts for this identity; wait before asking for a new code."


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


async def lock_identity(session: AsyncSession, identity_id: str) -> Identity:
    """Load an identity for update: its counters and sends are serialised per identity.

    PostgreSQL takes a row lock; SQLite's write transaction already admits one writer.
    """
    query = select(Identity).where(Identity.id == identity_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    identity = await session.scalar(query.execution_options(populate_existing=True))
    if identity is None:  # pragma: no cover - callers pass an id they just read
        raise OtpNotFound()
    return identity


def obfuscated(identity: Identity) -> str:
    if identity.provider == "PHONE":
        return obfuscate_phone(identity.identifier)
    return obfuscate_email(identity.display)


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
) -> tuple[str, str]:
    """Store a new code's HMAC and queue its message; return (auth_otp, obfuscated value)."""
    identity = await lock_identity(session, identity.id)
    if identity.locked_at is not None:
        raise IdentityLocked()
    now = clock.now()
    delay = policy.failure_delay(identity.failed_attempts)
    if delay and identity.last_failure_at is not None:
        allowed_at = identity.last_failure_at + timedelta(seconds=delay)
        if now < allowed_at:
            raise IdentityThrottled(retry_after=_seconds_until(allowed_at, now))
    recent = list(
        await session.scalars(
            select(OtpChallenge.created_at)
            .where(
                OtpChallenge.identity_id == identity.id,
                OtpChallenge.purpose.in_(CODE_PURPOSES),
                OtpChallenge.created_at > now - _HOUR,
            )
            .order_by(OtpChallenge.created_at)
        )
    )
    if recent and policy.otp_resend_cooldown_seconds:
        allowed_at = recent[-1] + timedelta(seconds=policy.otp_resend_cooldown_seconds)
        if now < allowed_at:
            raise OtpResendTooSoon(retry_after=_seconds_until(allowed_at, now))
    if len(recent) >= policy.otp_hourly_send_limit:
        # Sliding hour: the oldest send in the window frees a slot when it leaves it.
        raise OtpSendLimit(retry_after=_seconds_until(recent[0] + _HOUR, now))

    if identity.provider == "PHONE":
        # The one door every SMS code passes: the pumping defence (sms_guard) sees them all.
        await sms_guard.admit(
            session,
            clock,
            sms_limits,
            tenant_id=identity.tenant_id,
            mode=identity.mode,
            e164=identity.identifier,
            countries=policy.sms_countries,
        )
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
        recipient=identity.identifier if channel == "SMS" else identity.display,
        purpose="OTP",
        message=message,
        contact_pk=identity.contact_pk,
        expires_at=expires_at,
    )
    return challenge_id, obfuscated(identity)


async def find_challenge(
    session: AsyncSession, tenant_id: str, mode: str, auth_otp: str
) -> OtpChallenge:
    if not isinstance(auth_otp, str) or len(auth_otp) > 36:
        raise OtpNotFound()
    challenge = await session.scalar(
        select(OtpChallenge).where(
            OtpChallenge.id == auth_otp,
            OtpChallenge.tenant_id == tenant_id,
            OtpChallenge.mode == mode,
            OtpChallenge.purpose.in_(CODE_PURPOSES),
        )
    )
    if challenge is None:
        raise OtpNotFound()
    return challenge


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


def record_failure(identity: Identity, policy: Policy, now: datetime) -> None:
    """Count a failed sign-in attempt on the identity (NIST SP 800-63B-4 throttling)."""
    identity.failed_attempts = (identity.failed_attempts or 0) + 1
    identity.last_failure_at = now
    if identity.failed_attempts >= policy.failure_lock_threshold and identity.locked_at is None:
        identity.locked_at = now


def record_success(identity: Identity, now: datetime) -> None:
    identity.failed_attempts = 0
    identity.last_failure_at = None
    if identity.verified_at is None:
        identity.verified_at = now


async def validate_code(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    challenge: OtpChallenge,
    code: str,
    policy: Policy,
) -> Identity:
    """Consume `challenge` if `code` is right; raise (and count the failure) otherwise.

    A wrong code raises OtpInvalid, a StatefulFailure: the request still commits, so the
    per-code tries and the identity's failure counter survive the error answer.
    """
    identity = await lock_identity(session, challenge.identity_id)
    # Re-read the challenge after the identity lock so a concurrent validation is seen.
    await session.refresh(challenge)
    now = clock.now()
    if identity.locked_at is not None:
        raise IdentityLocked()
    if challenge.consumed_at is not None:
        raise OtpAlreadyUsed()
    if now >= challenge.expires_at:
        raise OtpExpired()
    if challenge.attempts >= policy.otp_max_attempts:
        raise OtpAttemptsExceeded()
    challenge.attempts += 1
    if otp_tools.verify_code(secret, challenge.id, code, challenge.code_hmac):
        challenge.consumed_at = now
        record_success(identity, now)
        if challenge.channel == "SMS":
            await sms_guard.record_proof(
                session,
                tenant_id=identity.tenant_id,
                mode=identity.mode,
                e164=identity.identifier,
                sent_at=challenge.created_at,
            )
        return identity
    record_failure(identity, policy, now)
    raise OtpInvalid()
