"""The Back-Office API (`/backoffice/v1`): the business's servers and agents, with a secret key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.idempotency import IdempotencyKey, run_once
from crm.api.responses import error_responses
from crm.clock import epoch
from crm.contacts import pictures
from crm.contacts import service as contacts
from crm.contacts.errors import VerifyNeedsOneIdentifier
from crm.contacts.schemas import (
    AuditEntry,
    AuditPageOut,
    ConsentEntry,
    ContactCreate,
    ContactExists,
    ContactFound,
    ContactPage,
    ContactRead,
    ContactUpdate,
    CreatedId,
    IdentityCreate,
    consent_entry,
    contact_read,
)
from crm.directory import search as contact_search
from crm.directory.erase import erase
from crm.identities import service as identities
from crm.identities.reads import (
    IdentityRead,
    SessionRead,
    SessionsRevoked,
    identity_read,
    session_read,
)
from crm.media import media_store
from crm.paging import Paging
from crm.tenants.schemas import CallerKey
from crm.vocabulary import RevokeReason

router = APIRouter(tags=["Back-Office"])

SOURCE = "BACK_OFFICE"
# Epoch seconds a datetime can hold (year 9999); larger values would overflow, not match.
_MAX_EPOCH = 253_402_300_799


def actor_of(caller: CallerKey) -> str:
    """The audit trail's "who": the secret key's id, never the key itself."""
    return f"api_key:{caller.key_id}"


def _when(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@router.post(
    "/contacts",
    status_code=201,
    response_model=CreatedId,
    responses=error_responses(401, 403, 409),
    summary="Create a contact",
)
async def create_contact(
    request: Request,
    body: ContactCreate,
    caller: SecretKey,
    session: SessionDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create a person or company. `id` and `code` are yours or generated; both are unique
    per tenant and mode, and `code` never changes. The contact cannot sign in until
    credentials are added with `POST /contacts/{ref}/identities`."""

    async def operation() -> CreatedId:
        contact = await contacts.create(
            session,
            runtime.clock,
            tenant_id=caller.tenant_id,
            mode=caller.mode,
            fields=body.contact_fields(only_set=False),
            source=SOURCE,
            actor=actor_of(caller),
            contact_id=body.id,
            code=body.code,
            contact_type=body.contact_type,
        )
        return CreatedId(id=contact.id)

    return await run_once(request, session, runtime, caller, idempotency_key, operation)


