"""A tenant's custom fields: which keys its contacts may carry, and the check of their values.

A key must be defined before any contact of the tenant (either mode) carries it: an undefined
key is a typo or a client writing where the business never agreed to keep data. Definitions
give a type and a length, never a regular expression: a tenant's pattern run over every write
would let one bad pattern (catastrophic backtracking) stall the server for everyone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.contacts.contact_fields import ContactFields, CustomFieldValue, or_none
from crm.contacts.errors import (
    CustomFieldDefinitionLimitReached,
    CustomFieldDefinitionNotFound,
    CustomFieldInvalidValue,
    CustomFieldUndefined,
)
from crm.contacts.models import CustomFieldDefinition
from crm.errors import AppError, Conflict, InvalidRequest
from crm.ids import uuid7
from crm.text import clean_text
from crm.vocabulary import CustomFieldType

# Keys a tenant may define; each contact may carry up to MAX_CUSTOM_FIELDS (contacts.schemas).
MAX_DEFINITIONS = 100
# Every value's ceiling in characters; a definition may only lower it.
MAX_VALUE_LENGTH = 1024
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,18}(\.[0-9]{1,18})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


async def list_definitions(session: AsyncSession, tenant_id: str) -> list[CustomFieldDefinition]:
    rows = await session.scalars(
        select(CustomFieldDefinition)
        .where(CustomFieldDefinition.tenant_id == tenant_id)
        .order_by(CustomFieldDefinition.key)
    )
    return list(rows)


async def _definition(
    session: AsyncSession, tenant_id: str, key: str
) -> CustomFieldDefinition | None:
    return await session.scalar(
        select(CustomFieldDefinition).where(
            CustomFieldDefinition.tenant_id == tenant_id, CustomFieldDefinition.key == key
        )
    )


async def define(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    key: str,
    value_type: CustomFieldType,
    max_length: int,
    allowed_values: Sequence[str],
    description: str | None,
) -> tuple[CustomFieldDefinition, bool]:
    """Create or replace the definition of `key`; True when it is new.

    Values already stored stay as they are; the next write of a contact's custom fields is
    checked against the new definition.
    """
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidRequest(
            "A custom field key is 1 to 64 letters, digits, '_', '.', ':' or '-'.",
            details=[{"field": "key", "message": key[:64]}],
        )
    for value in allowed_values:
        _check_value(value_type, max_length, [], value, "allowed_values")
    now = clock.now()
    found = await _definition(session, tenant_id, key)
    if found is not None:
        found.value_type = value_type.value
        found.max_length = max_length
        found.allowed_values = list(allowed_values)
        found.description = description
        found.updated_at = now
        return found, False
    count = await session.scalar(
        select(func.count()).where(CustomFieldDefinition.tenant_id == tenant_id)
    )
    if (count or 0) >= MAX_DEFINITIONS:
        raise CustomFieldDefinitionLimitReached(
            details=[{"field": "key", "message": f"at most {MAX_DEFINITIONS} definitions"}]
        )
    row = CustomFieldDefinition(
        id=uuid7(),
        tenant_id=tenant_id,
        key=key,
        value_type=value_type.value,
        max_length=max_length,
        allowed_values=list(allowed_values),
        description=description,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another request defined the same key a moment ago.
        raise Conflict("The custom field was defined concurrently; try again.") from None
    return row, True


async def undefine(session: AsyncSession, *, tenant_id: str, key: str) -> None:
    result = await session.execute(
        delete(CustomFieldDefinition).where(
            CustomFieldDefinition.tenant_id == tenant_id, CustomFieldDefinition.key == key
        )
    )
    if not getattr(result, "rowcount", 0):
        raise CustomFieldDefinitionNotFound()


async def checked(session: AsyncSession, tenant_id: str, fields: ContactFields) -> ContactFields:
    """`fields` with its custom fields checked against the tenant's definitions and normalised.

    An undefined key is a 400 naming the key; an empty value removes the field.
    """
    values = or_none(fields.custom_fields)
    if not values:
        return fields
    keys = {item["key"] for item in values}
    rows = await session.scalars(
        select(CustomFieldDefinition).where(
            CustomFieldDefinition.tenant_id == tenant_id, CustomFieldDefinition.key.in_(keys)
        )
    )
    return fields._replace(custom_fields=check_values({row.key: row for row in rows}, values))


@dataclass(frozen=True, slots=True)
class FieldRule:
    """A definition as the check reads it (kept apart from the row, so it outlives a session)."""

    value_type: str
    max_length: int
    allowed_values: tuple[str, ...]


async def rules_of(session: AsyncSession, tenant_id: str) -> dict[str, FieldRule]:
    """Every definition of the tenant, for a bulk import that checks many rows against them."""
    return {
        row.key: FieldRule(row.value_type, row.max_length, tuple(row.allowed_values or ()))
        for row in await list_definitions(session, tenant_id)
    }


def check_values(
    definitions: Mapping[str, CustomFieldDefinition | FieldRule],
    values: Sequence[Mapping[str, Any]],
) -> list[CustomFieldValue]:
    out: list[CustomFieldValue] = []
    for index, item in enumerate(values):
        key = str(item["key"])
        definition = definitions.get(key)
        if definition is None:
            raise CustomFieldUndefined(
                f"The tenant defines no custom field {key!r}.",
                details=[{"field": f"custom_fields.{index}.key", "message": key}],
            )
        field = f"custom_fields.{index}.value"
        try:
            # Every surface's values pass here, whatever its schema did already.
            cleaned = clean_text(str(item.get("value") or ""))
        except ValueError as exc:
            raise CustomFieldInvalidValue(details=[{"field": field, "message": str(exc)}]) from None
        if cleaned is None:
            continue
        value = _check_value(
            CustomFieldType(definition.value_type),
            definition.max_length,
            definition.allowed_values or [],
            cleaned,
            field,
        )
        out.append(CustomFieldValue(key=key, value=value))
    return out


def _check_value(
    value_type: CustomFieldType, max_length: int, allowed: Sequence[str], value: str, field: str
) -> str:
    def refuse(message: str) -> AppError:
        return CustomFieldInvalidValue(details=[{"field": field, "message": message}])

    if len(value) > max_length:
        raise refuse(f"at most {max_length} characters")
    if value_type is CustomFieldType.INTEGER and not _INTEGER.fullmatch(value):
        raise refuse("a whole number")
    if value_type is CustomFieldType.DECIMAL:
        if not _DECIMAL.fullmatch(value):
            raise refuse("a decimal number such as 12.50")
        try:
            Decimal(value)
        except InvalidOperation:
            raise refuse("a decimal number such as 12.50") from None
    if value_type is CustomFieldType.BOOLEAN:
        if value.strip().lower() not in {"true", "false"}:
            raise refuse("true or false")
        value = value.strip().lower()
    if value_type is CustomFieldType.DATE:
        try:
            if not _DATE.fullmatch(value):
                raise ValueError(value)
            dt.date.fromisoformat(value)
        except ValueError:
            raise refuse("a date YYYY-MM-DD") from None
    if allowed and value not in allowed:
        raise refuse("one of the defined values")
    return value
