"""Sample contacts for the demo tenant (`crm tenants demo --with-contacts N`)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from crm.vocabulary import OperatorRole

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.clock import Clock

MAX_CONTACTS = 10_000
MODE = "test"
ACTOR = "cli:demo"
_FIRST = ("Maria", "Andreas", "Eleni", "Nikos", "Sofia", "Yiannis", "Anna", "Kostas", "Zoe")
_LAST = ("Georgiou", "Ioannou", "Christou", "Pavlou", "Demetriou", "Savva", "Nicolaou")


def demo_id(number: int) -> str:
    return f"demo-{number:05d}"


async def create_contacts(
    session: AsyncSession, clock: Clock, *, tenant_id: str, count: int
) -> int:
    """Create the sample contacts 1..count that do not exist yet; returns how many were made.

    Each has a name, an email address and a Cyprus mobile number, all fictional (example.com,
    99xxxxxx), made through the same rules as the Back-Office API's create."""
    from sqlalchemy import select

    from crm.contacts import service as contacts
    from crm.contacts.models import Contact
    from crm.contacts.schemas import ContactCreate

    wanted = [demo_id(n) for n in range(1, count + 1)]
    existing = set(
        await session.scalars(
            select(Contact.id).where(
                Contact.tenant_id == tenant_id, Contact.mode == MODE, Contact.id.in_(wanted)
            )
        )
    )
    made = 0
    for number, contact_id in enumerate(wanted, start=1):
        if contact_id in existing:
            continue
        first = _FIRST[number % len(_FIRST)]
        last = _LAST[(number // len(_FIRST)) % len(_LAST)]
        body = ContactCreate.model_validate(
            {
                "id": contact_id,
                "code": f"DEMO-{number:05d}",
                "first_name": first,
                "last_name": last,
                "email_address": f"{first.lower()}.{last.lower()}.{number}@example.com",
                "phones": [
                    {
                        "phone_type": "MOBILE",
                        "country_code": "CYP",
                        "number": f"99{number:06d}",
                        "is_primary": True,
                    }
                ],
            }
        )
        await contacts.create(
            session,
            clock,
            tenant_id=tenant_id,
            mode=MODE,
            fields=body.contact_fields(only_set=False),
            source="BACK_OFFICE",
            actor=ACTOR,
            contact_id=body.id,
            code=body.code,
        )
        made += 1
    return made


def owner_email(tenant_name: str) -> str:
    """The demo owner's sign-in name, from the tenant's name (`owner@demo.example.com`)."""
    slug = "".join(ch for ch in tenant_name.lower() if ch.isascii() and ch.isalnum())[:40]
    return f"owner@{slug or 'demo'}.example.com"


async def demo_owner(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    name: str,
    saved: dict[str, str] | None,
) -> dict[str, str]:
    """The demo tenant's console owner: the one the keys file remembers while its password still
    works, else created (or given a fresh password) now. Returns its email and password."""
    from crm.operators import service as operators
    from crm.operators.activity import CLI_ACTOR
    from crm.operators.errors import OperatorNotFound
    from crm.security import passwords

    email = owner_email(name)
    try:
        found = await operators.get_operator(session, email, tenant_id)
    except OperatorNotFound:
        found = None
    if found is not None and saved and saved.get("email") == email and saved.get("password"):
        if found.disabled_at is None and await passwords.verify_password(
            found.password_hash, saved["password"]
        ):
            return {"email": email, "password": saved["password"]}
    password = secrets.token_urlsafe(12)
    if found is None:
        await operators.create_operator(
            session,
            clock,
            tenant_id=tenant_id,
            email=email,
            role=OperatorRole.OWNER,
            password=password,
            actor=CLI_ACTOR,
        )
    else:
        found.disabled_at = None
        await operators.reset_password(session, clock, found, password=password, actor=CLI_ACTOR)
    return {"email": email, "password": password}
