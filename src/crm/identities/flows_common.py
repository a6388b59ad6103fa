"""Shared pieces of the self-service flows: request records, limits, grants and code sending."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts.models import Contact
from crm.identities import credentials, otp, proof, sessions, throttle
from crm.identities import policy as policies
from crm.identities.context import FlowContext
from crm.identities.identities import find_identity
from crm.identities.models import Identity, OtpChallenge
from crm.identities.schemas import CredentialIn
from crm.identities.signing import key_ring
from crm.identities.tokens import AccessClaims, issue_access_token
from crm.ids import uuid7
from crm.messaging import outbox, templates
from crm.ratelimits import service as ratelimits
from crm.security.crypto import hmac_sha256
from crm.security.secrets import new_token
from crm.smsguard import service as sms_guard
from crm.tenants.schemas import CallerKey
from crm.vocabulary import Channel

SOURCE = "SELF_SERVICE"
_TOKEN_PURPOSE = {
    "PASSWORD_RESET": "password-reset-token",
    "EMAIL_VERIFICATION": "email-verify-token",
}
# Emails of each kind per identity per hour; beyond it requests are silently dropped (an error
# would tell a stranger that the address is registered).
_MAIL_HOURLY_CAP = 5


@dataclass(frozen=True, slots=True)
class RequestMeta:
    user_agent: str | None = None
    ip_address: str | None = None


@dataclass(frozen=True, slots=True)
class CodeSent:
    auth_otp: str
    obfuscated_value: str


@dataclass(frozen=True, slots=True)
class Grant:
    """What the token object of API.md section 3 is built from."""

    access_token: str
    refresh_token: str
    expires_at: int
    contact: Contact
    is_verified: bool
    tenant_id: str
    tenant_name: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A caller proven by an access token whose session is live."""

    claims: AccessClaims
    contact_pk: int
    tenant_name: str
    profile: dict[str, Any]

    @property
    def actor(self) -> str:
        return f"contact-session:{self.claims.session_id}"


# --- helpers -----------------------------------------------------------------------------


def _actor(caller: CallerKey) -> str:
    return f"self-service-key:{caller.key_id or caller.application_id or 'unknown'}"


async def _policy(
    ctx: FlowContext, db: AsyncSession, application_id: str | None, mode: str
) -> policies.Policy:
    return await ctx.policies.policy(application_id, mode, session=db)


async def _client_limit(
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    meta: RequestMeta,
    operation: policies.ClientOperation,
) -> policies.Policy:
    """Count one `operation` per client address and key, against the application's limit.

    The per-identity limits stop guessing at one person; this stops one address sweeping
    across many (policy.CLIENT_LIMITS says why the defaults are what they are). Returns the
    application's policy, so the flow need not look it up again.
    """
    client = (meta.ip_address or "unknown")[:64]
    bucket = f"{operation}:{caller.key_id}:{client}"
    defaults = policies.client_limit_defaults(ctx.settings)
    # Read (on a miss) through `db` only if it is already in its transaction: otherwise `db`
    # must stay unused until the count below is committed (see the end).
    session = db if db.in_transaction() else None
    policy = await ctx.policies.policy(
        caller.application_id, caller.mode, defaults, session=session
    )
    limit, window = policy.client_limit(operation)
    if db.in_transaction():
        await ratelimits.hit(db, ctx.clock, bucket, limit=limit, window_seconds=window)
        return policy
    # Committed at once, apart from the request's transaction: that one rolls back on most
    # errors (an unknown identity is a 404), and a count rolled back with it would let a sweep
    # across unknown identities, which fails every time, go unthrottled. Called before `db` is
    # first used, so on SQLite the request holds no write lock yet.
    await ratelimits.hit_now(
        ctx.engine, ctx.clock, bucket, limit=limit, window_seconds=window, pool=ctx.settings
    )
    return policy


async def _signer_ready(ctx: FlowContext) -> None:
    """Make sure a signing key exists BEFORE the request's transaction starts.

    Creating the first key commits in its own transaction; on SQLite (one writer) doing that
    while the request already holds the write lock would wait on itself. So every operation
    that issues tokens calls this first, before touching `db`.
    """
    await key_ring(ctx.engine, ctx.secret).signing_key(
        ctx.clock, ctx.settings.access_token_ttl_seconds
    )


async def _is_verified(db: AsyncSession, contact_pk: int) -> bool:
    await db.flush()
    found = await db.scalar(
        select(Identity.id)
        .where(Identity.contact_pk == contact_pk, Identity.verified_at.is_not(None))
        .limit(1)
    )
    return found is not None


