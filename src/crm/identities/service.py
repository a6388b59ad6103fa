"""Self-service sign-in and profile rules: register, codes, passwords, tokens, own profile.

The back office uses the identity and session functions re-exported here (add_identity,
list_identities, remove_identity, unlock_identity, list_sessions, revoke_all_sessions).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts import service as contacts
from crm.contacts.models import Contact, ContactPhone
from crm.db import UTCDateTime, read_connection, session_scope
from crm.errors import AppError, InvalidEmail, InvalidPhone, InvalidRequest
from crm.identities import decoys, otp, proof, readpool, sessions, throttle
from crm.identities import policy as policies
from crm.identities.errors import (
    CredentialsMismatch,
    IdentifierRequired,
    IdentityAlreadyExists,
    IdentityNotFound,
    InvalidCredentials,
    NoPasswordIdentity,
    OtpNotFound,
    ProviderNotSupported,
    RefreshTokenInvalid,
    SessionRevoked,
    TokenAudienceMismatch,
    TokenInvalidForReset,
    VerificationTokenInvalid,
)
from crm.identities.identifiers import (
    normalize_country,
    normalize_email,
    normalize_phone,
    parse_phone_credential,
)
from crm.identities.identities import (
    KNOWN_PROVIDERS,
    PROVIDERS,
    add_identity,
    canonical_identifier,
    find_identity,
    holds,
    list_identities,
    remove_identity,
    unlock_identity,
)
from crm.identities.models import Identity, IdentityOrigin, OtpChallenge, OtpDecoy, Session
from crm.identities.schemas import (
    AuthenticateIn,
    CredentialIn,
    IdentityAddIn,
    OtpRequestIn,
    ProfileUpdateIn,
    RegisterIn,
    ValidateIn,
)
from crm.identities.sessions import list_sessions, revoke_all_sessions
from crm.identities.signing import key_ring
from crm.identities.tokens import AccessClaims, issue_access_token, verify_access_token
from crm.ids import uuid7
from crm.messaging import outbox, templates
from crm.ratelimits import service as ratelimits
from crm.runtime import Runtime
from crm.security import passwords
from crm.security.crypto import hmac_sha256
from crm.security.secrets import new_token
from crm.smsguard import service as sms_guard
from crm.tenants.models import Tenant
from crm.tenants.schemas import CallerKey
from crm.vocabulary import ChallengePurpose, Channel, RevokeReason

__all__ = [
    "add_identity",
    "list_identities",
    "list_sessions",
    "remove_identity",
    "revoke_all_sessions",
    "unlock_identity",
]

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


async def _policy(db: AsyncSession, application_id: str | None, mode: str) -> policies.Policy:
    return await policies.load(db, application_id, mode)


async def _client_limit(
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    meta: RequestMeta,
    operation: policies.ClientOperation,
) -> None:
    """Count one `operation` per client address and key, against the application's limit.

    The per-identity limits stop guessing at one person; this stops one address sweeping
    across many (policy.CLIENT_LIMITS says why the defaults are what they are).
    """
    client = (meta.ip_address or "unknown")[:64]
    bucket = f"{operation}:{caller.key_id}:{client}"
    defaults = policies.client_limit_defaults(runtime.settings)

    async def count(session: AsyncSession) -> None:
        policy = await policies.load(session, caller.application_id, caller.mode, defaults)
        limit, window = policy.client_limit(operation)
        await ratelimits.hit(session, runtime.clock, bucket, limit=limit, window_seconds=window)

    if db.in_transaction():
        await count(db)
        return
    # Counted in a transaction of its own: the request's rolls back on most errors (an unknown
    # identity is a 404), and a count rolled back with it would let a sweep across unknown
    # identities, which fails every time, go unthrottled. Called before `db` is first used, so
    # on SQLite the request holds no write lock yet.
    async with session_scope(runtime.sessions) as counter:
        await count(counter)


async def _signer_ready(runtime: Runtime) -> None:
    """Make sure a signing key exists BEFORE the request's transaction starts.

    Creating the first key commits in its own transaction; on SQLite (one writer) doing that
    while the request already holds the write lock would wait on itself. So every operation
    that issues tokens calls this first, before touching `db`.
    """
    await key_ring(runtime.engine, runtime.secret).signing_key(
        runtime.clock, runtime.settings.access_token_ttl_seconds
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
    runtime: Runtime,
    *,
    contact: Contact,
    tenant_name: str,
    application_id: str | None,
    meta: RequestMeta,
    started: sessions.Started | None = None,
) -> Grant:
    if started is None:
        started = sessions.start_session(
            db,
            runtime.clock,
            runtime.settings,
            contact=contact,
            application_id=application_id,
            user_agent=meta.user_agent,
            ip_address=meta.ip_address,
        )
    access, expires = await issue_access_token(
        runtime.engine,
        runtime.secret,
        runtime.clock,
        issuer=runtime.settings.public_url,
        ttl_seconds=runtime.settings.access_token_ttl_seconds,
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
        is_verified=await _is_verified(db, contact.pk),
        tenant_id=contact.tenant_id,
        tenant_name=tenant_name,
    )


def _credential_identifier(credential: CredentialIn, mode: str) -> tuple[str, str]:
    name = credential.name.upper()
    if name in ("EMAIL", "EMAIL_ADDRESS", "USERNAME"):
        return "EMAIL", normalize_email(credential.value, test_mode=mode == "test").canonical
    if name in ("PHONE", "PHONE_NUMBER", "MOBILE"):
        return "PHONE", parse_phone_credential(credential.value)
    raise ProviderNotSupported()


async def _identities_for(
    db: AsyncSession, runtime: Runtime, caller: CallerKey, credentials: list[CredentialIn]
) -> list[Identity]:
    found: list[Identity] = []
    for credential in credentials:
        provider, identifier = _credential_identifier(credential, caller.mode)
        identity = await find_identity(
            db, caller.tenant_id, caller.mode, provider, identifier
        ) or await proof.registration_claim(
            db, runtime, caller.tenant_id, caller.mode, provider, identifier
        )
        if identity is not None:
            found.append(identity)
    return found


async def _queue_token_email(
    db: AsyncSession,
    runtime: Runtime,
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
    now = runtime.clock.now()
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
            code_hmac=hmac_sha256(runtime.secret, _TOKEN_PURPOSE[purpose], token.encode()),
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
        runtime.clock,
        secret=runtime.secret,
        tenant_id=identity.tenant_id,
        mode=identity.mode,
        channel=Channel.EMAIL,
        recipient=identity.display,
        purpose=purpose,
        message=message,
        contact_pk=identity.contact_pk,
        expires_at=expires_at,
    )


async def _consume_token(
    db: AsyncSession, runtime: Runtime, caller: CallerKey, purpose: str, token: str
) -> Identity | None:
    if not token or len(token) > 200:
        return None
    digest = hmac_sha256(runtime.secret, _TOKEN_PURPOSE[purpose], token.encode())
    now = runtime.clock.now()
    # One conditional UPDATE: of two requests racing with the same token, only one sees a row.
    identity_id = (
        await db.execute(
            update(OtpChallenge)
            .where(
                OtpChallenge.code_hmac == digest,
                OtpChallenge.purpose == purpose,
                OtpChallenge.tenant_id == caller.tenant_id,
                OtpChallenge.mode == caller.mode,
                OtpChallenge.consumed_at.is_(None),
                OtpChallenge.expires_at > now,
            )
            .values(consumed_at=now)
            .returning(OtpChallenge.identity_id)
            .execution_options(synchronize_session=False)
        )
    ).scalar()
    if identity_id is None:
        return None
    return await db.get(Identity, identity_id)


async def _set_password(
    db: AsyncSession, runtime: Runtime, contact: Contact, password: str, actor: str
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
        .values(consumed_at=runtime.clock.now())
        .execution_options(synchronize_session=False)
    )
    contacts.record_audit(db, runtime.clock, contact, "PASSWORD_CHANGED", actor, ["password"])


# --- register and codes ----------------------------------------------------------------


async def register(
    db: AsyncSession, runtime: Runtime, caller: CallerKey, body: RegisterIn, meta: RequestMeta
) -> Grant | CodeSent:
    """Create a contact and its first identity; send a code, or sign in at once (email+password)."""
    await _signer_ready(runtime)
    # Every registration sends a message to a number or address nobody has proved yet: without a
    # per-client cap a script could pump paid SMS to premium numbers (toll fraud).
    await _client_limit(db, runtime, caller, meta, policies.ClientOperation.REGISTER)
    policy = await _policy(db, caller.application_id, caller.mode)
    provider = body.identity.provider.upper()
    if provider not in PROVIDERS:
        raise ProviderNotSupported()
    number, country = body.identity.phone_parts()
    # Everything the client typed is checked before anything is written.
    identifier, _display, _country = canonical_identifier(
        provider,
        email=body.identity.email,
        phone=number,
        country_code=country,
        strict_phone=policy.strict_phone_validation,
        test_mode=caller.mode == "test",
    )
    sms_guard.check_country(policy.sms_countries, _country)
    if await find_identity(db, caller.tenant_id, caller.mode, provider, identifier):
        raise IdentityAlreadyExists()
    password = body.identity.password if provider == "EMAIL" else None
    if password is not None:
        context = [w for w in (body.identity.email, body.first_name, body.last_name) if w]
        passwords.check_password_policy(password, context=context)
    fields: dict[str, Any] = {
        name: getattr(body, name)
        for name in (
            "title",
            "first_name",
            "middle_name",
            "last_name",
            "company_name",
            "language_code",
            "referral_code",
            "service_acceptance",
            "email_opt_out",
            "sms_opt_out",
        )
        if getattr(body, name) is not None
    }
    if body.country_of_agreement is not None:
        fields["country_of_agreement"] = normalize_country(body.country_of_agreement)
    if body.custom_fields is not None:
        fields["custom_fields"] = [f.model_dump() for f in body.custom_fields]
    if provider == "EMAIL":
        fields["email_address"] = normalize_email(
            body.identity.email or "", test_mode=caller.mode == "test"
        ).display
    contact = await contacts.create(
        db,
        runtime.clock,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        fields=fields,
        source=SOURCE,
        actor=_actor(caller),
        contact_type=body.contact_type,
    )
    identity = await add_identity(
        db,
        runtime.clock,
        runtime.secret,
        contact=contact,
        provider=provider,
        email=body.identity.email,
        phone=number,
        country_code=country,
        password=password,
        actor=_actor(caller),
        strict_phone=policy.strict_phone_validation,
        origin=IdentityOrigin.REGISTRATION,
    )
    if provider == "PHONE" and number is not None:
        parsed = normalize_phone(number, country, strict=policy.strict_phone_validation)
        # The back office searches contacts by phone through contact_phones.
        db.add(
            ContactPhone(
                id=uuid7(),
                contact_pk=contact.pk,
                tenant_id=contact.tenant_id,
                mode=contact.mode,
                phone_type="MOBILE",
                country_code=parsed.country_code,
                number=parsed.national,
                e164=parsed.e164,
                is_primary=True,
            )
        )
    # proof_first (the default) answers like a code registration: the password signs in once
    # the address is proven. tokens_first is CRM.COM's (see proof.end_unproven_access).
    if password is not None and policy.email_password_registration == "tokens_first":
        await _queue_token_email(
            db,
            runtime,
            identity=identity,
            purpose=ChallengePurpose.EMAIL_VERIFICATION,
            ttl_seconds=policy.email_verification_ttl_seconds,
            url_template=policy.email_verification_url,
            tenant_name=caller.tenant_name,
            language=contact.language_code,
            application_id=caller.application_id,
        )
        return await _grant(
            db,
            runtime,
            contact=contact,
            tenant_name=caller.tenant_name,
            application_id=caller.application_id,
            meta=meta,
        )
    return await _send_code(
        db, runtime, caller, identity, contact, policy, ChallengePurpose.REGISTER
    )


async def _send_code(
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    identity: Identity,
    contact: Contact,
    policy: policies.Policy,
    purpose: str,
    meta: RequestMeta | None = None,
) -> CodeSent:
    auth_otp, masked = await otp.send_code(
        db,
        runtime.clock,
        runtime.secret,
        identity=identity,
        policy=policy,
        purpose=purpose,
        tenant_name=caller.tenant_name,
        language=contact.language_code,
        application_id=caller.application_id,
        sms_limits=sms_guard.Limits.from_settings(runtime.settings),
        client=_client(runtime, caller, meta),
    )
    return CodeSent(auth_otp=auth_otp, obfuscated_value=masked)


def _client(runtime: Runtime, caller: CallerKey, meta: RequestMeta | None) -> str:
    return throttle.client_key(runtime.secret, caller.key_id, (meta or RequestMeta()).ip_address)


def _named(
    credentials: list[CredentialIn], method: str | None, mode: str
) -> tuple[str, str] | None:
    """The (provider, identifier) a code request names: the one of the asked channel, or the first."""
    named = [_credential_identifier(c, mode) for c in credentials]
    wanted = {"SMS": "PHONE", "EMAIL": "EMAIL"}.get(method or "")
    return next((n for n in named if n[0] == wanted), named[0] if named else None)


async def _send_decoy(
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    named: tuple[str, str],
    meta: RequestMeta | None,
) -> CodeSent:
    """Answer a code request for an identifier nobody uses as for a known one (nothing is sent)."""
    policy = await _policy(db, caller.application_id, caller.mode)
    auth_otp, masked = await decoys.send_decoy(
        db,
        runtime.clock,
        runtime.secret,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        provider=named[0],
        identifier=named[1],
        policy=policy,
        purpose=ChallengePurpose.SIGN_IN,
        tenant_name=caller.tenant_name,
        application_id=caller.application_id,
        client=_client(runtime, caller, meta),
    )
    return CodeSent(auth_otp=auth_otp, obfuscated_value=masked)


async def _send_sign_in_code(
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    found: list[Identity],
    method: str | None,
    named: tuple[str, str] | None = None,
    meta: RequestMeta | None = None,
) -> CodeSent:
    if method is not None and method not in ("SMS", "EMAIL"):
        raise InvalidRequest("method must be SMS or EMAIL.")
    if not found and named is not None:
        return await _send_decoy(db, runtime, caller, named, meta)
    if not found:
        raise IdentityNotFound()
    if len({i.contact_pk for i in found}) > 1:
        raise CredentialsMismatch()
    if method is not None and method not in ("SMS", "EMAIL"):
        raise InvalidRequest("method must be SMS or EMAIL.")
    wanted = {"SMS": "PHONE", "EMAIL": "EMAIL"}.get(method or "", found[0].provider)
    identity = next((i for i in found if i.provider == wanted), None)
    if identity is None:
        # The person named one identity and asked for the other channel: use the contact's own.
        identity = next(
            (
                i
                for i in await list_identities(db, found[0].contact_pk)
                if i.provider == wanted and proof.has_power(i)
            ),
            None,
        )
    if identity is None:
        raise IdentityNotFound(f"This contact has no {wanted} identity to send a code to.")
    contact = await contacts.get_by_pk(db, identity.contact_pk)
    policy = await _policy(db, caller.application_id, caller.mode)
    return await _send_code(
        db, runtime, caller, identity, contact, policy, ChallengePurpose.SIGN_IN, meta
    )


async def request_code(
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    body: OtpRequestIn,
    meta: RequestMeta | None = None,
) -> CodeSent:
    """Send a sign-in code to a known identity (API.md "One-time codes")."""
    await _client_limit(
        db, runtime, caller, meta or RequestMeta(), policies.ClientOperation.OTP_REQUEST
    )
    found = await _identities_for(db, runtime, caller, body.credentials)
    named = _named(body.credentials, body.method, caller.mode)
    return await _send_sign_in_code(db, runtime, caller, found, body.method, named, meta)


async def validate(
    db: AsyncSession, runtime: Runtime, caller: CallerKey, body: ValidateIn, meta: RequestMeta
) -> Grant:
    """Check a code by auth_otp, or the newest code of the identity in credentials; sign in."""
    await _signer_ready(runtime)
    await _client_limit(db, runtime, caller, meta, policies.ClientOperation.OTP_VALIDATE)
    if body.auth_otp:
        challenge = await otp.find_challenge(db, caller.tenant_id, caller.mode, body.auth_otp)
    elif body.credentials:
        found = await _identities_for(db, runtime, caller, body.credentials)
        named = _named(body.credentials, None, caller.mode)
        if not found and named is not None:
            subject = decoys.code_subject(runtime.secret, caller.tenant_id, caller.mode, *named)
            challenge = await otp.newest_decoy(db, subject)
        elif not found:
            raise OtpNotFound()
        elif len({i.id for i in found}) > 1:
            raise CredentialsMismatch("Give the one identity the code was sent to.")
        else:
            challenge = await otp.newest_challenge(db, found[0])
    else:
        raise InvalidRequest(
            "Give auth_otp, or the credentials the code was sent to.",
            details=[{"field": "auth_otp", "message": "Field required"}],
        )
    # The policy (tries, delays) of the application that issued the code, not the caller's.
    policy = await _policy(db, challenge.application_id, challenge.mode)
    client = _client(runtime, caller, meta)
    if isinstance(challenge, OtpDecoy):
        await otp.validate_code(
            db,
            runtime.clock,
            runtime.secret,
            challenge=challenge,
            code=body.code,
            policy=policy,
            client=client,
        )
        raise OtpNotFound()  # pragma: no cover - a decoy never validates
    was_unproven = await proof.is_unproven(db, challenge.identity_id)
    identity = await otp.validate_code(
        db,
        runtime.clock,
        runtime.secret,
        challenge=challenge,
        code=body.code,
        policy=policy,
        client=client,
    )
    contact = await proof.after_code(
        db, runtime, identity, was_unproven=was_unproven, challenge_purpose=challenge.purpose
    )
    return await _grant(
        db,
        runtime,
        contact=contact,
        tenant_name=caller.tenant_name,
        application_id=caller.application_id,
        meta=meta,
    )


async def authenticate(
    db: AsyncSession, runtime: Runtime, caller: CallerKey, body: AuthenticateIn, meta: RequestMeta
) -> Grant | CodeSent:
    """Password sign-in; without a password, send a code like /contacts/otp."""
    await _signer_ready(runtime)
    await _client_limit(db, runtime, caller, meta, policies.ClientOperation.SIGN_IN)
    provider = body.provider
    number = body.phone.number if body.phone else body.phone_number
    country = (body.phone.country_code if body.phone else None) or body.country_code
    if provider is None:
        provider = "PHONE" if number else "EMAIL"
    if provider not in KNOWN_PROVIDERS:
        raise InvalidRequest("Unknown provider.")
    if provider not in PROVIDERS:
        raise ProviderNotSupported()
    if provider == "PHONE":
        if number:
            identifier = normalize_phone(number, country).e164
        elif body.username:
            identifier = parse_phone_credential(body.username)
        else:
            raise InvalidPhone("A phone number is required.")
    else:
        if not body.username:
            raise InvalidEmail("A username (email address) is required.")
        identifier = normalize_email(body.username, test_mode=caller.mode == "test").canonical
    identity = await find_identity(db, caller.tenant_id, caller.mode, provider, identifier)
    if body.password is None:
        identity = identity or await proof.registration_claim(
            db, runtime, caller.tenant_id, caller.mode, provider, identifier
        )
        return await _send_sign_in_code(
            db,
            runtime,
            caller,
            [identity] if identity else [],
            body.method,
            (provider, identifier),
            meta,
        )
    # Wrong passwords are counted per contact (one password per contact), apart from wrong
    # codes, and for an unknown identifier exactly as for a known one.
    policy = await _policy(db, caller.application_id, caller.mode)
    guard = await throttle.password_guard(
        db,
        runtime.secret,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        provider=provider,
        identifier=identifier,
        contact_pk=identity.contact_pk if identity is not None else None,
        client=_client(runtime, caller, meta),
        policy=policy,
    )
    now = runtime.clock.now()
    guard.check(now)
    stored_hash = identity.password_hash if identity is not None else None
    if identity is None or stored_hash is None:
        # Same time as a real check, so response timing does not tell who is registered.
        await passwords.verify_against_dummy(body.password)
        guard.failure(now)
        raise InvalidCredentials()
    if not await passwords.verify_password(stored_hash, body.password):
        guard.failure(now)
        raise InvalidCredentials()
    guard.success()
    if passwords.needs_rehash(stored_hash):
        identity.password_hash = await passwords.hash_password(body.password)
    contact = await contacts.get_by_pk(db, identity.contact_pk)
    return await _grant(
        db,
        runtime,
        contact=contact,
        tenant_name=caller.tenant_name,
        application_id=caller.application_id,
        meta=meta,
    )


# --- sessions and tokens ----------------------------------------------------------------


async def refresh(
    db: AsyncSession,
    runtime: Runtime,
    token: str,
    meta: RequestMeta,
    *,
    caller: CallerKey | None = None,
) -> Grant:
    """Rotate a refresh token (no api_key needed: the session says whose it is).

    An api_key sent as well must be of the session's tenant and mode.
    """
    await _signer_ready(runtime)
    started = await sessions.rotate_refresh(
        db, runtime.clock, runtime.settings, runtime.secret, token
    )
    if caller is not None and (
        caller.tenant_id != started.session.tenant_id or caller.mode != started.session.mode
    ):
        raise TokenAudienceMismatch()
    contact = await db.get(Contact, started.session.contact_pk)
    tenant_name = await db.scalar(select(Tenant.name).where(Tenant.id == started.session.tenant_id))
    if contact is None or contact.erased_at is not None or tenant_name is None:
        raise RefreshTokenInvalid()
    return await _grant(
        db,
        runtime,
        contact=contact,
        tenant_name=tenant_name,
        application_id=started.session.application_id,
        meta=meta,
        started=started,
    )


async def sign_out(db: AsyncSession, runtime: Runtime, signed: SignedIn) -> None:
    await sessions.revoke_session(
        db, runtime.clock, signed.claims.session_id, RevokeReason.SIGNED_OUT
    )


def _phone_subquery(column: Any) -> Any:
    return (
        select(column)
        .where(Identity.contact_pk == Contact.pk, Identity.provider == "PHONE")
        .order_by(Identity.created_at)
        .limit(1)
        .scalar_subquery()
    )


_PROFILE_COLUMNS = (
    Contact.pk,
    Contact.id,
    Contact.code,
    Contact.contact_type,
    Contact.title,
    Contact.first_name,
    Contact.middle_name,
    Contact.last_name,
    Contact.company_name,
    Contact.email_address,
    Contact.language_code,
    Contact.country_of_agreement,
    Contact.gender,
    Contact.birth_year,
    Contact.birth_month,
    Contact.birth_day,
    Contact.custom_fields,
    Contact.referral_code,
    Contact.service_acceptance,
    Contact.email_opt_out,
    Contact.sms_opt_out,
)


# Built once: constructing a select costs more than running it on the hot path.
_SIGNED_IN_QUERY = (
    select(
        *_PROFILE_COLUMNS,
        Tenant.name,
        _phone_subquery(Identity.identifier).label("phone_e164"),
        _phone_subquery(Identity.country_code).label("phone_country"),
    )
    .select_from(Session)
    .join(Contact, Contact.pk == Session.contact_pk)
    .join(Tenant, Tenant.id == Session.tenant_id)
    .where(
        Session.id == bindparam("sid"),
        Session.revoked_at.is_(None),
        Session.absolute_expires_at > bindparam("now", type_=UTCDateTime()),
        Session.tenant_id == bindparam("tenant"),
        Session.mode == bindparam("mode"),
        Contact.id == bindparam("contact"),
        Contact.erased_at.is_(None),
    )
)


@functools.cache
def _pg_signed_in_statement() -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The query compiled once for asyncpg: SQL text, parameter order, and fixed values."""
    compiled = _SIGNED_IN_QUERY.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


