"""`crm keys`: issue, list and revoke API keys."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from crm.cli.common import JsonOption, console, print_json, run_in_session, when

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.runtime import Runtime
    from crm.tenants.schemas import CreatedKey, KeyInfo

app = typer.Typer(
    help="API keys: public keys for apps, secret keys for servers.", no_args_is_help=True
)


class Kind(StrEnum):
    public = "public"
    secret = "secret"


class Mode(StrEnum):
    test = "test"
    live = "live"


@app.command("create")
def create(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    kind: Kind = typer.Option(..., "--kind", help="public (apps) or secret (servers)."),
    mode: Mode = typer.Option(..., "--mode", help="test or live."),
    application: str | None = typer.Option(
        None, "--application", help="Application of a public key (default: the tenant's first)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Issue a new key. It is printed once; only its hash is stored."""
    from crm.tenants import service

    async def work(runtime: Runtime, session: AsyncSession) -> CreatedKey:
        return await service.create_key(
            session,
            runtime.clock,
            tenant,
            kind.value,
            mode.value,
            application,
        )

    created = run_in_session(work)
    if as_json:
        print_json(
            {"id": created.id, "kind": created.kind, "mode": created.mode, "key": created.key}
        )
        return
    console.print(f"{created.kind} {created.mode} key {created.id}:\n{created.key}")
    console.print("[yellow]Store it now: it is not shown again.[/yellow]")


@app.command("list")
def list_(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."), as_json: bool = JsonOption
) -> None:
    """List a tenant's keys (their visible prefixes, never the keys)."""
    from crm.tenants import service

    async def work(runtime: Runtime, session: AsyncSession) -> list[KeyInfo]:
        return await service.list_keys(session, tenant)

    keys = run_in_session(work)
    if as_json:
        print_json([asdict(k) for k in keys])
        return
    table = Table("id", "kind", "mode", "prefix", "application", "created", "revoked")
    for k in keys:
        table.add_row(
            k.id,
            k.kind,
            k.mode,
            k.display_prefix + "…",
            k.application_id or "",
            when(k.created_at),
            when(k.revoked_at),
        )
    console.print(table)


@app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="Key id (from `crm keys list`)."),
    as_json: bool = JsonOption,
) -> None:
    """Revoke a key. Running servers stop accepting it within CRM_API_KEY_CACHE_SECONDS (5 s)."""
    from crm.tenants import service

    async def work(runtime: Runtime, session: AsyncSession) -> KeyInfo:
        return await service.revoke_key(session, runtime.clock, key_id)

    info = run_in_session(work)
    if as_json:
        print_json(asdict(info))
        return
    console.print(f"Revoked {info.kind} {info.mode} key {info.id} ({info.display_prefix}…).")


import crm.cli.signing  # noqa: E402, F401  (registers `crm keys rotate-signing` on this app)
