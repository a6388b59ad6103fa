"""A contact's addresses one at a time: list, add, replace and remove (CRM.COM's sub-resource).

They are the same list the contact record carries (`addresses`, replaced whole by a contact
update), so both ways of writing keep one set of rules: countries to alpha-3, at most one
primary (the first address is primary when none is marked), at most MAX_ADDRESSES, and a name
unique among the addresses of one type. The contact row is locked while its list changes, so
two concurrent additions cannot overwrite each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts.audit import record_audit
from crm.contacts.errors import AddressLimitReached, AddressNameTaken, AddressNotFound
from crm.contacts.models import Contact
from crm.contacts.normalise import normalise_addresses
from crm.contacts.schemas import MAX_ADDRESSES
from crm.errors import AppError
from crm.ids import uuid7

FIELD = "addresses"


def list_(contact: Contact) -> list[dict[str, Any]]:
    """The contact's addresses in their stored order (the primary one is marked)."""
    return [dict(address) for address in contact.addresses or []]


async def _locked(session: AsyncSession, contact: Contact) -> list[dict[str, Any]]:
    # Re-read under a row lock (PostgreSQL; SQLite serialises writers itself).
    await session.refresh(contact, attribute_names=[FIELD], with_for_update=True)
    return list_(contact)


def _find(addresses: list[dict[str, Any]], address_id: str) -> int:
    for index, address in enumerate(addresses):
        if address.get("id") == address_id:
            return index
    raise AddressNotFound()


def _check_name(addresses: list[dict[str, Any]], address: Mapping[str, Any], skip: int) -> None:
    name = address.get("name")
    if not name:
        return
    folded = name.casefold()
    for index, other in enumerate(addresses):
        if (
            index != skip
            and other.get("address_type") == address.get("address_type")
            and (other.get("name") or "").casefold() == folded
        ):
            raise AddressNameTaken(details=[{"field": "name", "message": name}])


def _save(
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    addresses: list[dict[str, Any]],
    *,
    action: str,
    actor: str,
) -> list[dict[str, Any]]:
    try:
        normalised = normalise_addresses(addresses)
    except AppError as exc:
        # Named as the sub-resource's member, not by the position in the contact's list.
        for detail in exc.details:
            detail["field"] = str(detail.get("field", "")).rsplit(".", 1)[-1]
        raise
    contact.addresses = normalised  # a new list object, so the JSON column is seen as changed
    contact.updated_at = clock.now()
    record_audit(session, clock, contact, action, actor, [FIELD])
    return normalised


async def add(
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    address: Mapping[str, Any],
    *,
    actor: str,
) -> dict[str, Any]:
    """Add an address; marked primary, it takes the mark from the one that had it."""
    addresses = await _locked(session, contact)
    if len(addresses) >= MAX_ADDRESSES:
        raise AddressLimitReached(
            details=[{"field": FIELD, "message": f"at most {MAX_ADDRESSES} addresses"}]
        )
    _check_name(addresses, address, skip=-1)
    new = {**address, "id": uuid7(), "is_primary": bool(address.get("is_primary"))}
    if new["is_primary"]:
        for other in addresses:
            other["is_primary"] = False
    saved = _save(session, clock, contact, [*addresses, new], action="ADDRESS_ADDED", actor=actor)
    return saved[-1]


async def update(
    session: AsyncSession,
    clock: Clock,
    contact: Contact,
    address_id: str,
    address: Mapping[str, Any],
    *,
    actor: str,
) -> dict[str, Any]:
    """Replace an address whole (absent members are cleared; an absent `is_primary` keeps it)."""
    addresses = await _locked(session, contact)
    index = _find(addresses, address_id)
    _check_name(addresses, address, skip=index)
    primary = address.get("is_primary")
    new = {**address, "id": address_id}
    if primary is None:
        new["is_primary"] = bool(addresses[index].get("is_primary"))
    elif primary:
        for other in addresses:
            other["is_primary"] = False
    elif addresses[index].get("is_primary"):
        # The mark moves to the first other address (none left unmarked while any exists).
        new["is_primary"] = False
        others = [other for i, other in enumerate(addresses) if i != index]
        if others:
            others[0]["is_primary"] = True
    addresses[index] = new
    saved = _save(session, clock, contact, addresses, action="ADDRESS_UPDATED", actor=actor)
    return saved[index]


async def remove(
    session: AsyncSession, clock: Clock, contact: Contact, address_id: str, *, actor: str
) -> None:
    """Remove an address; if it was the primary, the first remaining one becomes primary."""
    addresses = await _locked(session, contact)
    index = _find(addresses, address_id)
    del addresses[index]
    _save(session, clock, contact, addresses, action="ADDRESS_REMOVED", actor=actor)
