"""Proof before power: unproven claims, what the first proof of an identity ends, re-authentication.

An identity gives power (blocks others, signs in, brings anyone into its contact) only once it
holds its identifier: proven by a code sent to it or by the verification link, or created by the
business. Until then it is a claim; several may exist for one identifier, whoever proves one
first owns the identifier and the other claims are dropped (identities.drop_claims).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver
from crm.contacts import service as contacts
from crm.contacts.models import Contact
from crm.errors import RateLimited
from crm.events.service import identity_event
from crm.identities import otp
from crm.identities.context import FlowContext
from crm.identities.errors import (
    CurrentPasswordInvalid,
    IdentityAlreadyVerified,
    IdentityClaimExpired,
    IdentityNotFound,
    OtpNotFound,
    ReauthenticationRequired,
    VerificationTokenInvalid,
)
from crm.identities.identities import drop_claims
from crm.identities.models import Identity, IdentityOrigin, OtpChallenge, Session
from crm.identities.policy import Policy
from crm.identities.sessions import revoke_all_sessions
from crm.identities.tokens import AccessClaims
from crm.ratelimits import service as ratelimits
from crm.security import passwords
from crm.smsguard import service as sms_guard
from crm.unit_of_work import session_scope
from crm.vocabulary import ChallengePurpose, EventType, RevokeReason

# The code that proves an identity a signed-in customer added: entered in that customer's
# session only, never accepted by validate_otp (otp.CODE_PURPOSES leaves it out).
PROOF_PURPOSE = "IDENTITY_PROOF"
_ACTOR = "self-service"
_HOUR = 3600
# A signed-in contact once added 120 identities in 2.6 s, each sending a message to an
# arbitrary address: a few per hour is all a real customer needs.
ADD_LIMIT_PER_CONTACT_HOUR = 10
ADD_LIMIT_PER_CLIENT_HOUR = 30
# Codes to one added identity per hour (the add itself sends the first).
PROOF_CODES_PER_IDENTITY_HOUR = 5
# request_email_verification: per client a 429 (it tells nothing); per contact silently capped,
# since an error there would say that the address is registered.
VERIFY_MAIL_LIMIT_PER_CONTACT_HOUR = 10
# Wrong current passwords a session may try per hour before re-authentication is throttled.
CURRENT_PASSWORD_TRIES_PER_HOUR = 10


class Caller(Protocol):
    """A signed-in caller (service.SignedIn), as far as this module needs one."""

    @property
    def claims(self) -> AccessClaims: ...
    @property
    def contact_pk(self) -> int: ...
    @property
    def tenant_name(self) -> str: ...
    @property
    def actor(self) -> str: ...


def has_power(identity: Identity) -> bool:
    """Whether the identity holds its identifier (the Python twin of identities.holds())."""
    return identity.verified_at is not None or identity.origin == IdentityOrigin.BACK_OFFICE


def _expired(ctx: FlowContext, identity: Identity) -> bool:
    """Whether a claim is past CRM_UNPROVEN_IDENTITY_HOURS (callers know it was unproven)."""
    if identity.origin == IdentityOrigin.BACK_OFFICE:
        return False
    horizon = timedelta(hours=ctx.settings.unproven_identity_hours)
    return identity.created_at < ctx.clock.now() - horizon


async def count(
    db: AsyncSession, ctx: FlowContext, bucket: str, *, limit: int, window_seconds: int = _HOUR
) -> None:
    """Count one event; RateLimited past `limit`. Call before `db` is first used.

    Counted in a transaction of its own when the request has none yet: a refused attempt rolls
    the request back, and a count rolled back with it would never throttle anything.
    """
    if db.in_transaction():
        await ratelimits.hit(db, ctx.clock, bucket, limit=limit, window_seconds=window_seconds)
        return
    async with session_scope(ctx.sessions) as counter:
        await ratelimits.hit(counter, ctx.clock, bucket, limit=limit, window_seconds=window_seconds)


async def registration_claim(
    db: AsyncSession, ctx: FlowContext, tenant_id: str, mode: str, provider: str, identifier: str
) -> Identity | None:
    """The newest live registration claim on an identifier nobody holds (a code may go to it).

    Only claims made by registering qualify: an identity a customer added to their own contact
    is proven in that customer's session, so for sign-in it is as unknown as no identity at all.
    """
    horizon = ctx.clock.now() - timedelta(hours=ctx.settings.unproven_identity_hours)
    claim: Identity | None = await db.scalar(
        select(Identity)
        .where(
            Identity.tenant_id == tenant_id,
            Identity.mode == mode,
            Identity.provider == provider,
            Identity.identifier == identifier,
            Identity.verified_at.is_(None),
            Identity.origin == IdentityOrigin.REGISTRATION,
            Identity.created_at > horizon,
        )
        .order_by(Identity.created_at.desc(), Identity.id.desc())
        .limit(1)
    )
    return claim


async def is_unproven(db: AsyncSession, identity_id: str) -> bool:
    verified = await db.scalar(select(Identity.verified_at).where(Identity.id == identity_id))
    return verified is None


async def after_code(
    db: AsyncSession,
    ctx: FlowContext,
    identity: Identity,
    *,
    was_unproven: bool,
    challenge_purpose: str,
) -> Contact:
    """A right code was entered through validate_otp: end what its prover did not make.

    Returns the contact the prover signs in to. The registration's own code (its `auth_otp`
    went to the registrant) keeps the password chosen in that registration; any other first
    proof clears it.
    """
    return await _first_proof(
        db,
        ctx,
        identity,
        was_unproven=was_unproven,
        keep_password=challenge_purpose == ChallengePurpose.REGISTER,
    )


async def prove_by_link(db: AsyncSession, ctx: FlowContext, identity: Identity) -> None:
    """The verification link was followed: the identity is proven, by someone outside it."""
    if identity.verified_at is not None:
        return
    if identity.origin == IdentityOrigin.SELF_SERVICE:
        # Proven only by a code entered in the session that added it.
        raise VerificationTokenInvalid()
    identity.verified_at = ctx.clock.now()
    await _first_proof(db, ctx, identity, was_unproven=True, keep_password=False)


async def _first_proof(
    db: AsyncSession,
    ctx: FlowContext,
    identity: Identity,
    *,
    was_unproven: bool,
    keep_password: bool,
) -> Contact:
    contact = await contacts.get_by_pk(db, identity.contact_pk)
    if not was_unproven:
        return contact
    if _expired(ctx, identity):
        raise IdentityClaimExpired()
    identity_event(db, ctx.clock.now(), EventType.IDENTITY_VERIFIED, contact, identity)
    await drop_claims(db, ctx.clock, holder=identity, actor=_ACTOR)
    if identity.origin == IdentityOrigin.BACK_OFFICE:
        # The business's claim keeps the rule it always had: only the first proof of any of
        # the contact's identities ends what came before (a password the business gave).
        others = await db.scalar(
            select(Identity.id)
            .where(
                Identity.contact_pk == contact.pk,
                Identity.id != identity.id,
                Identity.verified_at.is_not(None),
            )
            .limit(1)
        )
        if others is None:
            await end_unproven_access(
                db, ctx, contact, identity, keep_password=False, remove_added=False
            )
        return contact
    if identity.origin == IdentityOrigin.SELF_SERVICE:
        raise OtpNotFound()  # unreachable: such codes are not found outside the session
    await end_unproven_access(
        db, ctx, contact, identity, keep_password=keep_password, remove_added=True
    )
    return contact


# Built once (see crm.driver on why the hot statements are).
_ADDED = driver.Statement(
    select(Identity.id).where(
        Identity.contact_pk == bindparam("contact_pk"),
        Identity.id != bindparam("proven"),
        Identity.origin == IdentityOrigin.SELF_SERVICE,
    )
)


async def end_unproven_access(
    db: AsyncSession,
    ctx: FlowContext,
    contact: Contact,
    proven: Identity,
    *,
    keep_password: bool,
    remove_added: bool,
) -> None:
    """End everything on the contact that the prover of `proven` did not make.

    The prover proved the identifier outside the contact's sessions, so nothing there is known
    to be theirs: whoever registered someone else's address (tokens at once, a password) and
    added their own phone must not keep reading what the owner enters. The sessions opened
    before the proof end, a password set before it is cleared (the owner can set one again),
    and identities customers added before it go. The business's identities stay.
    """
    changed: list[str] = []
    if remove_added:
        values = {"contact_pk": contact.pk, "proven": proven.id}
        added = [row["id"] for row in await driver.fetch(db, _ADDED, values)]
        if added:
            await db.execute(delete(OtpChallenge).where(OtpChallenge.identity_id.in_(added)))
            await db.execute(
                delete(Identity)
                .where(Identity.id.in_(added))
                .execution_options(synchronize_session="fetch")
            )
            changed.append("identities")
    if not keep_password:
        cleared = await db.execute(
            update(Identity)
            .where(Identity.contact_pk == contact.pk, Identity.password_hash.is_not(None))
            .values(password_hash=None)
            .execution_options(synchronize_session="fetch")
        )
        if getattr(cleared, "rowcount", 0):
            changed.append("password")
    if await revoke_all_sessions(db, ctx.clock, contact.pk, RevokeReason.UNPROVEN_ACCESS_ENDED):
        changed.append("sessions")
    if changed:
        contacts.record_audit(db, ctx.clock, contact, "UNPROVEN_ACCESS_ENDED", _ACTOR, changed)


# --- identities a signed-in customer adds -------------------------------------------------


async def limit_adding(db: AsyncSession, ctx: FlowContext, signed: Caller, client: str) -> None:
    """Per-contact and per-client caps on adding identities (each sends a message).

    The client is counted per application, as the other per-client limits are per key.
    """
    contact_bucket = f"identity-add:contact:{signed.claims.contact_id}"
    await count(db, ctx, contact_bucket, limit=ADD_LIMIT_PER_CONTACT_HOUR)
    client_bucket = f"identity-add:client:{signed.claims.application_id}:{client[:64]}"
    await count(db, ctx, client_bucket, limit=ADD_LIMIT_PER_CLIENT_HOUR)


async def _own_unproven(db: AsyncSession, contact_pk: int, identity_id: str) -> Identity:
    if not isinstance(identity_id, str) or len(identity_id) > 36:
        raise IdentityNotFound()
    identity = await db.scalar(
        select(Identity).where(Identity.id == identity_id, Identity.contact_pk == contact_pk)
    )
    if identity is None:
        raise IdentityNotFound()
    if identity.verified_at is not None:
        raise IdentityAlreadyVerified()
    return identity


async def send_proof_code(
    db: AsyncSession,
    ctx: FlowContext,
    *,
    identity: Identity,
    policy: Policy,
    tenant_name: str,
    language: str | None,
    application_id: str | None,
) -> tuple[str, str]:
    """Send the code that proves `identity` when entered in its contact's session."""
    return await otp.send_code(
        db,
        ctx.clock,
        ctx.secret,
        identity=identity,
        policy=policy,
        purpose=PROOF_PURPOSE,
        tenant_name=tenant_name,
        language=language,
        application_id=application_id,
        sms_limits=sms_guard.Limits.from_settings(ctx.settings),
    )


