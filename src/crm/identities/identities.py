"""Adding, listing, removing and unlocking the identities a contact signs in with."""

from __future__ import annotations

from sqlalchemy import ColumnElement, bindparam, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver
from crm.clock import Clock
from crm.contacts.models import Contact
from crm.contacts.service import record_audit
from crm.errors import InvalidEmail, InvalidPhone
from crm.identifiers.core import normalize_email, normalize_phone
from crm.identities.errors import IdentityAlreadyExists, IdentityNotFound, ProviderNotSupported
from crm.identities.models import Identity, IdentityOrigin, OtpChallenge
from crm.identities.throttle import forget_password_failures
from crm.ids import uuid7
from crm.security import passwords

PROVIDERS = ("EMAIL", "PHONE")
# The rest of CRM.COM's enum: recognised, so they get PROVIDER_NOT_SUPPORTED rather than a
# generic validation error.
KNOWN_PROVIDERS = (*PROVIDERS, "FACEBOOK", "APPLE", "GOOGLE", "MAC_ADDRESS", "OIDC_OAUTH")


def canonical_identifier(
    provider: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    country_code: str | None = None,
    strict_phone: bool = False,
    test_mode: bool = False,
) -> tuple[str, str, str | None]:
    """Return (identifier, display, country alpha-3) for an identity as typed; raise 400s.

    A phone identity is where codes are texted, so it must be fit for SMS; `test_mode` (a test
    key: nothing is sent) admits the reserved test email domains.
    """
    if provider == "EMAIL":
        if not email:
            raise InvalidEmail("An EMAIL identity needs an email address.")
        parsed = normalize_email(email, test_mode=test_mode)
        return parsed.canonical, parsed.display, None
    if provider == "PHONE":
        if not phone:
            raise InvalidPhone("A PHONE identity needs a phone number.")
        number = normalize_phone(phone, country_code, strict=strict_phone, sms=True)
        return number.e164, number.e164, number.country_code
    raise ProviderNotSupported()


def holds() -> ColumnElement[bool]:
    """Proven, or the business's own claim: the identities that have power (models.HOLDS_SQL)."""
    return or_(Identity.verified_at.is_not(None), Identity.origin == IdentityOrigin.BACK_OFFICE)


# Built once (see crm.driver on why the hot statements are).
_HOLDER = driver.rows_of(
    Identity,
    Identity.tenant_id == bindparam("tenant_id"),
    Identity.mode == bindparam("mode"),
    Identity.provider == bindparam("provider"),
    Identity.identifier == bindparam("identifier"),
    holds(),
)
_RIVALS = driver.rows_of(
    Identity,
    Identity.tenant_id == bindparam("tenant_id"),
    Identity.mode == bindparam("mode"),
    Identity.provider == bindparam("provider"),
    Identity.identifier == bindparam("identifier"),
    Identity.id != bindparam("holder_id"),
    Identity.verified_at.is_(None),
    Identity.origin != IdentityOrigin.BACK_OFFICE,
)


async def find_identity(
    session: AsyncSession, tenant_id: str, mode: str, provider: str, identifier: str
) -> Identity | None:
    """The identity that holds the identifier; unproven Self-Service claims are not found."""
    values = {"tenant_id": tenant_id, "mode": mode, "provider": provider, "identifier": identifier}
    return await driver.load(session, Identity, _HOLDER, values)


async def drop_claims(session: AsyncSession, clock: Clock, *, holder: Identity, actor: str) -> int:
    """Drop every other unproven Self-Service claim on `holder`'s identifier; return how many.

    A contact that the dropped claim created and that is left with no identity is deleted (its
    sessions go with it); any other contact keeps its record and gets an audit entry.
    """
    values = {
        "tenant_id": holder.tenant_id,
        "mode": holder.mode,
        "provider": holder.provider,
        "identifier": holder.identifier,
        "holder_id": holder.id,
    }
    rivals = [
        driver.adopt(session, Identity, row, refresh=False)
        for row in await driver.fetch(session, _RIVALS, values)
    ]
    for rival in rivals:
        contact = await session.get(Contact, rival.contact_pk)
        await session.execute(delete(OtpChallenge).where(OtpChallenge.identity_id == rival.id))
        await session.delete(rival)
        await session.flush()
        if contact is None:
            continue
        record_audit(session, clock, contact, "UNPROVEN_ACCESS_ENDED", actor, ["identities"])
        left = await session.scalar(
            select(func.count(Identity.id)).where(Identity.contact_pk == contact.pk)
        )
        if rival.origin == IdentityOrigin.REGISTRATION and not left:
            await session.delete(contact)
            await session.flush()
    return len(rivals)


