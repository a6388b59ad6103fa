"""Self-service passwords and email proof: forgotten, reset and changed passwords, verification."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts import service as contacts
from crm.contacts.models import Contact
from crm.errors import AppError
from crm.events.service import identity_event
from crm.identifiers.core import normalize_email, phone_credential
from crm.identities import decoys, proof
from crm.identities import policy as policies
from crm.identities.context import FlowContext
from crm.identities.errors import (
    NoPasswordIdentity,
    TokenAudienceMismatch,
    TokenInvalidForReset,
    VerificationTokenInvalid,
)
from crm.identities.flows_common import (
    _MAIL_HOURLY_CAP,
    _TOKEN_PURPOSE,
    RequestMeta,
    SignedIn,
    _client_limit,
    _policy,
    _queue_token_email,
)
from crm.identities.identities import find_identity, list_identities
from crm.identities.models import Identity, OtpChallenge
from crm.identities.sessions import revoke_all_sessions
from crm.security import passwords
from crm.security.crypto import hmac_sha256
from crm.tenants.schemas import CallerKey
from crm.vocabulary import ChallengePurpose, EventType, RevokeReason


async def _consume_token(
    db: AsyncSession, ctx: FlowContext, caller: CallerKey | None, purpose: str, token: str
) -> Identity | None:
    """Consume an emailed token. The token alone names its tenant and mode (links carry no
    api_key); a key sent as well must be of that tenant and mode, as on signed-in calls."""
    if not token or len(token) > 200:
        return None
    digest = hmac_sha256(ctx.secret, _TOKEN_PURPOSE[purpose], token.encode())
    now = ctx.clock.now()
    live = (
        OtpChallenge.code_hmac == digest,
        OtpChallenge.purpose == purpose,
        OtpChallenge.consumed_at.is_(None),
        OtpChallenge.expires_at > now,
    )
    found = (
        await db.execute(
            select(OtpChallenge.id, OtpChallenge.tenant_id, OtpChallenge.mode).where(*live)
        )
    ).first()
    if found is None:
        return None
    if caller is not None and (caller.tenant_id != found.tenant_id or caller.mode != found.mode):
        # Checked before consuming: a wrong key leaves the link usable by its owner.
        raise TokenAudienceMismatch(
            "The token does not belong to the tenant or mode of the api_key."
        )
    # One conditional UPDATE: of two requests racing with the same token, only one sees a row.
    identity_id = (
        await db.execute(
            update(OtpChallenge)
            .where(OtpChallenge.id == found.id, *live)
            .values(consumed_at=now)
            .returning(OtpChallenge.identity_id)
            .execution_options(synchronize_session=False)
        )
    ).scalar()
    if identity_id is None:
        return None
    return await db.get(Identity, identity_id)


async def _set_password(
    db: AsyncSession, ctx: FlowContext, contact: Contact, password: str, actor: str
) -> None:
    """Set the contact's password on all its identities (one password per contact)."""
    identities = await list_identities(db, contact.pk)
    if not identities:
        raise NoPasswordIdentity()
    context = [w for w in (contact.first_name, contact.last_name) if w]
    context += [i.display for i in identities]
    passwords.check_password_policy(password, context=context)
    hashed = await passwords.hash_password(password)
    for identity in identities:
        identity.password_hash = hashed
    # Reset links sent before this change must not set the password again afterwards (a link
    # left in a mailbox, or one an attacker asked for, outlives the change otherwise).
    await db.execute(
        update(OtpChallenge)
        .where(
            OtpChallenge.identity_id.in_([i.id for i in identities]),
            OtpChallenge.purpose == ChallengePurpose.PASSWORD_RESET,
            OtpChallenge.consumed_at.is_(None),
        )
        .values(consumed_at=ctx.clock.now())
        .execution_options(synchronize_session=False)
    )
    contacts.record_audit(db, ctx.clock, contact, "PASSWORD_CHANGED", actor, ["password"])


async def change_password(
    *,
    db: AsyncSession,
    ctx: FlowContext,
    signed: SignedIn,
    password: str,
    current_password: str | None = None,
) -> None:
    """Set a new password (after re-authentication); every other session of the contact ends."""
    await proof.reauthenticate(db, ctx, signed, current_password)
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    await _set_password(db, ctx, contact, password, signed.actor)
    await revoke_all_sessions(
        db,
        ctx.clock,
        contact.pk,
        RevokeReason.PASSWORD_CHANGED,
        except_session_id=signed.claims.session_id,
    )


# --- forgotten passwords and email verification ----------------------------------------


