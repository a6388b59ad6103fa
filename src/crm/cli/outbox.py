"""`crm outbox`: operators list messages (never their bodies) and queue a failed one again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from crm.cli.common import JsonOption, console, print_json, run_in_session, when
from crm.cli.help_text import OUTBOX_STATUSES

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.messaging.service import MessageInfo
    from crm.runtime import Runtime

app = typer.Typer(
    help="The message outbox: list messages, retry a failed one.", no_args_is_help=True
)


def _document(info: MessageInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "tenant_id": info.tenant_id,
        "mode": info.mode,
        "channel": info.channel,
        "recipient": info.recipient,
        "purpose": info.purpose,
        "status": info.status,
        "attempts": info.attempts,
        "provider": info.provider,
        "last_error": info.last_error,
        "created_at": info.created_at,
        "next_attempt_at": info.next_attempt_at,
        "sent_at": info.sent_at,
    }


@app.command("list")
def list_command(
    status: str | None = typer.Option(
        None, "--status", help=f"Only messages in this status: {', '.join(OUTBOX_STATUSES)}."
    ),
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's messages."),
    limit: int = typer.Option(50, "--limit", min=1, max=10000, help="At most this many."),
    as_json: bool = JsonOption,
) -> None:
    """List messages, newest first, with their status, tries and last error (no bodies)."""
    from crm.messaging import service

    async def work(runtime: Runtime, session: AsyncSession) -> list[MessageInfo]:
        return await service.list_messages(session, status=status, tenant_id=tenant, limit=limit)

    messages = run_in_session(work)
    if as_json:
        print_json([_document(m) for m in messages])
        return
    table = Table(
        "id",
        "tenant",
        "mode",
        "channel",
        "purpose",
        "status",
        "tries",
        "last error",
        "created",
        "next try",
    )
    for m in messages:
        table.add_row(
            m.id,
            m.tenant_id,
            m.mode,
            m.channel,
            m.purpose,
            m.status,
            str(m.attempts),
            m.last_error or "",
            when(m.created_at),
            when(m.next_attempt_at) if m.status == "queued" else "",
        )
    console.print(table)


@app.command("retry")
def retry_command(
    message_id: str = typer.Argument(..., help="The message id (from `crm outbox list`)."),
    as_json: bool = JsonOption,
) -> None:
    """Queue a failed, cancelled or possibly sent live message again, with a fresh set of tries.
    A running worker picks it up within its poll interval. For a possibly sent code, check with
    the provider first that it did not go out."""
    from crm.messaging import service

    async def work(runtime: Runtime, session: AsyncSession) -> MessageInfo:
        return await service.retry_message(session, runtime.clock, message_id)

    info = run_in_session(work)
    if as_json:
        print_json(_document(info))
        return
    console.print(f"Message [bold]{info.id}[/bold] is queued again.")