async def resend_proof_code(
    db: AsyncSession, ctx: FlowContext, signed: Caller, identity_id: str
) -> tuple[str, str]:
    """Send again the code that proves one of the signed-in contact's unproven identities."""
    # Counted before `db` is used (see count()); keyed by the path's id, so it is bounded
    # whether or not the id is the caller's.
    await count(db, ctx, f"identity-proof:{identity_id[:36]}", limit=PROOF_CODES_PER_IDENTITY_HOUR)
    identity = await _own_unproven(db, signed.contact_pk, identity_id)
    if _expired(ctx, identity):
        raise IdentityClaimExpired()
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    return await send_proof_code(
        db,
        ctx,
        identity=identity,
        policy=await ctx.policies.policy(
            signed.claims.application_id, signed.claims.mode, session=db
        ),
        tenant_name=signed.tenant_name,
        language=contact.language_code,
        application_id=signed.claims.application_id,
    )


async def prove_in_session(
    db: AsyncSession, ctx: FlowContext, signed: Caller, identity_id: str, code: str
) -> None:
    """A code sent to one of the contact's unproven identities, entered in its own session.

    The prover is the session's holder, who made what is on the contact: nothing ends. Other
    claims on the identifier are dropped.
    """
    identity = await _own_unproven(db, signed.contact_pk, identity_id)
    if _expired(ctx, identity):
        raise IdentityClaimExpired()
    policy = await ctx.policies.policy(signed.claims.application_id, signed.claims.mode, session=db)
    challenge = await db.scalar(
        select(OtpChallenge)
        .where(
            OtpChallenge.identity_id == identity.id,
            OtpChallenge.purpose == PROOF_PURPOSE,
            OtpChallenge.consumed_at.is_(None),
        )
        .order_by(OtpChallenge.created_at.desc(), OtpChallenge.id.desc())
        .limit(1)
    )
    if challenge is None:
        raise OtpNotFound()
    identity = await otp.validate_code(
        db, ctx.clock, ctx.secret, challenge=challenge, code=code, policy=policy
    )
    await drop_claims(db, ctx.clock, holder=identity, actor=signed.actor)
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    contacts.record_audit(db, ctx.clock, contact, "IDENTITY_VERIFIED", signed.actor, ["provider"])