@router.get(
    "/contacts",
    response_model=ContactPage,
    responses=error_responses(401, 403),
    summary="Search and list contacts",
)
async def list_contacts(
    caller: SecretKey,
    session: SessionDep,
    runtime: RuntimeDep,
    search_value: Annotated[
        str | None,
        Query(max_length=100, description="Name, email or code prefix, or a phone in any format."),
    ] = None,
    email_address: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=64)] = None,
    country_code: Annotated[
        str | None, Query(max_length=8, description="Reads `phone`/`search_value` as national.")
    ] = None,
    code: Annotated[str | None, Query(max_length=36)] = None,
    contact_type: Literal["PERSON", "COMPANY"] | None = None,
    created_gte: Annotated[
        int | None, Query(alias="created_date[gte]", ge=0, le=_MAX_EPOCH)
    ] = None,
    created_gt: Annotated[int | None, Query(alias="created_date[gt]", ge=0, le=_MAX_EPOCH)] = None,
    created_lte: Annotated[
        int | None, Query(alias="created_date[lte]", ge=0, le=_MAX_EPOCH)
    ] = None,
    created_lt: Annotated[int | None, Query(alias="created_date[lt]", ge=0, le=_MAX_EPOCH)] = None,
    updated_gte: Annotated[
        int | None, Query(alias="updated_date[gte]", ge=0, le=_MAX_EPOCH)
    ] = None,
    updated_gt: Annotated[int | None, Query(alias="updated_date[gt]", ge=0, le=_MAX_EPOCH)] = None,
    updated_lte: Annotated[
        int | None, Query(alias="updated_date[lte]", ge=0, le=_MAX_EPOCH)
    ] = None,
    updated_lt: Annotated[int | None, Query(alias="updated_date[lt]", ge=0, le=_MAX_EPOCH)] = None,
    sort: contact_search.Sort = "CREATED_DATE",
    order: contact_search.Order = "DESC",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    size: Annotated[int, Query(ge=1, le=contact_search.MAX_SIZE)] = 10,
    include_total: bool = False,
) -> ContactPage:
    """Live contacts of this key's tenant and mode, newest first by default. `search_value`
    matches the start of a first, last or company name, an email or a code (case- and
    accent-insensitively), or a whole phone number however it is typed."""
    result = await contact_search.search(
        session,
        caller.tenant_id,
        caller.mode,
        contact_search.SearchQuery(
            search_value=search_value,
            email_address=email_address,
            phone=phone,
            country_code=country_code,
            code=code,
            contact_type=contact_type,
            created_gte=_when(created_gte),
            created_gt=_when(created_gt),
            created_lte=_when(created_lte),
            created_lt=_when(created_lt),
            updated_gte=_when(updated_gte),
            updated_gt=_when(updated_gt),
            updated_lte=_when(updated_lte),
            updated_lt=_when(updated_lt),
            sort=sort,
            order=order,
            page=page,
            size=size,
            include_total=include_total,
        ),
    )
    avatars = await pictures.names_of(session, [c.pk for c in result.contacts])
    store = media_store(runtime.settings)
    return ContactPage(
        paging=Paging(page=page, size=size, total=result.total, has_more=result.has_more),
        content=[
            ContactFound(
                **{
                    **dict(contact_read(c, result.phones[c.pk])),
                    "avatar_url": store.url(avatars[c.pk]) if c.pk in avatars else None,
                },
                email_verified=result.email_verified.get(c.pk),
            )
            for c in result.contacts
        ],
    )


@router.get(
    "/contacts/verify",
    response_model=ContactExists,
    responses=error_responses(401, 403),
    summary="Whether a contact has this email or phone",
)
async def verify_contact(
    caller: SecretKey,
    session: SessionDep,
    email_address: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=64)] = None,
    country_code: Annotated[str | None, Query(max_length=8)] = None,
) -> ContactExists:
    if (email_address is None) == (phone is None):
        raise VerifyNeedsOneIdentifier()
    found = await contact_search.exists(
        session,
        caller.tenant_id,
        caller.mode,
        email_address=email_address,
        phone=phone,
        country_code=country_code,
    )
    return ContactExists(contact_exists=found)


