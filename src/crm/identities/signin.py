"""Self-service sign-in: one-time code requests, code validation and password authentication."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from crm import unit_of_work
from crm.contacts import service as contacts
from crm.errors import AppError, InvalidEmail, InvalidPhone, InvalidRequest
from crm.events.sessions import identity_locked
from crm.identifiers.core import normalize_email, normalize_phone, phone_credential
from crm.identities import credentials, decoys, otp, proof, throttle
from crm.identities import policy as policies
from crm.identities.context import FlowContext
from crm.identities.errors import (
    CredentialsMismatch,
    IdentityNotFound,
    InvalidCredentials,
    OtpNotFound,
    ProviderNotSupported,
)
from crm.identities.flows_common import (
    CodeSent,
    Grant,
    RequestMeta,
    _client,
    _client_limit,
    _credential_identifier,
    _grant,
    _policy,
    _send_code,
    _signer_ready,
)
from crm.identities.identities import KNOWN_PROVIDERS, PROVIDERS, find_identity, list_identities
from crm.identities.models import Identity, OtpDecoy
from crm.identities.schemas import AuthenticateIn, CredentialIn, OtpRequestIn, ValidateIn
from crm.security import passwords
from crm.tenants.schemas import CallerKey
from crm.vocabulary import ChallengePurpose


def _named(
    credentials: list[CredentialIn], method: str | None, mode: str
) -> tuple[str, str] | None:
    """The (provider, identifier) a code request names: the one of the asked channel, or the first."""
    return _pick([_credential_identifier(c, mode) for c in credentials], method)


def _pick(named: list[tuple[str, str]], method: str | None) -> tuple[str, str] | None:
    wanted = {"SMS": "PHONE", "EMAIL": "EMAIL"}.get(method or "")
    return next((n for n in named if n[0] == wanted), named[0] if named else None)


async def _resolve(
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    given: list[CredentialIn],
    method: str | None,
) -> tuple[list[Identity], tuple[str, str]]:
    """The identities a code request's credentials name, and what a decoy answers as when none.

    A document names its contact, whose proven phone or email (the asked channel's) gets the
    code; documents of nobody, of different contacts, a birth date that does not match, or a
    contact with no proven identity on the channel all answer as an unknown credential.
    """
    policy = await _policy(ctx, db, caller.application_id, caller.mode)
    named = credentials.sort(given, caller.mode, policy.default_country)
    found: list[Identity] = []
    for provider, identifier in named.identities:
        identity = await find_identity(
            db, caller.tenant_id, caller.mode, provider, identifier
        ) or await proof.registration_claim(
            db, ctx, caller.tenant_id, caller.mode, provider, identifier
        )
        if identity is not None:
            found.append(identity)
    stand_in = _pick(named.identities, method) or credentials.decoy_identity(
        ctx.secret,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        documents=named.documents,
        method=method,
        default_country=policy.default_country,
    )
    if not named.documents and named.birthdate is None:
        return found, stand_in
    holders = [i.contact_pk for i in found]
    unknown = len(found) < len(named.identities)
    for field, value in named.documents:
        pk = await contacts.contact_by_number(
            db, tenant_id=caller.tenant_id, mode=caller.mode, field=field, value=value
        )
        if pk is None:
            unknown = True
        else:
            holders.append(pk)
    target = None
    if holders and named.documents:
        target = await _destination(db, holders[0], method)
        if target is not None and not named.identities:
            # A request that names a contact by document and adds something that does not fit
            # (another's document, a wrong birth date) answers exactly as the document alone
            # would, destination included, so the extra credential cannot be guessed from it.
            stand_in = (target.provider, target.identifier)
    if unknown or len(set(holders)) != 1:
        return [], stand_in
    if named.birthdate is not None and not await _born_on(db, holders[0], named.birthdate):
        return [], stand_in
    if not named.documents:
        return found, stand_in
    return ([target] if target is not None else []), stand_in


async def _destination(db: AsyncSession, contact_pk: int, method: str | None) -> Identity | None:
    """The contact's proven identity a code named by document goes to: the asked channel's, else
    its phone, else its email."""
    proven = [i for i in await list_identities(db, contact_pk) if proof.has_power(i)]
    wanted = {"SMS": "PHONE", "EMAIL": "EMAIL"}.get(method or "")
    target = next((i for i in proven if i.provider == (wanted or "PHONE")), None)
    if target is None and wanted is None:
        target = next((i for i in proven if i.provider == "EMAIL"), None)
    return target


async def _born_on(db: AsyncSession, contact_pk: int, born: dt.date) -> bool:
    try:
        contact = await contacts.get_by_pk(db, contact_pk)
    except AppError:  # erased meanwhile: nobody was born that day
        return False
    return (contact.birth_year, contact.birth_month, contact.birth_day) == (
        born.year,
        born.month,
        born.day,
    )


async def _send_decoy(
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    named: tuple[str, str],
    meta: RequestMeta | None,
) -> CodeSent:
    """Answer a code request for an identifier nobody uses as for a known one (nothing is sent)."""
    policy = await _policy(ctx, db, caller.application_id, caller.mode)
    auth_otp, masked = await decoys.send_decoy(
        db,
        ctx.clock,
        ctx.secret,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        provider=named[0],
        identifier=named[1],
        policy=policy,
        purpose=ChallengePurpose.SIGN_IN,
        tenant_name=caller.tenant_name,
        application_id=caller.application_id,
        client=_client(ctx, caller, meta),
    )
    return CodeSent(auth_otp=auth_otp, obfuscated_value=masked)


async def _send_sign_in_code(
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    found: list[Identity],
    method: str | None,
    named: tuple[str, str] | None = None,
    meta: RequestMeta | None = None,
) -> CodeSent:
    if method is not None and method not in ("SMS", "EMAIL"):
        raise InvalidRequest("method must be SMS or EMAIL.")
    if not found and named is not None:
        return await _send_decoy(db, ctx, caller, named, meta)
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
    policy = await _policy(ctx, db, caller.application_id, caller.mode)
    return await _send_code(
        db, ctx, caller, identity, contact, policy, ChallengePurpose.SIGN_IN, meta
    )


async def request_code(
    *,
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    body: OtpRequestIn,
    meta: RequestMeta | None = None,
) -> CodeSent:
    """Send a sign-in code to a known identity (API.md "One-time codes")."""
    await _client_limit(
        db, ctx, caller, meta or RequestMeta(), policies.ClientOperation.OTP_REQUEST
    )
    found, named = await _resolve(db, ctx, caller, body.credentials, body.method)
    return await _send_sign_in_code(db, ctx, caller, found, body.method, named, meta)


async def validate(
    *, db: AsyncSession, ctx: FlowContext, caller: CallerKey, body: ValidateIn, meta: RequestMeta
) -> Grant:
    """Check a code by auth_otp, or the newest code of the identity in credentials; sign in."""
    await _signer_ready(ctx)
    await _client_limit(db, ctx, caller, meta, policies.ClientOperation.OTP_VALIDATE)
    if body.auth_otp:
        challenge = await otp.find_challenge(db, caller.tenant_id, caller.mode, body.auth_otp)
    elif body.credentials:
        found, named = await _resolve(db, ctx, caller, body.credentials, None)
        if not found:
            subject = decoys.code_subject(ctx.secret, caller.tenant_id, caller.mode, *named)
            challenge = await otp.newest_decoy(db, subject)
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
    policy = await _policy(ctx, db, challenge.application_id, challenge.mode)
    client = _client(ctx, caller, meta)
    if isinstance(challenge, OtpDecoy):
        await otp.validate_code(
            db,
            ctx.clock,
            ctx.secret,
            challenge=challenge,
            code=body.code,
            policy=policy,
            client=client,
        )
        raise OtpNotFound()  # pragma: no cover - a decoy never validates
    # Locked first: whether it was proven before this code is read from the locked row.
    locked = await otp.lock_identity(db, challenge.identity_id)
    was_unproven = locked.verified_at is None
    identity = await otp.validate_code(
        db,
        ctx.clock,
        ctx.secret,
        challenge=challenge,
        code=body.code,
        policy=policy,
        client=client,
        count_proof=False,
        locked=locked,
    )
    contact = await proof.after_code(
        db, ctx, identity, was_unproven=was_unproven, challenge_purpose=challenge.purpose
    )
    grant = await _grant(
        db,
        ctx,
        contact=contact,
        tenant_name=caller.tenant_name,
        application_id=caller.application_id,
        meta=meta,
        # The code just proved this identity (an expired claim raised above).
        is_verified=True if identity.verified_at is not None else None,
    )
    await unit_of_work.flush(db)
    await otp.record_proof(db, identity, challenge)
    return grant


async def authenticate(
    *,
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
    body: AuthenticateIn,
    meta: RequestMeta,
) -> Grant | CodeSent:
    """Password sign-in; without a password, send a code like /contacts/otp."""
    await _signer_ready(ctx)
    await _client_limit(db, ctx, caller, meta, policies.ClientOperation.SIGN_IN)
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
        default_country = (
            await _policy(ctx, db, caller.application_id, caller.mode)
        ).default_country
        if number:
            identifier = normalize_phone(number, country or default_country).e164
        elif body.username:
            identifier = phone_credential(body.username, default_country)
        else:
            raise InvalidPhone("A phone number is required.")
    else:
        if not body.username:
            raise InvalidEmail("A username (email address) is required.")
        identifier = normalize_email(body.username, test_mode=caller.mode == "test").canonical
    identity = await find_identity(db, caller.tenant_id, caller.mode, provider, identifier)
    if body.password is None:
        identity = identity or await proof.registration_claim(
            db, ctx, caller.tenant_id, caller.mode, provider, identifier
        )
        return await _send_sign_in_code(
            db,
            ctx,
            caller,
            [identity] if identity else [],
            body.method,
            (provider, identifier),
            meta,
        )
    # Wrong passwords are counted per contact (one password per contact), apart from wrong
    # codes, and for an unknown identifier exactly as for a known one.
    policy = await _policy(ctx, db, caller.application_id, caller.mode)
    guard = await throttle.password_guard(
        db,
        ctx.secret,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        provider=provider,
        identifier=identifier,
        contact_pk=identity.contact_pk if identity is not None else None,
        client=_client(ctx, caller, meta),
        policy=policy,
    )
    now = ctx.clock.now()
    guard.check(now)
    stored_hash = identity.password_hash if identity is not None else None
    if identity is None or stored_hash is None:
        # Same time as a real check, so response timing does not tell who is registered.
        await passwords.verify_against_dummy(body.password)
        guard.failure(now)
        raise InvalidCredentials()
    if not await passwords.verify_password(stored_hash, body.password):
        guard.failure(now)
        if guard.subject.locked_at == now:
            await identity_locked(db, now, identity, "PASSWORD")
        raise InvalidCredentials()
    guard.success()
    if passwords.needs_rehash(stored_hash):
        identity.password_hash = await passwords.hash_password(body.password)
    contact = await contacts.get_by_pk(db, identity.contact_pk)
    return await _grant(
        db,
        ctx,
        contact=contact,
        tenant_name=caller.tenant_name,
        application_id=caller.application_id,
        meta=meta,
    )