async def resolve_access(runtime: Runtime, token: str, api_caller: CallerKey | None) -> SignedIn:
    """Verify an access token and load its live session and contact in ONE query.

    The hot path of every signed-in call: no ORM session, public keys from the in-process cache.
    An api_key sent alongside must be of the token's tenant and mode.
    """
    settings = runtime.settings
    claims = await verify_access_token(
        runtime.engine,
        runtime.secret,
        runtime.clock,
        token,
        issuer=settings.public_url,
        ttl_seconds=settings.access_token_ttl_seconds,
        audience=None,
        cache_size=settings.access_token_verify_cache,
    )
    if api_caller is not None and (
        api_caller.tenant_id != claims.tenant_id or api_caller.mode != claims.mode
    ):
        raise TokenAudienceMismatch()
    params = {
        "sid": claims.session_id,
        "now": runtime.clock.now(),
        "tenant": claims.tenant_id,
        "mode": claims.mode,
        "contact": claims.contact_id,
    }
    row: dict[str, Any] | None
    if runtime.engine.dialect.name == "postgresql":
        # One round trip on a pool without per-checkout pings (see identities.readpool).
        sql, names, fixed = _pg_signed_in_statement()
        row = await readpool.fetchrow(
            runtime.engine,
            runtime.settings,
            sql,
            *(params[n] if n in params else fixed[n] for n in names),
        )
        if row is not None and isinstance(row["custom_fields"], str | bytes):
            row["custom_fields"] = json.loads(row["custom_fields"])
    else:
        async with read_connection(runtime.engine) as connection:
            result = await connection.execute(_SIGNED_IN_QUERY, params)
            mapping = result.mappings().first()
            row = dict(mapping) if mapping is not None else None
    if row is None:
        raise SessionRevoked()
    return SignedIn(
        claims=claims, contact_pk=int(row["pk"]), tenant_name=str(row["name"]), profile=row
    )


