"""`crm events`: read a tenant's events, and follow new ones to a local URL (`listen`)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from crm.cli.common import JsonOption, console, err_console, print_json, run_in_session, settings
from crm.errors import AppError

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.events.models import Event
    from crm.runtime import Runtime
    from crm.tenants.schemas import CallerKey

app = typer.Typer(help="Events: list, show, and forward new ones to a URL.", no_args_is_help=True)

TenantOption = typer.Option(..., "--tenant", help="Tenant id.")
ModeOption = typer.Option("live", "--mode", help="`test` or `live`.")
# Events that commit late (a long transaction) are still caught within this window.
_LOOKBACK = timedelta(seconds=30)


async def operator(session: AsyncSession, tenant_id: str, mode: str) -> CallerKey:
    """The operator acting for a tenant in one mode, as a secret key of that mode would."""
    from crm.tenants.errors import TenantNotFound
    from crm.tenants.models import Tenant
    from crm.tenants.schemas import CallerKey

    if mode not in ("test", "live"):
        raise typer.BadParameter("must be test or live", param_hint="--mode")
    found = await session.get(Tenant, tenant_id) if len(tenant_id) <= 36 else None
    if found is None:
        raise TenantNotFound()
    return CallerKey(
        key_id=None,
        tenant_id=found.id,
        tenant_name=found.name,
        application_id=None,
        kind="secret",
        mode=mode,  # type: ignore[arg-type]
    )


@app.command("list")
def list_command(
    tenant: str = TenantOption,
    mode: str = ModeOption,
    type: str | None = typer.Option(None, "--type", help="Only this event type."),
    contact: str | None = typer.Option(None, "--contact", help="Only this contact's id."),
    limit: int = typer.Option(20, "--limit", min=1, max=100, help="At most this many."),
    as_json: bool = JsonOption,
) -> None:
    """List a tenant's events in one mode, newest first."""
    from crm.events import queries
    from crm.events.service import event_document

    async def work(runtime: Runtime, session: AsyncSession) -> list[dict[str, Any]]:
        caller = await operator(session, tenant, mode)
        page = await queries.list_events(
            session, caller, type=type, contact_id=contact, page=1, size=limit
        )
        return [event_document(e) for e in page.events]

    documents = run_in_session(work)
    if as_json:
        print_json(documents)
        return
    table = Table("id", "type", "created", "contact")
    for d in documents:
        contact_of = d["data"].get("contact") or {}
        table.add_row(d["id"], d["type"], str(d["created"]), contact_of.get("id", ""))
    console.print(table)


@app.command("show")
def show_command(
    event_id: str = typer.Argument(..., help="The event id."),
    tenant: str = TenantOption,
    mode: str = ModeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one event as webhooks receive it."""
    from crm.events import queries
    from crm.events.service import event_document

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        caller = await operator(session, tenant, mode)
        return event_document(await queries.get_event(session, caller, event_id))

    document = run_in_session(work)
    if as_json:
        print_json(document)
        return
    console.print_json(json.dumps(document))


@app.command("listen")
def listen_command(
    forward_to: str = typer.Option(..., "--forward-to", help="The URL to POST events to."),
    tenant: str = TenantOption,
    mode: str = typer.Option("test", "--mode", help="`test` or `live`."),
    secret: str | None = typer.Option(
        None, "--secret", help="Sign with this secret (default: a new one, printed at start)."
    ),
    max_events: int | None = typer.Option(
        None, "--max-events", min=1, help="Stop after forwarding this many events."
    ),
    poll: float = typer.Option(0.5, "--poll", min=0.05, max=60, help="Seconds between looks."),
) -> None:
    """Follow the tenant's new events and POST each, signed like a webhook, to a URL (a local
    receiver under development). Runs until interrupted or --max-events."""
    from crm.events.webhooks import new_signing_secret

    if not forward_to.startswith(("http://", "https://")):
        raise typer.BadParameter("must be an http:// or https:// URL", param_hint="--forward-to")
    signing = secret or new_signing_secret()
    try:
        asyncio.run(_listen(forward_to, tenant, mode, signing, max_events, poll))
    except AppError as exc:
        err_console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        return


async def _listen(
    url: str, tenant: str, mode: str, secret: str, max_events: int | None, poll: float
) -> None:
    import httpx
    from sqlalchemy import select

    import crm.models  # noqa: F401
    from crm.events.models import Event
    from crm.runtime import Runtime

    runtime = Runtime.build(settings())
    forwarded = 0
    seen: dict[str, float] = {}
    try:
        async with runtime.sessions() as session:
            await operator(session, tenant, mode)
        started = runtime.clock.now()
        err_console.print(
            f"Ready. Forwarding {mode}-mode events to {url}; signing secret: {secret}",
            highlight=False,
        )
        async with httpx.AsyncClient(follow_redirects=False, timeout=10.0) as client:
            while max_events is None or forwarded < max_events:
                since = max(started, runtime.clock.now() - _LOOKBACK)
                async with runtime.sessions() as session:
                    rows = list(
                        await session.scalars(
                            select(Event)
                            .where(
                                Event.tenant_id == tenant,
                                Event.mode == mode,
                                Event.created_at >= since,
                            )
                            .order_by(Event.created_at, Event.id)
                            .limit(500)
                        )
                    )
                for event in rows:
                    if event.id in seen:
                        continue
                    seen[event.id] = time.monotonic()
                    await _forward(client, url, secret, event)
                    forwarded += 1
                    if max_events is not None and forwarded >= max_events:
                        return
                horizon = time.monotonic() - 2 * _LOOKBACK.total_seconds()
                for old in [k for k, t in seen.items() if t < horizon]:
                    del seen[old]
                await asyncio.sleep(poll)
    finally:
        await runtime.close()


async def _forward(client: httpx.AsyncClient, url: str, secret: str, event: Event) -> None:
    import httpx

    from crm.events.delivery import headers_for
    from crm.events.service import event_document

    body = json.dumps(event_document(event), ensure_ascii=False, separators=(",", ":")).encode()
    try:
        response = await client.post(
            url, content=body, headers=headers_for([secret], body, event.id)
        )
        outcome = str(response.status_code)
    except httpx.HTTPError as exc:
        outcome = f"failed ({type(exc).__name__})"
    console.print(f"{event.type} {event.id} -> {outcome}", highlight=False)
