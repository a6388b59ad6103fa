"""A contact's picture: checked by its content, stored under a random name, and forgotten.

The type is read from the first bytes (PNG, JPEG, WEBP), never taken from the client: an SVG
(which can carry script) or an HTML page sent as `image/png` is refused, and what is served is
always one of three raster types with its own Content-Type. Each new picture gets a new random
name, so a served URL never changes content (it may be cached for a year) and says nothing
about whose picture it is.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm import media
from crm.clock import Clock
from crm.contacts.audit import record_audit
from crm.contacts.errors import PictureTooLarge, PictureTypeMismatch, PictureTypeNotAllowed
from crm.contacts.models import Contact, ContactPicture
from crm.errors import ConcurrentChange

# What a client may declare besides the real type: nothing in particular.
_UNDECLARED = {"", "application/octet-stream"}
# Spellings of the three types seen in the wild.
_DECLARED = {
    "image/png": "png",
    "image/x-png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/pjpeg": "jpg",
    "image/webp": "webp",
}


def sniff(data: bytes) -> str | None:
    """The extension of the image type the bytes are, by their signature, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check(data: bytes, declared: str | None, max_bytes: int) -> str:
    """The picture's extension, or a 4xx: too large, not an allowed type, or a lying label."""
    if len(data) > max_bytes:
        raise PictureTooLarge(
            f"The picture is larger than {max_bytes} bytes.",
            details=[{"field": "image", "message": f"at most {max_bytes} bytes"}],
        )
    extension = sniff(data)
    if extension is None:
        raise PictureTypeNotAllowed(details=[{"field": "image", "message": "PNG, JPEG or WEBP"}])
    label = (declared or "").split(";", 1)[0].strip().lower()
    if label not in _UNDECLARED and _DECLARED.get(label) != extension:
        raise PictureTypeMismatch(
            details=[{"field": "image", "message": f"declared {label[:40]!r}"}]
        )
    return extension


async def picture_of(session: AsyncSession, contact: Contact) -> ContactPicture | None:
    return await session.get(ContactPicture, contact.pk)


async def names_of(session: AsyncSession, contact_pks: list[int]) -> dict[int, str]:
    """The stored picture name of each contact that has one."""
    if not contact_pks:
        return {}
    rows = await session.execute(
        select(ContactPicture.contact_pk, ContactPicture.name).where(
            ContactPicture.contact_pk.in_(contact_pks)
        )
    )
    return {pk: name for pk, name in rows.tuples()}


async def set_picture(
    session: AsyncSession,
    clock: Clock,
    store: media.MediaStore,
    contact: Contact,
    *,
    data: bytes,
    declared: str | None,
    max_bytes: int,
    actor: str,
) -> ContactPicture:
    """Store a new picture for the contact; the old one's file goes once this commits."""
    extension = check(data, declared, max_bytes)
    name = media.new_name(extension)
    await store.put(name, data)
    media.record(session.info, media.WRITTEN, name)
    now = clock.now()
    values = {"name": name, "content_type": media.CONTENT_TYPES[extension], "size": len(data)}
    picture = await session.get(ContactPicture, contact.pk, with_for_update=True)
    if picture is None:
        picture = ContactPicture(contact_pk=contact.pk, created_at=now, **values)
        try:
            async with session.begin_nested():
                session.add(picture)
        except IntegrityError:
            # A concurrent upload for the same contact inserted first.
            raise ConcurrentChange() from None
    else:
        media.record(session.info, media.REMOVED, picture.name)
        for field, value in values.items():
            setattr(picture, field, value)
        picture.created_at = now
    contact.updated_at = now
    record_audit(session, clock, contact, "PICTURE_SET", actor, ["avatar_url"])
    await session.flush()
    return picture


async def remove(session: AsyncSession, clock: Clock, contact: Contact, *, actor: str) -> None:
    """Remove the contact's picture (nothing to do without one); the file goes after commit."""
    if await forget(session, contact):
        contact.updated_at = clock.now()
        record_audit(session, clock, contact, "PICTURE_REMOVED", actor, ["avatar_url"])


async def forget(session: AsyncSession, contact: Contact) -> bool:
    """Delete the picture row and schedule its file's removal; whether there was one."""
    picture = await session.get(ContactPicture, contact.pk, with_for_update=True)
    if picture is None:
        return False
    media.record(session.info, media.REMOVED, picture.name)
    await session.delete(picture)
    await session.flush()
    return True
