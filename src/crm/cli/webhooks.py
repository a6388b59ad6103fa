"""`crm webhooks`: an operator adds, lists and removes a tenant's webhook endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from crm.cli.common import JsonOption, console, print_json, run_in_session
from crm.cli.events import ModeOption, TenantOption, operator

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.runtime import Runtime

app = typer.Typer(help="Webhook endpoints: create, list, delete.", no_args_is_help=True)


@app.command("create")
def create_command(
    url: str = typer.Option(..., "--url", help="Where events are POSTed."),
    tenant: str = TenantOption,
    mode: str = ModeOption,
    events: str = typer.Option("*", "--events", help="Comma-separated event types, or `*`."),
    description: str | None = typer.Option(None, "--description", help="Free text."),
    as_json: bool = JsonOption,
) -> None:
    """Add an endpoint; prints its signing secret, shown only this once."""
    from crm.events import webhooks

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        caller = await operator(session, tenant, mode)
        created = await webhooks.create(
            session,
            settings=runtime.settings,
            server_secret=runtime.secret,
            clock=runtime.clock,
            caller=caller,
            url=url,
            events=[e.strip() for e in events.split(",") if e.strip()],
            description=description,
        )
        return webhooks.public_fields(created.endpoint) | {"secret": created.secret}

    document = run_in_session(work)
    if as_json:
        print_json(document)
        return
    console.print(f"Endpoint [bold]{document['id']}[/bold] for {document['url']}")
    console.print(f"Signing secret (shown only now): {document['secret']}", highlight=False)


@app.command("list")
def list_command(
    tenant: str = TenantOption, mode: str = ModeOption, as_json: bool = JsonOption
) -> None:
    """List a tenant's endpoints in one mode (never their secrets)."""
    from crm.events import webhooks

    async def work(runtime: Runtime, session: AsyncSession) -> list[dict[str, Any]]:
        caller = await operator(session, tenant, mode)
        return [webhooks.public_fields(r) for r in await webhooks.list_endpoints(session, caller)]

    documents = run_in_session(work)
    if as_json:
        print_json(documents)
        return
    table = Table("id", "url", "events", "enabled")
    for d in documents:
        table.add_row(d["id"], d["url"], ",".join(d["events"]), "yes" if d["enabled"] else "no")
    console.print(table)


@app.command("delete")
def delete_command(
    endpoint_id: str = typer.Argument(..., help="The endpoint id."),
    tenant: str = TenantOption,
    mode: str = ModeOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove an endpoint; its queued deliveries are dropped."""
    from crm.events import webhooks

    async def work(runtime: Runtime, session: AsyncSession) -> None:
        caller = await operator(session, tenant, mode)
        await webhooks.delete(session, caller, endpoint_id)

    run_in_session(work)
    if as_json:
        print_json({"id": endpoint_id, "deleted": True})
        return
    console.print(f"Endpoint {endpoint_id} deleted.")