def profile(row: dict[str, Any]) -> dict[str, Any]:
    """The contact as GET /contacts/{id} shows it (CRM.COM's field names)."""
    phone = None
    if row.get("phone_e164"):
        phone = {
            "type": "MOBILE",
            "number": row["phone_e164"],
            "country_code": row["phone_country"],
        }
    birth = None
    if row.get("birth_year") and row.get("birth_month") and row.get("birth_day"):
        birth = {"year": row["birth_year"], "month": row["birth_month"], "day": row["birth_day"]}
    demographics = None
    if row.get("gender") or birth:
        demographics = {"gender": row.get("gender"), "date_of_birth": birth}
    return {
        "id": row["id"],
        "code": row["code"],
        "type": row["contact_type"],
        "title": row["title"],
        "first_name": row["first_name"],
        "middle_name": row["middle_name"],
        "last_name": row["last_name"],
        "company_name": row["company_name"],
        "language_code": row["language_code"],
        "email": row["email_address"],
        "phone": phone,
        "demographics": demographics,
        "referral_code": row["referral_code"],
        "country_of_agreement": row["country_of_agreement"],
        "custom_fields": row["custom_fields"] or None,
        "accept_terms_&_conditions": bool(row["service_acceptance"]),
        "email_opt_out": bool(row["email_opt_out"]),
        "sms_opt_out": bool(row["sms_opt_out"]),
    }


