"""`crm identities unlock`: lift the lock too many failed attempts put on a customer's identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import typer

from crm.cli.common import console, run_in_session

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.contacts.models import Contact
    from crm.runtime import Runtime

app = typer.Typer(help="Customers' sign-in identities: unlock a locked one.", no_args_is_help=True)

Mode = Literal["live", "test"]
ACTOR = "cli:identities"


async def _owner(
    session: AsyncSession, tenant_id: str, mode: str, identity_id: str, ref: str | None
) -> Contact:
    """The contact owning `identity_id` in this tenant and mode (the given contact, when named)."""
    from sqlalchemy import select

    from crm.contacts import service as contacts
    from crm.contacts.models import Contact
    from crm.identities.errors import IdentityNotFound
    from crm.identities.models import Identity

    if ref is not None:
        return await contacts.get_by_ref(session, tenant_id, mode, ref)
    contact = await session.scalar(
        select(Contact)
        .join(Identity, Identity.contact_pk == Contact.pk)
        .where(
            Identity.id == identity_id[:36],
            Identity.tenant_id == tenant_id,
            Identity.mode == mode,
            Contact.tenant_id == tenant_id,
            Contact.mode == mode,
        )
    )
    if contact is None:
        raise IdentityNotFound()
    return contact


@app.command("unlock")
def unlock(
    identity_id: str = typer.Argument(..., help="The identity's id (from the identities list)."),
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    mode: Mode = typer.Option(..., "--mode", help="live or test."),
    contact: str | None = typer.Option(
        None, "--contact", help="The owning contact's id or code (checked when given)."
    ),
) -> None:
    """Unlock an identity and restart its failure counts (recorded in the contact's audit trail)."""
    from crm.identities import service as identities

    async def work(runtime: Runtime, session: AsyncSession) -> None:
        owner = await _owner(session, tenant, mode, identity_id, contact)
        await identities.unlock_identity(
            session, runtime.clock, contact=owner, identity_id=identity_id, actor=ACTOR
        )

    run_in_session(work)
    console.print(f"Identity {identity_id} unlocked.")
