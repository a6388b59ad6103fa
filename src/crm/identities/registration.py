"""Self-service registration: a new contact with its first identity, proven by a code or link."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm.contacts import service as contacts
from crm.contacts.models import ContactPhone
from crm.identifiers.core import normalize_country, normalize_email, normalize_phone
from crm.identities import policy as policies
from crm.identities.context import FlowContext
from crm.identities.errors import IdentityAlreadyExists, ProviderNotSupported
from crm.identities.flows_common import (
    SOURCE,
    CodeSent,
    Grant,
    RequestMeta,
    _actor,
    _client_limit,
    _grant,
    _queue_token_email,
    _send_code,
    _signer_ready,
)
from crm.identities.identities import PROVIDERS, add_identity, canonical_identifier, find_identity
from crm.identities.models import IdentityOrigin
from crm.identities.schemas import RegisterIn
from crm.ids import uuid7
from crm.security import passwords
from crm.smsguard import service as sms_guard
from crm.tenants.schemas import CallerKey
from crm.vocabulary import ChallengePurpose

# --- register and codes ----------------------------------------------------------------


async def register(
    *, db: AsyncSession, ctx: FlowContext, caller: CallerKey, body: RegisterIn, meta: RequestMeta
) -> Grant | CodeSent:
    """Create a contact and its first identity; send a code, or sign in at once (email+password)."""
    await _signer_ready(ctx)
    # Every registration sends a message to a number or address nobody has proved yet: without a
    # per-client cap a script could pump paid SMS to premium numbers (toll fraud).
    policy = await _client_limit(db, ctx, caller, meta, policies.ClientOperation.REGISTER)
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
    fields = body.contact_fields()
    if body.country_of_agreement is not None:
        fields = fields._replace(country_of_agreement=normalize_country(body.country_of_agreement))
    if provider == "EMAIL":
        email = normalize_email(body.identity.email or "", test_mode=caller.mode == "test")
        fields = fields._replace(email_address=email.display)
    contact = await contacts.create(
        db,
        ctx.clock,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        fields=fields,
        source=SOURCE,
        actor=_actor(caller),
        contact_type=body.contact_type,
    )
    identity = await add_identity(
        db,
        ctx.clock,
        ctx.secret,
        contact=contact,
        provider=provider,
        email=body.identity.email,
        phone=number,
        country_code=country,
        password=password,
        actor=_actor(caller),
        strict_phone=policy.strict_phone_validation,
        origin=IdentityOrigin.REGISTRATION,
        new_contact=True,  # checked above, before the contact was written
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
            ctx,
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
            ctx,
            contact=contact,
            tenant_name=caller.tenant_name,
            application_id=caller.application_id,
            meta=meta,
        )
    return await _send_code(
        db,
        ctx,
        caller,
        identity,
        contact,
        policy,
        ChallengePurpose.REGISTER,
        new_identity=True,
    )