# --- own profile -----------------------------------------------------------------------


async def update_profile(
    db: AsyncSession, runtime: Runtime, signed: SignedIn, body: ProfileUpdateIn
) -> str:
    if "email" in body.model_fields_set:
        new_email = normalize_email(body.email).display if body.email else None
        if new_email != signed.profile.get("email_address"):
            await proof.reauthenticate(db, runtime, signed, body.current_password)
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    present = body.model_fields_set
    changes: dict[str, Any] = {}
    for name in (
        "title",
        "first_name",
        "middle_name",
        "last_name",
        "company_name",
        "language_code",
        "referral_code",
    ):
        if name in present:
            changes[name] = getattr(body, name)
    for flag in ("service_acceptance", "email_opt_out", "sms_opt_out"):
        value = getattr(body, flag)
        # A consent flag is a yes or no: null leaves it as it is rather than inventing "no".
        if flag in present and value is not None:
            changes[flag] = value
    if "country_of_agreement" in present:
        value = body.country_of_agreement
        changes["country_of_agreement"] = normalize_country(value) if value else None
    if "email" in present:
        changes["email_address"] = (
            normalize_email(body.email, test_mode=contact.mode == "test").display
            if body.email
            else None
        )
    if "custom_fields" in present:
        changes["custom_fields"] = [f.model_dump() for f in body.custom_fields or []]
    if "demographics" in present:
        demo = body.demographics
        if demo is None:
            changes.update(gender=None, birth_year=None, birth_month=None, birth_day=None)
        else:
            if "gender" in demo.model_fields_set:
                changes["gender"] = demo.gender
            if "date_of_birth" in demo.model_fields_set:
                dob = demo.date_of_birth
                changes["birth_year"] = dob.year if dob else None
                changes["birth_month"] = dob.month if dob else None
                changes["birth_day"] = dob.day if dob else None
    await contacts.update_fields(
        db, runtime.clock, contact, changes, source=SOURCE, actor=signed.actor
    )
    return contact.id