@router.get(
    "/contacts/{ref}",
    response_model=ContactRead,
    responses=error_responses(401, 403, 404),
    summary="Get a contact by id or code",
)
async def get_contact(
    ref: str, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> ContactRead:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    phones = await contacts.phones_of(session, [contact.pk])
    read = contact_read(contact, phones[contact.pk])
    picture = (await pictures.names_of(session, [contact.pk])).get(contact.pk)
    read.avatar_url = media_store(runtime.settings).url(picture) if picture else None
    return read


@router.put(
    "/contacts/{ref}",
    response_model=CreatedId,
    responses=error_responses(401, 403, 404),
    summary="Update a contact (partial)",
)
async def update_contact(
    ref: str, body: ContactUpdate, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> CreatedId:
    """Absent fields stay as they are; `null` clears an optional field; lists (phones,
    addresses, custom_fields, tags) are replaced whole. `code` and `contact_type` cannot change."""
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    await contacts.update_fields(
        session,
        runtime.clock,
        contact,
        body.contact_fields(only_set=True),
        code=body.echoed("code"),
        contact_type=body.echoed("contact_type"),
        source=SOURCE,
        actor=actor_of(caller),
    )
    return CreatedId(id=contact.id)


@router.delete(
    "/contacts/{ref}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404),
    summary="Erase a contact",
)
async def erase_contact(
    ref: str, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Erases personal data, identities, sessions and unsent messages. The id and code stay
    reserved (a tombstone), so they are never given to another contact; a later GET is 404."""
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    await erase(session, runtime.clock, contact, actor=actor_of(caller))
    return Response(status_code=204)


@router.get(
    "/contacts/{ref}/audit",
    response_model=AuditPageOut,
    responses=error_responses(401, 403, 404),
    summary="A contact's audit trail",
)
async def contact_audit(
    ref: str,
    caller: SecretKey,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=contact_search.MAX_SIZE)] = 10,
    include_total: bool = False,
) -> AuditPageOut:
    """Who (key id) changed which fields and when, newest first; never the values."""
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    result = await contacts.list_audit(session, contact, page=page, size=size)
    total = await contacts.count_audit(session, contact) if include_total else None
    return AuditPageOut(
        paging=Paging(page=page, size=size, total=total, has_more=result.has_more),
        content=[
            AuditEntry(
                id=e.id,
                action=e.action,
                actor=e.actor,
                fields=list(e.fields or []),
                created_date=epoch(e.created_at) or 0,
            )
            for e in result.events
        ],
    )


@router.get(
    "/contacts/{ref}/consents",
    response_model=list[ConsentEntry],
    responses=error_responses(401, 403, 404),
    summary="A contact's consent history",
)
async def contact_consents(ref: str, caller: SecretKey, session: SessionDep) -> list[Any]:
    """Every change of service_acceptance, email_opt_out and sms_opt_out, oldest first."""
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    return [consent_entry(e) for e in await contacts.consent_history(session, contact)]


@router.post(
    "/contacts/{ref}/identities",
    status_code=201,
    response_model=CreatedId,
    responses=error_responses(401, 403, 404, 409),
    summary="Add authentication credentials",
)
async def add_identity(
    request: Request,
    ref: str,
    body: IdentityCreate,
    caller: SecretKey,
    session: SessionDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Give a contact an EMAIL (optionally with a password) or PHONE identity so it can sign in
    through Self-Service. `"verified": true` marks it verified (the business vouches for it).
    409 if another contact of this tenant and mode already has it."""

    async def operation() -> CreatedId:
        contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
        identity = await identities.add_identity(
            session,
            runtime.clock,
            runtime.secret,
            contact=contact,
            actor=actor_of(caller),
            **body.resolved(),
        )
        return CreatedId(id=identity.id)

    return await run_once(request, session, runtime, caller, idempotency_key, operation)


@router.get(
    "/contacts/{ref}/identities",
    response_model=list[IdentityRead],
    responses=error_responses(401, 403, 404),
    summary="List a contact's identities",
)
async def list_identities(ref: str, caller: SecretKey, session: SessionDep) -> list[Any]:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    return [identity_read(i) for i in await identities.list_identities(session, contact.pk)]


@router.delete(
    "/contacts/{ref}/identities/{identity_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404),
    summary="Remove an identity",
)
async def remove_identity(
    ref: str, identity_id: str, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> Response:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    await identities.remove_identity(
        session, runtime.clock, contact=contact, identity_id=identity_id, actor=actor_of(caller)
    )
    return Response(status_code=204)


@router.get(
    "/contacts/{ref}/sessions",
    response_model=list[SessionRead],
    responses=error_responses(401, 403, 404),
    summary="List a contact's live sessions",
)
async def list_sessions(
    ref: str, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> list[Any]:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    rows = await identities.list_sessions(session, contact.pk, clock=runtime.clock)
    return [session_read(s) for s in rows]


@router.delete(
    "/contacts/{ref}/sessions",
    response_model=SessionsRevoked,
    responses=error_responses(401, 403, 404),
    summary="End all of a contact's sessions",
)
async def revoke_sessions(
    ref: str, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> SessionsRevoked:
    """Signs the contact out everywhere: refresh tokens stop working and access tokens are
    refused at once."""
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    revoked = await identities.revoke_all_sessions(
        session, runtime.clock, contact.pk, RevokeReason.BACK_OFFICE
    )
    contacts.record_audit(session, runtime.clock, contact, "SESSIONS_REVOKED", actor_of(caller), [])
    return SessionsRevoked(revoked=revoked)