async def add_identity(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    contact: Contact,
    provider: str,
    email: str | None = None,
    phone: str | None = None,
    country_code: str | None = None,
    password: str | None = None,
    verified: bool = False,
    actor: str,
    strict_phone: bool = False,
    origin: IdentityOrigin = IdentityOrigin.BACK_OFFICE,
    new_contact: bool = False,
) -> Identity:
    """Give `contact` a new EMAIL or PHONE identity; 409 if an identity holds the value.

    Unproven Self-Service claims on the value do not block; a business's identity (it holds at
    once) drops them. `new_contact`: the contact was created in this transaction by a caller
    that has just checked that no identity holds the value (registration), so neither lookup
    is made again.

    `secret` is the server secret, accepted for symmetry with the other identity services.
    """
    del secret  # nothing here is HMAC'd or encrypted; kept so the signature is stable
    provider = provider.strip().upper() if isinstance(provider, str) else ""
    if provider not in PROVIDERS:
        raise ProviderNotSupported()
    identifier, display, country = canonical_identifier(
        provider,
        email=email,
        phone=phone,
        country_code=country_code,
        strict_phone=strict_phone,
        test_mode=contact.mode == "test",
    )
    password_hash = None
    if password is not None:
        context = [w for w in (display, contact.first_name, contact.last_name) if w]
        passwords.check_password_policy(password, context=context)
    # Checked before hashing: a taken identifier should not cost 55 ms of argon2.
    if not new_contact and await find_identity(
        session, contact.tenant_id, contact.mode, provider, identifier
    ):
        raise IdentityAlreadyExists()
    if not new_contact and await session.scalar(
        select(Identity.id).where(
            Identity.contact_pk == contact.pk,
            Identity.provider == provider,
            Identity.identifier == identifier,
        )
    ):
        raise IdentityAlreadyExists()  # this contact's own claim on it, not yet proven
    if password is not None:
        password_hash = await passwords.hash_password(password)
    now = clock.now()
    identity = Identity(
        id=uuid7(),
        tenant_id=contact.tenant_id,
        mode=contact.mode,
        contact_pk=contact.pk,
        provider=provider,
        identifier=identifier,
        display=display,
        country_code=country,
        password_hash=password_hash,
        origin=origin,
        verified_at=now if verified else None,
        failed_attempts=0,
        created_at=now,
    )
    holds_value = origin == IdentityOrigin.BACK_OFFICE or verified
    if not holds_value:
        # An unproven claim is outside the unique index of holders (HOLDS_SQL): it cannot lose
        # a race, so it needs no savepoint. A new contact's is written with the rest of the
        # registration at its next flush (nothing reads it back before).
        session.add(identity)
        if not new_contact:
            await session.flush()
        record_audit(session, clock, contact, "IDENTITY_ADDED", actor, _added_fields(password))
        return identity
    try:
        # A savepoint: losing the unique-constraint race must not spoil the caller's transaction.
        async with session.begin_nested():
            session.add(identity)
    except IntegrityError as exc:
        raise IdentityAlreadyExists() from exc
    await drop_claims(session, clock, holder=identity, actor=actor)
    record_audit(session, clock, contact, "IDENTITY_ADDED", actor, _added_fields(password))
    return identity


def _added_fields(password: str | None) -> list[str]:
    return ["provider", *(["password"] if password is not None else [])]


async def list_identities(session: AsyncSession, contact_pk: int) -> list[Identity]:
    rows = await session.scalars(
        select(Identity)
        .where(Identity.contact_pk == contact_pk)
        .order_by(Identity.created_at, Identity.id)
    )
    return list(rows)


async def _own_identity(session: AsyncSession, contact: Contact, identity_id: str) -> Identity:
    if not isinstance(identity_id, str) or len(identity_id) > 36:
        raise IdentityNotFound()
    identity = await session.scalar(
        select(Identity).where(Identity.id == identity_id, Identity.contact_pk == contact.pk)
    )
    if identity is None:
        raise IdentityNotFound()
    return identity


async def remove_identity(
    session: AsyncSession, clock: Clock, *, contact: Contact, identity_id: str, actor: str
) -> None:
    """Delete one of `contact`'s identities and its codes; 404 if it is not that contact's."""
    identity = await _own_identity(session, contact, identity_id)
    await session.execute(delete(OtpChallenge).where(OtpChallenge.identity_id == identity.id))
    await session.delete(identity)
    await session.flush()
    record_audit(session, clock, contact, "IDENTITY_REMOVED", actor, ["provider"])


async def unlock_identity(
    session: AsyncSession, clock: Clock, *, contact: Contact, identity_id: str, actor: str
) -> None:
    """Lift a lockout and restart the failure counter (the back office's answer to a locked user)."""
    identity = await _own_identity(session, contact, identity_id)
    identity.locked_at = None
    identity.failed_attempts = 0
    identity.last_failure_at = None
    # Wrong passwords are counted per contact: unlocking an identity lifts that count too.
    await forget_password_failures(session, contact.pk)
    record_audit(session, clock, contact, "IDENTITY_UNLOCKED", actor, [])


async def mark_verified(
    session: AsyncSession, clock: Clock, *, contact: Contact, identity_id: str, actor: str
) -> Identity:
    """The business vouches for one of `contact`'s identities, as `"verified": true` does when
    adding one: it holds its value from now on, and other unproven claims on it are dropped.
    409 if another contact's identity already holds the value."""
    identity = await _own_identity(session, contact, identity_id)
    if identity.verified_at is not None:
        return identity
    holder = await find_identity(
        session, identity.tenant_id, identity.mode, identity.provider, identity.identifier
    )
    if holder is not None and holder.id != identity.id:
        raise IdentityAlreadyExists()
    identity.verified_at = clock.now()
    await session.flush()
    await drop_claims(session, clock, holder=identity, actor=actor)
    record_audit(session, clock, contact, "IDENTITY_VERIFIED", actor, ["provider"])
    return identity