async def unregister(db: AsyncSession, runtime: Runtime, signed: SignedIn) -> None:
    """Erase the signed-in contact's personal data; its sessions end with it."""
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    await contacts.erase(db, runtime.clock, contact, actor=signed.actor)


async def add_own_identity(
    db: AsyncSession,
    runtime: Runtime,
    signed: SignedIn,
    body: IdentityAddIn,
    meta: RequestMeta | None = None,
) -> str:
    """Add an unproven identity and send it a code, to be entered in this session (proof)."""
    await proof.limit_adding(db, runtime, signed, (meta or RequestMeta()).ip_address or "unknown")
    await proof.reauthenticate(db, runtime, signed, body.current_password)
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    policy = await _policy(db, signed.claims.application_id, signed.claims.mode)
    email = body.email or body.username
    number = body.phone.number if body.phone else body.phone_number
    country = (body.phone.country_code if body.phone else None) or body.country_code
    provider = body.provider or ("PHONE" if number and not email else "EMAIL")
    if provider not in PROVIDERS:
        raise ProviderNotSupported()
    if provider == "EMAIL" and not email:
        raise IdentifierRequired("An EMAIL identity needs an email address.")
    identity = await add_identity(
        db,
        runtime.clock,
        runtime.secret,
        contact=contact,
        provider=provider,
        email=email,
        phone=number,
        country_code=country,
        password=body.password,
        actor=signed.actor,
        strict_phone=policy.strict_phone_validation,
        origin=IdentityOrigin.SELF_SERVICE,
    )
    await proof.send_proof_code(
        db,
        runtime,
        identity=identity,
        policy=policy,
        tenant_name=signed.tenant_name,
        language=contact.language_code,
        application_id=signed.claims.application_id,
    )
    return identity.id


