"""The signed-in contact's addresses, devices and picture on the Self-Service API (CRM.COM's paths).

Another contact's id answers 404 like an unknown one: these routes never tell a caller that a
contact it does not own exists.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.responses import Response

from crm import media
from crm.api.deps import RuntimeDep, SessionDep
from crm.api.responses import JsonResponse, error_responses
from crm.api.selfservice import BEARER, ContactId, SignedInDep
from crm.contacts import addresses, devices, pictures
from crm.contacts import service as contacts
from crm.contacts.errors import ContactNotFound, PictureMissing
from crm.contacts.models import Contact
from crm.contacts.subresource_schemas import (
    AddressBody,
    DeviceBody,
    RegistrationToken,
    address_out,
    device_out,
    one_page,
)
from crm.identities import service

router = APIRouter(tags=["Self-Service"])

AddressId = Annotated[str, Path(max_length=64, description="One of the contact's addresses.")]
FcmToken = Annotated[RegistrationToken, Path(description="The device's registration (push) token.")]


async def own_contact(db: AsyncSession, signed: service.SignedIn, contact_id: str) -> Contact:
    if contact_id != signed.claims.contact_id:
        raise ContactNotFound()
    return await contacts.get_by_pk(db, signed.contact_pk)


# --- addresses ---------------------------------------------------------------------------


@router.get(
    "/contacts/{id}/addresses",
    summary="List the contact's addresses",
    responses=error_responses(401, 404),
    openapi_extra=BEARER,
)
async def list_addresses(id: ContactId, signed: SignedInDep, db: SessionDep) -> Response:
    contact = await own_contact(db, signed, id)
    return JsonResponse(one_page([address_out(a) for a in addresses.list_(contact)]))


@router.post(
    "/contacts/{id}/addresses",
    status_code=201,
    summary="Add an address",
    responses=error_responses(401, 404, 409),
    openapi_extra=BEARER,
)
async def add_address(
    id: ContactId, body: AddressBody, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> dict[str, Any]:
    """At most 10 per contact; marked `is_primary`, it takes the mark from the previous one."""
    contact = await own_contact(db, signed, id)
    added = await addresses.add(db, runtime.clock, contact, body.stored(), actor=signed.actor)
    return {"id": added["id"]}


@router.put(
    "/contacts/{id}/addresses/{address_id}",
    summary="Replace an address",
    responses=error_responses(401, 404, 409),
    openapi_extra=BEARER,
)
async def update_address(
    id: ContactId,
    address_id: AddressId,
    body: AddressBody,
    signed: SignedInDep,
    runtime: RuntimeDep,
    db: SessionDep,
) -> dict[str, Any]:
    contact = await own_contact(db, signed, id)
    saved = await addresses.update(
        db, runtime.clock, contact, address_id, body.stored(), actor=signed.actor
    )
    return {"id": saved["id"]}


@router.delete(
    "/contacts/{id}/addresses/{address_id}",
    summary="Remove an address",
    responses=error_responses(401, 404),
    openapi_extra=BEARER,
)
async def remove_address(
    id: ContactId, address_id: AddressId, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> Response:
    contact = await own_contact(db, signed, id)
    await addresses.remove(db, runtime.clock, contact, address_id, actor=signed.actor)
    return Response(status_code=200)


# --- devices -----------------------------------------------------------------------------


@router.get(
    "/contacts/{id}/devices",
    summary="List the contact's push devices",
    responses=error_responses(401, 404),
    openapi_extra=BEARER,
)
async def list_devices(id: ContactId, signed: SignedInDep, db: SessionDep) -> Response:
    contact = await own_contact(db, signed, id)
    return JsonResponse(one_page([device_out(d) for d in await devices.list_(db, contact)]))


@router.post(
    "/contacts/{id}/devices",
    status_code=201,
    summary="Register a push device",
    responses=error_responses(401, 404, 409),
    openapi_extra=BEARER,
)
async def register_device(
    id: ContactId, body: DeviceBody, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> dict[str, Any]:
    """The token moves here from any other contact of the tenant that had registered it; the
    contact keeps its 20 most recently registered devices."""
    contact = await own_contact(db, signed, id)
    device = await devices.register(
        db,
        runtime.clock,
        contact,
        token=body.registration_token,
        details=body.details(),
        actor=signed.actor,
    )
    return {"id": device.id}


@router.delete(
    "/contacts/{id}/devices/{fcm_token}",
    summary="Remove a push device",
    responses=error_responses(401, 404),
    openapi_extra=BEARER,
)
async def remove_device(
    id: ContactId, fcm_token: FcmToken, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> Response:
    contact = await own_contact(db, signed, id)
    await devices.remove(db, runtime.clock, contact, token=fcm_token, actor=signed.actor)
    return Response(status_code=200)


# --- picture -----------------------------------------------------------------------------


async def put_picture(
    request: Request,
    db: AsyncSession,
    runtime: Any,
    contact: Contact,
    actor: str,
) -> dict[str, Any]:
    """Shared by both APIs: read the `image` part, store it, answer the new URL.

    The body was already bounded by the middleware (the picture's limit plus the framing);
    the form is parsed here rather than declared, to take one file and a few fields at most.
    """
    form = await request.form(max_files=1, max_fields=8)
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise PictureMissing()
    limit = runtime.settings.avatar_max_bytes
    data = await image.read(limit + 1)
    store = media.media_store(runtime.settings)
    picture = await pictures.set_picture(
        db,
        runtime.clock,
        store,
        contact,
        data=data,
        declared=image.content_type,
        max_bytes=limit,
        actor=actor,
    )
    return {"id": contact.id, "avatar_url": store.url(picture.name)}


# CRM.COM's request body, documented here because the route reads the form itself.
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "PNG, JPEG or WEBP, at most CRM_AVATAR_MAX_BYTES.",
                        }
                    },
                }
            }
        },
    }
}


@router.put(
    "/contacts/{id}/image",
    summary="Upload the contact's picture (multipart/form-data, part `image`)",
    responses=error_responses(401, 404, 413),
    openapi_extra={**BEARER, **IMAGE_BODY},
)
async def upload_image(
    request: Request, id: ContactId, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> dict[str, Any]:
    """The picture is served at `avatar_url` under a new random name; the old one is removed."""
    contact = await own_contact(db, signed, id)
    return await put_picture(request, db, runtime, contact, signed.actor)


@router.delete(
    "/contacts/{id}/image",
    status_code=204,
    summary="Remove the contact's picture",
    responses=error_responses(401, 404),
    openapi_extra=BEARER,
)
async def delete_image(
    id: ContactId, signed: SignedInDep, runtime: RuntimeDep, db: SessionDep
) -> Response:
    contact = await own_contact(db, signed, id)
    await pictures.remove(db, runtime.clock, contact, actor=signed.actor)
    return Response(status_code=204)