async def _email_identity_for_username(
    db: AsyncSession, ctx: FlowContext, caller: CallerKey, username: str
) -> Identity | None:
    try:
        if "@" in username:
            return await find_identity(
                db,
                caller.tenant_id,
                caller.mode,
                "EMAIL",
                normalize_email(username, test_mode=caller.mode == "test").canonical,
            )
        # A number without its calling code is of the application's default country.
        policy = await _policy(ctx, db, caller.application_id, caller.mode)
        phone = await find_identity(
            db,
            caller.tenant_id,
            caller.mode,
            "PHONE",
            phone_credential(username, policy.default_country),
        )
    except AppError:
        return None
    if phone is None:
        return None
    return next(
        (
            i
            for i in await list_identities(db, phone.contact_pk)
            if i.provider == "EMAIL" and proof.has_power(i)
        ),
        None,
    )


async def _email_token(
    db: AsyncSession, ctx: FlowContext, caller: CallerKey, identity: Identity, purpose: str
) -> None:
    """Queue a reset or verification token email under the calling application's policy."""
    contact = await db.get(Contact, identity.contact_pk)
    policy = await _policy(ctx, db, caller.application_id, caller.mode)
    reset = purpose == ChallengePurpose.PASSWORD_RESET
    await _queue_token_email(
        db,
        ctx,
        identity=identity,
        purpose=purpose,
        ttl_seconds=(
            policy.password_reset_ttl_seconds if reset else policy.email_verification_ttl_seconds
        ),
        url_template=policy.password_reset_url if reset else policy.email_verification_url,
        tenant_name=caller.tenant_name,
        language=contact.language_code if contact else None,
        application_id=caller.application_id,
    )


async def forgot_password(
    *,
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    username: str,
    meta: RequestMeta | None = None,
) -> None:
    """Email a reset token if the username is known; the answer never says whether it was.

    The per-address limit answers 429 for known and unknown names alike, so it tells nothing.
    """
    await _client_limit(
        db, ctx, caller, meta or RequestMeta(), policies.ClientOperation.PASSWORD_RESET
    )
    identity = await _email_identity_for_username(db, ctx, caller, username)
    if identity is None:
        # The same work as for a known name (nothing is sent), so timing tells nothing either.
        await decoys.reset_decoy(
            db,
            ctx.clock,
            ctx.secret,
            tenant_id=caller.tenant_id,
            mode=caller.mode,
            username=username,
            policy=await _policy(ctx, db, caller.application_id, caller.mode),
            tenant_name=caller.tenant_name,
            application_id=caller.application_id,
            hourly_cap=_MAIL_HOURLY_CAP,
        )
        return
    await _email_token(db, ctx, caller, identity, "PASSWORD_RESET")


async def reset_password(
    *, db: AsyncSession, ctx: FlowContext, caller: CallerKey | None, token: str, password: str
) -> None:
    """Set a new password with an emailed token; all sessions end, the mailbox counts as verified."""
    identity = await _consume_token(db, ctx, caller, "PASSWORD_RESET", token)
    if identity is None:
        raise TokenInvalidForReset()
    contact = await contacts.get_by_pk(db, identity.contact_pk)
    await _set_password(db, ctx, contact, password, f"password-reset:{identity.id}")
    if identity.verified_at is None:
        identity.verified_at = ctx.clock.now()
        identity_event(db, ctx.clock.now(), EventType.IDENTITY_VERIFIED, contact, identity)
    identity.failed_attempts = 0
    identity.last_failure_at = None
    await revoke_all_sessions(db, ctx.clock, contact.pk, RevokeReason.PASSWORD_RESET)


async def request_email_verification(
    *,
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    email_address: str,
    meta: RequestMeta | None = None,
) -> None:
    await _client_limit(
        db,
        ctx,
        caller,
        meta or RequestMeta(),
        policies.ClientOperation.EMAIL_VERIFICATION,
    )
    try:
        canonical = normalize_email(email_address, test_mode=caller.mode == "test").canonical
    except AppError:
        return
    identity = await find_identity(
        db, caller.tenant_id, caller.mode, "EMAIL", canonical
    ) or await proof.registration_claim(db, ctx, caller.tenant_id, caller.mode, "EMAIL", canonical)
    if identity is None or identity.verified_at is not None:
        return
    if not await proof.limit_verification_mail(db, ctx, identity):
        return
    await _email_token(db, ctx, caller, identity, "EMAIL_VERIFICATION")


async def verify_email(
    *, db: AsyncSession, ctx: FlowContext, caller: CallerKey | None, token: str
) -> None:
    identity = await _consume_token(db, ctx, caller, "EMAIL_VERIFICATION", token)
    if identity is None:
        raise VerificationTokenInvalid()
    await proof.prove_by_link(db, ctx, identity)
