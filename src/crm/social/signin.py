"""Who a verified ID token signs in: the contact holding its issuer and subject, a new contact,
or (for a signed-in contact) that contact, to which the provider identity is linked.

The identity is the issuer plus `sub`, never the email: an email claim only decides whether a
new provider account may start its own contact. When it is a verified email that an existing
contact has proven, the provider account is linked only from a session of that contact, so a
provider account opened with someone else's address never reaches their contact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts import service as contacts
from crm.contacts.contact_fields import ContactFields, or_none, unset_if_none
from crm.contacts.models import Contact
from crm.errors import AppError
from crm.identifiers.core import normalize_email
from crm.identities.identities import find_identity
from crm.identities.models import Identity, IdentityOrigin
from crm.ids import uuid7
from crm.social import configs, jwks, verify
from crm.social.errors import OidcIdentityTaken, OidcLinkRequired
from crm.text import optional_text

# The longest first or last name taken from a provider's claims (the contact schema's bound).
MAX_NAME_LENGTH = 200

# The provider of every OpenID Connect identity: one issuer's account is one identity whether
# the tenant set it up as google or as a generic oidc provider.
PROVIDER = "OIDC"
SOURCE = "SELF_SERVICE"
MAX_IDENTIFIER = 254


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified ID token and the provider settings it was checked against."""

    config: configs.ProviderConfig
    claims: dict[str, Any]

    @property
    def identifier(self) -> str:
        return identifier_for(self.config.issuer, str(self.claims["sub"]))

    @property
    def email(self) -> str | None:
        email = self.claims.get("email")
        verified = self.claims.get("email_verified")
        # Apple sends "true" as a string; an absent claim is not a verified address.
        if isinstance(email, str) and (verified is True or verified == "true"):
            return email
        return None


def identifier_for(issuer: str, sub: str) -> str:
    text = f"{issuer}#{sub}"
    if len(text) <= MAX_IDENTIFIER:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


async def verify_token(
    session: AsyncSession,
    clock: Clock,
    *,
    secret: str,
    private_allowed: bool,
    tenant_id: str,
    mode: str,
    application_id: str | None,
    provider: str,
    token: str,
    nonce: str | None,
    config: configs.ProviderConfig | None = None,
) -> Verified:
    if config is None:
        config = await configs.for_sign_in(
            session,
            secret,
            tenant_id=tenant_id,
            mode=mode,
            provider=provider,
            application_id=application_id,
        )
    claims = await verify.verify_id_token(
        token,
        http=jwks.ProviderHttp(private_allowed=private_allowed),
        cache=jwks.CACHE,
        issuers=config.accepted_issuers,
        audiences=config.accepted_audiences,
        now=clock.timestamp(),
        nonce=nonce,
    )
    return Verified(config=config, claims=claims)


def _names(claims: dict[str, Any], fields: ContactFields) -> ContactFields:
    """Names for a new contact: `fields` first, then the token's claims under the free-text
    rules of every other surface (a claim with an invisible character is left out)."""
    first = or_none(fields.first_name)
    if first is None:
        first = optional_text(claims.get("given_name"), max_length=MAX_NAME_LENGTH)
    if first is None:
        first = optional_text(claims.get("name"), max_length=MAX_NAME_LENGTH)
    last = or_none(fields.last_name)
    if last is None:
        last = optional_text(claims.get("family_name"), max_length=MAX_NAME_LENGTH)
    return fields._replace(first_name=unset_if_none(first), last_name=unset_if_none(last))


async def _add_identity(
    session: AsyncSession, clock: Clock, verified: Verified, contact: Contact
) -> None:
    now = clock.now()
    display = verified.email or str(verified.claims["sub"])
    identity = Identity(
        id=uuid7(),
        tenant_id=contact.tenant_id,
        mode=contact.mode,
        contact_pk=contact.pk,
        provider=PROVIDER,
        identifier=verified.identifier,
        display=display[:254],
        origin=IdentityOrigin.REGISTRATION,
        verified_at=now,
        failed_attempts=0,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(identity)
            await session.flush()
    except IntegrityError:
        # The same provider account signing in twice at once: the other request created it.
        raise OidcIdentityTaken() from None


async def contact_for(
    session: AsyncSession,
    clock: Clock,
    verified: Verified,
    *,
    tenant_id: str,
    mode: str,
    actor: str,
    fields: ContactFields | None = None,
    link_contact_pk: int | None = None,
) -> Contact:
    """The contact `verified` signs in, creating or linking its identity as the rules allow."""
    existing = await find_identity(session, tenant_id, mode, PROVIDER, verified.identifier)
    if link_contact_pk is not None:
        if existing is not None and existing.contact_pk != link_contact_pk:
            raise OidcIdentityTaken()
        contact = await contacts.get_by_pk(session, link_contact_pk)
        if existing is None:
            await _add_identity(session, clock, verified, contact)
        return contact
    if existing is not None:
        return await contacts.get_by_pk(session, existing.contact_pk)
    email = verified.email
    canonical = None
    if email is not None:
        try:
            canonical = normalize_email(email, test_mode=mode == "test")
        except AppError:
            email = None
    if canonical is not None:
        holder = await find_identity(session, tenant_id, mode, "EMAIL", canonical.canonical)
        if holder is not None:
            raise OidcLinkRequired()
    values = _names(verified.claims, fields or ContactFields())
    if canonical is not None:
        values = values._replace(email_address=canonical.display)
    contact = await contacts.create(
        session,
        clock,
        tenant_id=tenant_id,
        mode=mode,
        fields=values,
        source=SOURCE,
        actor=actor,
    )
    await _add_identity(session, clock, verified, contact)
    return contact
