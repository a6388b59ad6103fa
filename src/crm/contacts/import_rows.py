"""A validated import row's contact columns, as a plain dict rather than an ORM object.

SQLAlchemy's instrumented attributes cost a fifth of an import's validation, and a worker
process sends the values back pickled; the rules are the contact builder's own
(tests/unit/test_import_fast_paths.py compares the two).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from crm.contacts import service
from crm.contacts.models import Contact
from crm.contacts.normalise import _email

_CONTACT_COLUMNS = [c.key for c in Contact.__table__.columns if c.key != "pk"]


def contact_values(contact: Contact) -> dict[str, Any]:
    """The columns of a contact row (those the builder left unset are NULL, as the ORM writes)."""
    return {name: contact.__dict__.get(name) for name in _CONTACT_COLUMNS}


class ContactValues:
    """A validated contact's column values, read as attributes by the batch writes."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


_ASSIGNED = (*service.SIMPLE_FIELDS, *service.CONSENT_FLAGS)


def contact_columns(
    *,
    tenant_id: str,
    mode: str,
    fields: Mapping[str, Any],
    contact_id: str | None,
    code: str | None,
    contact_type: str,
    now: Any,
) -> dict[str, Any]:
    """`contact_values(service.build_contact(...))` built as a plain dict.

    The ORM's instrumented attributes cost a fifth of an import's validation; the rules are the
    builder's own (tests/unit/test_import_fast_paths.py compares the two).
    """
    values: dict[str, Any] = dict.fromkeys(_CONTACT_COLUMNS)
    values.update(
        service.initial_values(
            tenant_id=tenant_id,
            mode=mode,
            contact_id=contact_id,
            code=code,
            contact_type=contact_type,
            now=now,
        )
    )
    for name in _ASSIGNED:
        if name in fields:
            value = fields[name]
            if name in service._LIST_FIELDS and value is None:
                value = []
            if name in service.CONSENT_FLAGS:
                value = bool(value)
            values[name] = value
            if name in service._NORMALISED:
                values[service._NORMALISED[name]] = service.search_form(value)
            if name == "email_address":
                values["email_canonical"] = _email(value, mode == "test")[1] if value else None
    service._check_birth_date(cast(Contact, ContactValues(values)))
    return values