# --- re-authentication (OWASP ASVS 3.x / NIST SP 800-63B reauthentication) ------------------


async def reauthenticate(
    db: AsyncSession, ctx: FlowContext, signed: Caller, current_password: str | None
) -> None:
    """Refuse a sensitive change unless the session signed in within the last few minutes or
    the current password is given: a stolen access token alone must not add the thief's email
    or change the password. Call before `db` is first used (tries are counted apart)."""
    if current_password is not None:
        await count(
            db,
            ctx,
            f"reauth:{signed.contact_pk}",
            limit=CURRENT_PASSWORD_TRIES_PER_HOUR,
        )
    session_id = signed.claims.session_id
    signed_in_at = await db.scalar(select(Session.created_at).where(Session.id == session_id))
    max_age = timedelta(seconds=ctx.settings.reauth_max_age_seconds)
    if signed_in_at is not None and signed_in_at >= ctx.clock.now() - max_age:
        return
    if current_password is None:
        raise ReauthenticationRequired()
    stored = await db.scalar(
        select(Identity.password_hash)
        .where(Identity.contact_pk == signed.contact_pk, Identity.password_hash.is_not(None))
        .limit(1)
    )
    if stored is None:
        await passwords.verify_against_dummy(current_password)
        raise CurrentPasswordInvalid()
    if not await passwords.verify_password(stored, current_password):
        raise CurrentPasswordInvalid()


async def limit_verification_mail(db: AsyncSession, ctx: FlowContext, identity: Identity) -> bool:
    """Whether another verification email may go to this contact (silently capped)."""
    try:
        await ratelimits.hit(
            db,
            ctx.clock,
            f"verify-mail:contact:{identity.contact_pk}",
            limit=VERIFY_MAIL_LIMIT_PER_CONTACT_HOUR,
            window_seconds=_HOUR,
        )
    except RateLimited:
        return False
    return True
