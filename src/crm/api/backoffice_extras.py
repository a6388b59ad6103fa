"""The Back-Office side of a contact's addresses, devices and picture, and the tenant's custom
field definitions (secret key; a contact by id or code, as on every Back-Office contact path)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from crm.api.backoffice import actor_of
from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import JsonResponse, error_responses
from crm.api.selfservice_extras import IMAGE_BODY, AddressId, FcmToken, put_picture
from crm.contacts import addresses, custom_fields, devices, pictures
from crm.contacts import service as contacts
from crm.contacts.subresource_schemas import (
    AddressBody,
    CustomFieldDefinitionIn,
    CustomFieldDefinitionOut,
    DeviceBody,
    address_out,
    definition_out,
    device_out,
    one_page,
)

router = APIRouter(tags=["Back-Office"])

FieldKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="The custom field's key.",
    ),
]


# --- addresses ---------------------------------------------------------------------------


@router.get(
    "/contacts/{ref}/addresses",
    summary="List a contact's addresses",
    responses=error_responses(401, 403, 404),
)
async def list_addresses(ref: str, caller: SecretKey, session: SessionDep) -> Response:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    return JsonResponse(one_page([address_out(a) for a in addresses.list_(contact)]))


@router.post(
    "/contacts/{ref}/addresses",
    status_code=201,
    summary="Add an address to a contact",
    responses=error_responses(401, 403, 404, 409),
)
async def add_address(
    ref: str, body: AddressBody, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    added = await addresses.add(
        session, runtime.clock, contact, body.stored(), actor=actor_of(caller)
    )
    return {"id": added["id"]}


@router.put(
    "/contacts/{ref}/addresses/{address_id}",
    summary="Replace a contact's address",
    responses=error_responses(401, 403, 404, 409),
)
async def update_address(
    ref: str,
    address_id: AddressId,
    body: AddressBody,
    caller: SecretKey,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    saved = await addresses.update(
        session, runtime.clock, contact, address_id, body.stored(), actor=actor_of(caller)
    )
    return {"id": saved["id"]}


@router.delete(
    "/contacts/{ref}/addresses/{address_id}",
    summary="Remove a contact's address",
    responses=error_responses(401, 403, 404),
)
async def remove_address(
    ref: str, address_id: AddressId, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> Response:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    await addresses.remove(session, runtime.clock, contact, address_id, actor=actor_of(caller))
    return Response(status_code=200)


# --- devices -----------------------------------------------------------------------------


@router.get(
    "/contacts/{ref}/devices",
    summary="List a contact's push devices",
    responses=error_responses(401, 403, 404),
)
async def list_devices(ref: str, caller: SecretKey, session: SessionDep) -> Response:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    return JsonResponse(one_page([device_out(d) for d in await devices.list_(session, contact)]))


@router.post(
    "/contacts/{ref}/devices",
    status_code=201,
    summary="Register a push device to a contact",
    responses=error_responses(401, 403, 404, 409),
)
async def register_device(
    ref: str, body: DeviceBody, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    device = await devices.register(
        session,
        runtime.clock,
        contact,
        token=body.registration_token,
        details=body.details(),
        actor=actor_of(caller),
    )
    return {"id": device.id}


@router.delete(
    "/contacts/{ref}/devices/{fcm_token}",
    summary="Remove a contact's push device",
    responses=error_responses(401, 403, 404),
)
async def remove_device(
    ref: str, fcm_token: FcmToken, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> Response:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    await devices.remove(session, runtime.clock, contact, token=fcm_token, actor=actor_of(caller))
    return Response(status_code=200)


# --- picture -----------------------------------------------------------------------------


@router.put(
    "/contacts/{ref}/image",
    summary="Upload a contact's picture (multipart/form-data, part `image`)",
    responses=error_responses(401, 403, 404, 413),
    openapi_extra=IMAGE_BODY,
)
async def upload_image(
    request: Request, ref: str, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    return await put_picture(request, session, runtime, contact, actor_of(caller))


@router.delete(
    "/contacts/{ref}/image",
    status_code=204,
    summary="Remove a contact's picture",
    responses=error_responses(401, 403, 404),
)
async def delete_image(
    ref: str, caller: SecretKey, session: SessionDep, runtime: RuntimeDep
) -> Response:
    contact = await contacts.get_by_ref(session, caller.tenant_id, caller.mode, ref)
    await pictures.remove(session, runtime.clock, contact, actor=actor_of(caller))
    return Response(status_code=204)


# --- custom field definitions (per tenant, both modes) -----------------------------------


@router.get(
    "/custom_fields",
    response_model=list[CustomFieldDefinitionOut],
    summary="The tenant's custom field definitions",
    responses=error_responses(401, 403),
)
async def list_custom_fields(caller: SecretKey, session: SessionDep) -> list[Any]:
    rows = await custom_fields.list_definitions(session, caller.tenant_id)
    return [definition_out(row) for row in rows]


@router.put(
    "/custom_fields/{key}",
    response_model=CustomFieldDefinitionOut,
    summary="Define (or redefine) a custom field",
    responses=error_responses(401, 403, 409),
)
async def define_custom_field(
    key: FieldKey,
    body: CustomFieldDefinitionIn,
    caller: SecretKey,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """A contact may carry only defined keys (an undefined one is 400 CUSTOM_FIELD_UNDEFINED).
    At most 100 per tenant; 201 when new, 200 when replaced."""
    row, created = await custom_fields.define(
        session,
        runtime.clock,
        tenant_id=caller.tenant_id,
        key=key,
        value_type=body.type,
        max_length=body.max_length,
        allowed_values=body.allowed_values,
        description=body.description,
    )
    return JsonResponse(definition_out(row).model_dump(), status_code=201 if created else 200)


@router.delete(
    "/custom_fields/{key}",
    status_code=204,
    summary="Remove a custom field definition",
    responses=error_responses(401, 403, 404),
)
async def undefine_custom_field(key: FieldKey, caller: SecretKey, session: SessionDep) -> Response:
    """Values contacts already hold stay readable; the key can no longer be written."""
    await custom_fields.undefine(session, tenant_id=caller.tenant_id, key=key)
    return Response(status_code=204)