async def _grant(
    db: AsyncSession,
    ctx: FlowContext,
    *,
    contact: Contact,
    tenant_name: str,
    application_id: str | None,
    meta: RequestMeta,
    started: sessions.Started | None = None,
    is_verified: bool | None = None,
) -> Grant:
    """The tokens of a new session (or of `started`); `is_verified` when the caller knows it."""
    if started is None:
        started = sessions.start_session(
            db,
            ctx.clock,
            ctx.settings,
            contact=contact,
            application_id=application_id,
            user_agent=meta.user_agent,
            ip_address=meta.ip_address,
        )
    access, expires = await issue_access_token(
        ctx.engine,
        ctx.secret,
        ctx.clock,
        issuer=ctx.settings.public_url,
        ttl_seconds=ctx.settings.access_token_ttl_seconds,
        tenant_id=contact.tenant_id,
        contact_id=contact.id,
        session_id=started.session.id,
        application_id=started.session.application_id,
        mode=contact.mode,
    )
    return Grant(
        access_token=access,
        refresh_token=started.refresh_token,
        expires_at=expires,
        contact=contact,
        is_verified=is_verified if is_verified is not None else await _is_verified(db, contact.pk),
        tenant_id=contact.tenant_id,
        tenant_name=tenant_name,
    )


def _credential_identifier(
    credential: CredentialIn, mode: str, default_country: str | None = None
) -> tuple[str, str]:
    return credentials.identity_of(credential, mode, default_country)


async def _identities_for(
    db: AsyncSession, ctx: FlowContext, caller: CallerKey, credentials: list[CredentialIn]
) -> list[Identity]:
    found: list[Identity] = []
    for credential in credentials:
        provider, identifier = _credential_identifier(credential, caller.mode)
        identity = await find_identity(
            db, caller.tenant_id, caller.mode, provider, identifier
        ) or await proof.registration_claim(
            db, ctx, caller.tenant_id, caller.mode, provider, identifier
        )
        if identity is not None:
            found.append(identity)
    return found


async def _queue_token_email(
    db: AsyncSession,
    ctx: FlowContext,
    *,
    identity: Identity,
    purpose: str,
    ttl_seconds: int,
    url_template: str | None,
    tenant_name: str,
    language: str | None,
    application_id: str | None,
) -> None:
    """Store an HMAC of a new single-use token and email the token (or a link holding it)."""
    now = ctx.clock.now()
    sent = await db.scalar(
        select(func.count(OtpChallenge.id)).where(
            OtpChallenge.identity_id == identity.id,
            OtpChallenge.purpose == purpose,
            OtpChallenge.created_at > now - timedelta(hours=1),
        )
    )
    if (sent or 0) >= _MAIL_HOURLY_CAP:
        return
    token = new_token(32)
    expires_at = now + timedelta(seconds=ttl_seconds)
    db.add(
        OtpChallenge(
            id=uuid7(),
            tenant_id=identity.tenant_id,
            mode=identity.mode,
            application_id=application_id,
            identity_id=identity.id,
            purpose=purpose,
            channel=Channel.EMAIL,
            code_hmac=hmac_sha256(ctx.secret, _TOKEN_PURPOSE[purpose], token.encode()),
            attempts=0,
            created_at=now,
            expires_at=expires_at,
        )
    )
    link = url_template.replace("{token}", token) if url_template else token
    message = templates.render(
        purpose,
        "EMAIL",
        language=language or templates.DEFAULT_LANGUAGE,
        tenant_name=tenant_name,
        link_or_token=link,
        ttl_minutes=max(1, ttl_seconds // 60),
    )
    await outbox.enqueue(
        db,
        ctx.clock,
        secret=ctx.secret,
        tenant_id=identity.tenant_id,
        mode=identity.mode,
        channel=Channel.EMAIL,
        recipient=identity.display,
        purpose=purpose,
        message=message,
        contact_pk=identity.contact_pk,
        expires_at=expires_at,
    )


async def _send_code(
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    identity: Identity,
    contact: Contact,
    policy: policies.Policy,
    purpose: str,
    meta: RequestMeta | None = None,
    new_identity: bool = False,
) -> CodeSent:
    auth_otp, masked = await otp.send_code(
        db,
        ctx.clock,
        ctx.secret,
        identity=identity,
        policy=policy,
        purpose=purpose,
        tenant_name=caller.tenant_name,
        language=contact.language_code,
        application_id=caller.application_id,
        sms_limits=sms_guard.Limits.from_settings(ctx.settings),
        client=_client(ctx, caller, meta),
        new_identity=new_identity,
    )
    return CodeSent(auth_otp=auth_otp, obfuscated_value=masked)


def _client(ctx: FlowContext, caller: CallerKey, meta: RequestMeta | None) -> str:
    return throttle.client_key(ctx.secret, caller.key_id, (meta or RequestMeta()).ip_address)
