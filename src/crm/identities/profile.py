"""The signed-in contact's own profile: read, update, add identities, existence."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import documents
from crm.contacts import service as contacts
from crm.contacts.contact_fields import Phone
from crm.contacts.models import Contact, ContactPhone
from crm.identifiers.core import (
    national_number,
    normalize_country,
    normalize_email,
    normalize_phone,
    phone_credential,
)
from crm.identities import policy as policies
from crm.identities import proof
from crm.identities.context import FlowContext
from crm.identities.errors import IdentifierRequired, ProviderNotSupported
from crm.identities.flows_common import SOURCE, RequestMeta, SignedIn, _client_limit, _policy
from crm.identities.identities import PROVIDERS, add_identity, holds
from crm.identities.models import Identity, IdentityOrigin
from crm.identities.schemas import IdentityAddIn, ProfilePhoneIn, ProfileUpdateIn
from crm.tenants.schemas import CallerKey


def profile(row: dict[str, Any]) -> dict[str, Any]:
    """The contact as GET /contacts/{id} shows it (CRM.COM's field names)."""
    birth = None
    if row.get("birth_year") and row.get("birth_month") and row.get("birth_day"):
        birth = {"year": row["birth_year"], "month": row["birth_month"], "day": row["birth_day"]}
    demographics: dict[str, Any] | None = {
        "gender": row.get("gender"),
        "date_of_birth": birth,
        **documents.demographics_out(row),
    }
    if demographics is not None and all(v is None for v in demographics.values()):
        demographics = None
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
        "phone": _profile_phone(row),
        "demographics": demographics,
        "company_profile": documents.company_profile_out(row),
        "loyalty_identifiers": documents.loyalty_out(row),
        "referral_code": row["referral_code"],
        "country_of_agreement": row["country_of_agreement"],
        "custom_fields": row["custom_fields"] or None,
        "avatar_url": row.get("avatar_url"),
        "accept_terms_&_conditions": bool(row["service_acceptance"]),
        "email_opt_out": bool(row["email_opt_out"]),
        "sms_opt_out": bool(row["sms_opt_out"]),
    }


def _profile_phone(row: dict[str, Any]) -> dict[str, Any] | None:
    """The phone as CRM.COM's profile shows it, in the shape it is written: the national number
    beside its country, so an app that writes back what it read stores the same number (the
    E.164 form here would gain a second calling code). CRM.COM's schema has no member for the
    E.164 form; the Back-Office contact's `phones[].number` carries it."""
    if row.get("cphone_e164"):
        return {
            "id": row["cphone_id"],
            "type": row["cphone_type"],
            "country_code": row["cphone_country"],
            "number": national_number(row["cphone_e164"]),
        }
    if row.get("phone_e164"):  # a phone identity added after registration, no contact phone
        return {
            "type": "MOBILE",
            "country_code": row["phone_country"],
            "number": national_number(row["phone_e164"]),
        }
    return None


# --- own profile -----------------------------------------------------------------------


async def update_profile(
    *, db: AsyncSession, ctx: FlowContext, signed: SignedIn, body: ProfileUpdateIn
) -> str:
    if "email" in body.model_fields_set:
        new_email = normalize_email(body.email).display if body.email else None
        if new_email != signed.profile.get("email_address"):
            await proof.reauthenticate(db, ctx, signed, body.current_password)
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    present = body.model_fields_set
    changes = body.contact_fields()
    if "country_of_agreement" in present:
        value = body.country_of_agreement
        changes = changes._replace(country_of_agreement=normalize_country(value) if value else None)
    if "email" in present:
        email = (
            normalize_email(body.email, test_mode=contact.mode == "test").display
            if body.email
            else None
        )
        changes = changes._replace(email_address=email)
    if "phone" in present:
        changes = changes._replace(phones=await _phones_with(db, ctx, signed, contact, body.phone))
    await contacts.update_fields(db, ctx.clock, contact, changes, source=SOURCE, actor=signed.actor)
    return contact.id


async def _phones_with(
    db: AsyncSession,
    ctx: FlowContext,
    signed: SignedIn,
    contact: Contact,
    phone: ProfilePhoneIn | None,
) -> list[Phone]:
    """The contact's phones with `phone` as the primary one (None: the primary removed).

    The profile shows one phone, the primary; the others (the back office's) stay.
    """
    current = (await contacts.phones_of(db, [contact.pk]))[contact.pk]
    new: Phone | None = None
    if phone is not None:
        country = phone.country_code
        if not country:
            policy = await _policy(ctx, db, signed.claims.application_id, signed.claims.mode)
            country = policy.default_country
        parsed = normalize_phone(phone.number, country)
        new = Phone(
            phone_type=phone.type,
            country_code=parsed.country_code,
            number=parsed.e164,
            is_primary=True,
        )
    kept = [
        Phone(
            phone_type=p.phone_type,
            country_code=p.country_code,
            number=p.e164,
            is_primary=False,
        )
        for p in current
        if not p.is_primary and (new is None or p.e164 != new["number"])
    ]
    return [new, *kept] if new is not None else kept


async def add_own_identity(
    *,
    db: AsyncSession,
    ctx: FlowContext,
    signed: SignedIn,
    body: IdentityAddIn,
    meta: RequestMeta | None = None,
) -> str:
    """Add an unproven identity and send it a code, to be entered in this session (proof)."""
    await proof.limit_adding(db, ctx, signed, (meta or RequestMeta()).ip_address or "unknown")
    await proof.reauthenticate(db, ctx, signed, body.current_password)
    contact = await contacts.get_by_pk(db, signed.contact_pk)
    policy = await _policy(ctx, db, signed.claims.application_id, signed.claims.mode)
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
        ctx.clock,
        ctx.secret,
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
        ctx,
        identity=identity,
        policy=policy,
        tenant_name=signed.tenant_name,
        language=contact.language_code,
        application_id=signed.claims.application_id,
    )
    return identity.id


async def contact_exists(
    *,
    db: AsyncSession,
    ctx: FlowContext,
    caller: CallerKey,
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
        ctx,
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
        if country_code:
            e164 = normalize_phone(phone, country_code).e164
        else:
            # A number without its calling code is of the application's default country.
            policy = await _policy(ctx, db, caller.application_id, caller.mode)
            e164 = phone_credential(phone, policy.default_country)
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
