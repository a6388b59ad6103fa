"""Answers for unknown identifiers that match the answers for known ones: a code request writes a
challenge that can never validate, a reset request does the reset's work without sending it.

Without them, a 404 for a code request, a faster `forgot_password`, or a throttle that only known
identities ever meet would tell a stranger who is a customer.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.identifiers.core import obfuscate_email, obfuscate_phone
from crm.identities import otp, throttle
from crm.identities.models import OtpDecoy
from crm.identities.policy import Policy
from crm.ids import uuid7
from crm.messaging import templates
from crm.security import otp as otp_tools
from crm.security.crypto import hmac_sha256
from crm.security.secrets import new_token
from crm.smsguard import service as sms_guard
from crm.vocabulary import ChallengePurpose


def code_subject(secret: str, tenant_id: str, mode: str, provider: str, identifier: str) -> str:
    """The keyed name of an unknown identifier's code counter and decoys."""
    return throttle.subject_key(
        secret, throttle.unknown_subject(throttle.Kind.CODE, tenant_id, mode, provider, identifier)
    )


def _masked(provider: str, identifier: str) -> str:
    return obfuscate_phone(identifier) if provider == "PHONE" else obfuscate_email(identifier)


async def send_decoy(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    tenant_id: str,
    mode: str,
    provider: str,
    identifier: str,
    policy: Policy,
    purpose: str,
    tenant_name: str,
    application_id: str | None,
    client: str,
) -> tuple[str, str]:
    """otp.send_code for an identifier nobody uses: the same limits, counters and answer, and
    nothing sent. Returns (auth_otp, obfuscated value)."""
    subject_id = code_subject(secret, tenant_id, mode, provider, identifier)
    subject = await throttle.counter(session, subject_id)  # serialises like lock_identity
    now = clock.now()
    guard = await throttle.guard(
        session,
        secret,
        kind=throttle.Kind.CODE,
        subject=subject,
        subject_id=subject_id,
        client=client,
        policy=policy,
    )
    guard.check(now)
    sent = await session.execute(
        select(OtpDecoy.created_at, OtpDecoy.client_hash).where(
            OtpDecoy.subject == subject_id,
            OtpDecoy.purpose.in_(otp.CODE_PURPOSES),
            OtpDecoy.created_at > now - timedelta(hours=1),
        )
    )
    otp.check_send_limits([(row[0], row[1]) for row in sent], policy, now, client)
    if provider == "PHONE":
        # A known number in a country the application does not text is refused at this point of
        # otp.send_code; an unknown one must be too, or the refusal tells who is a customer.
        sms_guard.check_country(policy.sms_countries, sms_guard.destination(identifier).country)
    await session.execute(
        update(OtpDecoy)
        .where(
            OtpDecoy.subject == subject_id,
            OtpDecoy.purpose.in_(otp.CODE_PURPOSES),
            OtpDecoy.consumed_at.is_(None),
            OtpDecoy.expires_at > now,
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    decoy_id = uuid7()
    # The work of a real send, so that timing does not tell the two apart.
    code = otp_tools.generate_code()
    otp_tools.code_hmac(secret, decoy_id, code)
    templates.render(
        "OTP",
        "SMS" if provider == "PHONE" else "EMAIL",
        language=templates.DEFAULT_LANGUAGE,
        tenant_name=tenant_name,
        code=code,
        ttl_minutes=max(1, policy.otp_ttl_seconds // 60),
    )
    session.add(
        OtpDecoy(
            id=decoy_id,
            tenant_id=tenant_id,
            mode=mode,
            application_id=application_id,
            subject=subject_id,
            purpose=purpose,
            client_hash=client,
            attempts=0,
            created_at=now,
            expires_at=now + timedelta(seconds=policy.otp_ttl_seconds),
        )
    )
    return decoy_id, _masked(provider, identifier)


async def reset_decoy(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    tenant_id: str,
    mode: str,
    username: str,
    policy: Policy,
    tenant_name: str,
    application_id: str | None,
    hourly_cap: int,
) -> None:
    """forgot_password's work for a username nobody uses: count, make and hash a token, render
    the email and write a row, as for a known one; nothing is sent and nothing can be redeemed."""
    subject_id = throttle.subject_key(secret, "reset:unknown", tenant_id, mode, username.lower())
    now = clock.now()
    sent = await session.scalar(
        select(func.count(OtpDecoy.id)).where(
            OtpDecoy.subject == subject_id,
            OtpDecoy.purpose == ChallengePurpose.PASSWORD_RESET,
            OtpDecoy.created_at > now - timedelta(hours=1),
        )
    )
    if (sent or 0) >= hourly_cap:
        return
    token = new_token(32)
    hmac_sha256(secret, "password-reset-token", token.encode())
    link = (
        policy.password_reset_url.replace("{token}", token) if policy.password_reset_url else token
    )
    templates.render(
        "PASSWORD_RESET",
        "EMAIL",
        language=templates.DEFAULT_LANGUAGE,
        tenant_name=tenant_name,
        link_or_token=link,
        ttl_minutes=max(1, policy.password_reset_ttl_seconds // 60),
    )
    session.add(
        OtpDecoy(
            id=uuid7(),
            tenant_id=tenant_id,
            mode=mode,
            application_id=application_id,
            subject=subject_id,
            purpose=ChallengePurpose.PASSWORD_RESET,
            client_hash=None,
            attempts=0,
            created_at=now,
            expires_at=now + timedelta(seconds=policy.password_reset_ttl_seconds),
        )
    )
