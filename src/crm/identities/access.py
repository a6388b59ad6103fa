"""Self-service sessions and tokens: refresh, sign-out and resolving an access token."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver, pgpool
from crm.contacts.models import Contact, ContactPhone, ContactPicture
from crm.db import UTCDateTime, read_connection
from crm.documents import DOCUMENT_FIELDS, LIST_FIELDS
from crm.identities import sessions
from crm.identities.context import FlowContext
from crm.identities.errors import RefreshTokenInvalid, SessionRevoked, TokenAudienceMismatch
from crm.identities.flows_common import Grant, RequestMeta, SignedIn, _grant, _signer_ready
from crm.identities.models import Identity, Session
from crm.identities.tokens import verify_access_token
from crm.tenants.models import Tenant
from crm.tenants.schemas import CallerKey
from crm.vocabulary import RevokeReason

# --- sessions and tokens ----------------------------------------------------------------


# The contact, its tenant's name and whether it holds a proven identity, in one statement
# (built once: see crm.driver on why the hot statements are).
_REFRESHED = driver.Statement(
    select(
        driver.table_of(Contact),
        select(Tenant.name)
        .where(Tenant.id == bindparam("tenant_id"))
        .scalar_subquery()
        .label("crm_tenant_name"),
        exists()
        .where(Identity.contact_pk == Contact.pk, Identity.verified_at.is_not(None))
        .label("crm_verified"),
    ).where(Contact.pk == bindparam("contact_pk"))
)


async def refresh(
    *,
    db: AsyncSession,
    ctx: FlowContext,
    token: str,
    meta: RequestMeta,
    caller: CallerKey | None = None,
) -> Grant:
    """Rotate a refresh token (no api_key needed: the session says whose it is).

    An api_key sent as well must be of the session's tenant and mode.
    """
    await _signer_ready(ctx)
    started = await sessions.rotate_refresh(db, ctx.clock, ctx.settings, ctx.secret, token)
    if caller is not None and (
        caller.tenant_id != started.session.tenant_id or caller.mode != started.session.mode
    ):
        raise TokenAudienceMismatch()
    values = {"tenant_id": started.session.tenant_id, "contact_pk": started.session.contact_pk}
    found = await driver.fetchrow(db, _REFRESHED, values)
    if found is None or found["erased_at"] is not None or found["crm_tenant_name"] is None:
        raise RefreshTokenInvalid()
    contact = driver.adopt(db, Contact, found, refresh=False)
    tenant_name, is_verified = found["crm_tenant_name"], found["crm_verified"]
    return await _grant(
        db,
        ctx,
        contact=contact,
        tenant_name=tenant_name,
        application_id=started.session.application_id,
        meta=meta,
        started=started,
        is_verified=bool(is_verified),
    )


async def sign_out(*, db: AsyncSession, ctx: FlowContext, signed: SignedIn) -> None:
    await sessions.revoke_session(db, ctx.clock, signed.claims.session_id, RevokeReason.SIGNED_OUT)


def _phone_subquery(column: Any) -> Any:
    return (
        select(column)
        .where(Identity.contact_pk == Contact.pk, Identity.provider == "PHONE")
        .order_by(Identity.created_at)
        .limit(1)
        .scalar_subquery()
    )


def _contact_phone(column: Any) -> Any:
    # The profile's phone: the contact's primary phone (registration writes one).
    return (
        select(column)
        .where(ContactPhone.contact_pk == Contact.pk)
        .order_by(ContactPhone.is_primary.desc(), ContactPhone.id)
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
    *(getattr(Contact, name) for name in DOCUMENT_FIELDS),
)
_JSON_COLUMNS = ("custom_fields", *LIST_FIELDS)


# Built once: constructing a select costs more than running it on the hot path.
_SIGNED_IN_QUERY = (
    select(
        *_PROFILE_COLUMNS,
        Tenant.name,
        _phone_subquery(Identity.identifier).label("phone_e164"),
        _phone_subquery(Identity.country_code).label("phone_country"),
        _contact_phone(ContactPhone.id).label("cphone_id"),
        _contact_phone(ContactPhone.phone_type).label("cphone_type"),
        _contact_phone(ContactPhone.e164).label("cphone_e164"),
        _contact_phone(ContactPhone.country_code).label("cphone_country"),
        select(ContactPicture.name)
        .where(ContactPicture.contact_pk == Contact.pk)
        .scalar_subquery()
        .label("avatar_name"),
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


_PG_SIGNED_IN_QUERY = driver.Statement(_SIGNED_IN_QUERY)


async def resolve_access(ctx: FlowContext, token: str, api_caller: CallerKey | None) -> SignedIn:
    """Verify an access token and load its live session and contact in ONE query.

    The hot path of every signed-in call: no ORM session, public keys from the in-process cache.
    An api_key sent alongside must be of the token's tenant and mode.
    """
    settings = ctx.settings
    claims = await verify_access_token(
        ctx.engine,
        ctx.secret,
        ctx.clock,
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
        "now": ctx.clock.now(),
        "tenant": claims.tenant_id,
        "mode": claims.mode,
        "contact": claims.contact_id,
    }
    row: dict[str, Any] | None
    if ctx.engine.dialect.name == "postgresql":
        # One round trip on a pool without per-checkout pings (see crm.pgpool).
        row = await pgpool.run(ctx.engine, ctx.settings, _PG_SIGNED_IN_QUERY, params)
        for name in _JSON_COLUMNS:
            if row is not None and isinstance(row[name], str | bytes):
                row[name] = json.loads(row[name])
    else:
        async with read_connection(ctx.engine) as connection:
            result = await connection.execute(_SIGNED_IN_QUERY, params)
            mapping = result.mappings().first()
            row = dict(mapping) if mapping is not None else None
    if row is None:
        raise SessionRevoked()
    avatar = row.get("avatar_name")
    row["avatar_url"] = ctx.media.url(avatar) if avatar else None
    return SignedIn(
        claims=claims, contact_pk=int(row["pk"]), tenant_name=str(row["name"]), profile=row
    )