async def change_password(
    db: AsyncSession,
    runtime: Runtime,
    signed: SignedIn,
    password: str,
    current_password: str | None = None,
) -> None:
    """Set a new password (after re-authentication); every other session of the contact ends."""
    await proof.reauthenticate(db, runtime, signed, current_password)
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    await _set_password(db, runtime, contact, password, signed.actor)
    await revoke_all_sessions(
        db,
        runtime.clock,
        contact.pk,
        RevokeReason.PASSWORD_CHANGED,
        except_session_id=signed.claims.session_id,
    )


# --- forgotten passwords and email verification ----------------------------------------


async def _email_identity_for_username(
    db: AsyncSession, caller: CallerKey, username: str
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
        phone = await find_identity(
            db, caller.tenant_id, caller.mode, "PHONE", parse_phone_credential(username)
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
    db: AsyncSession, runtime: Runtime, caller: CallerKey, identity: Identity, purpose: str
) -> None:
    """Queue a reset or verification token email under the calling application's policy."""
    contact = await db.get(Contact, identity.contact_pk)
    policy = await _policy(db, caller.application_id, caller.mode)
    reset = purpose == ChallengePurpose.PASSWORD_RESET
    await _queue_token_email(
        db,
        runtime,
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
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    username: str,
    meta: RequestMeta | None = None,
) -> None:
    """Email a reset token if the username is known; the answer never says whether it was.

    The per-address limit answers 429 for known and unknown names alike, so it tells nothing.
    """
    await _client_limit(
        db, runtime, caller, meta or RequestMeta(), policies.ClientOperation.PASSWORD_RESET
    )
    identity = await _email_identity_for_username(db, caller, username)
    if identity is None:
        # The same work as for a known name (nothing is sent), so timing tells nothing either.
        await decoys.reset_decoy(
            db,
            runtime.clock,
            runtime.secret,
            tenant_id=caller.tenant_id,
            mode=caller.mode,
            username=username,
            policy=await _policy(db, caller.application_id, caller.mode),
            tenant_name=caller.tenant_name,
            application_id=caller.application_id,
            hourly_cap=_MAIL_HOURLY_CAP,
        )
        return
    await _email_token(db, runtime, caller, identity, "PASSWORD_RESET")


async def reset_password(
    db: AsyncSession, runtime: Runtime, caller: CallerKey, token: str, password: str
) -> None:
    """Set a new password with an emailed token; all sessions end, the mailbox counts as verified."""
    identity = await _consume_token(db, runtime, caller, "PASSWORD_RESET", token)
    if identity is None:
        raise TokenInvalidForReset()
    contact = await contacts.get_by_pk(db, identity.contact_pk)
    await _set_password(db, runtime, contact, password, f"password-reset:{identity.id}")
    if identity.verified_at is None:
        identity.verified_at = runtime.clock.now()
    identity.failed_attempts = 0
    identity.last_failure_at = None
    await revoke_all_sessions(db, runtime.clock, contact.pk, RevokeReason.PASSWORD_RESET)


async def request_email_verification(
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    email_address: str,
    meta: RequestMeta | None = None,
) -> None:
    await _client_limit(
        db,
        runtime,
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
    ) or await proof.registration_claim(
        db, runtime, caller.tenant_id, caller.mode, "EMAIL", canonical
    )
    if identity is None or identity.verified_at is not None:
        return
    if not await proof.limit_verification_mail(db, runtime, identity):
        return
    await _email_token(db, runtime, caller, identity, "EMAIL_VERIFICATION")


async def verify_email(db: AsyncSession, runtime: Runtime, caller: CallerKey, token: str) -> None:
    identity = await _consume_token(db, runtime, caller, "EMAIL_VERIFICATION", token)
    if identity is None:
        raise VerificationTokenInvalid()
    await proof.prove_by_link(db, runtime, identity)


async def contact_exists(
    db: AsyncSession,
    runtime: Runtime,
    caller: CallerKey,
    *,
    email_address: str | None,
    phone: str | None,
    country_code: str | None,
    client: str,
) -> bool:
    """Whether a contact of this tenant and mode uses the email or phone (rate limited)."""
    if not email_address and not phone:
        raise IdentifierRequired()
    await _client_limit(
        db,
        runtime,
        caller,
        RequestMeta(ip_address=client),
        policies.ClientOperation.CONTACT_EXISTS,
    )
    scope = (Contact.tenant_id == caller.tenant_id, Contact.mode == caller.mode)
    # Unproven claims answer as no identity at all (they give no power, and no oracle).
    _claim_only = (
        Identity.contact_pk == Contact.pk,
        Identity.origin == IdentityOrigin.REGISTRATION,
        Identity.verified_at.is_(None),
    )
    if email_address:
        canonical = normalize_email(email_address, test_mode=caller.mode == "test").canonical
        condition = or_(
            # A profile email of a contact that only an unproven registration made tells nothing.
            and_(Contact.email_canonical == canonical, ~exists().where(*_claim_only)),
            exists().where(
                Identity.contact_pk == Contact.pk,
                Identity.provider == "EMAIL",
                Identity.identifier == canonical,
                holds(),
            ),
        )
    else:
        assert phone is not None
        e164 = (
            normalize_phone(phone, country_code).e164
            if country_code
            else parse_phone_credential(phone)
        )
        condition = or_(
            exists().where(
                Identity.contact_pk == Contact.pk,
                Identity.provider == "PHONE",
                Identity.identifier == e164,
                holds(),
            ),
            and_(
                exists().where(ContactPhone.contact_pk == Contact.pk, ContactPhone.e164 == e164),
                ~exists().where(*_claim_only),
            ),
        )
    found = await db.scalar(
        select(Contact.pk).where(and_(*scope), Contact.erased_at.is_(None), condition).limit(1)
    )
    return found is not None
