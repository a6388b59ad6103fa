"""`crm identity-providers set|list|delete`: the OpenID Connect providers a tenant's customers
sign in with (Google, Apple, Facebook, any issuer), per mode."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.table import Table

from crm.cli.common import JsonOption, console, print_json, run_in_session, when

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.runtime import Runtime
    from crm.social import configs

app = typer.Typer(
    help="Identity providers customers sign in with: google, apple, facebook (Limited Login) "
    "and oidc (any OpenID Connect issuer). Client secrets and Apple's private keys are stored "
    "encrypted and shown masked.",
    no_args_is_help=True,
)

Mode = Literal["live", "test"]
TenantOption = typer.Option(..., "--tenant", help="Tenant id.")
ModeOption = typer.Option(..., "--mode", help="live or test: sign-ins with keys of that mode.")
TypeArgument = typer.Argument(..., help="google, apple, facebook or oidc.")
# A .p8 file is about 250 characters; the bound keeps a wrong file or a runaway pipe small.
_MAX_KEY_FILE = 8192


def _read_key(path: Path | None) -> str | None:
    """The private key's text from a file, or from standard input for `-`: never from argv,
    where other users of the machine and the shell history would see it."""
    if path is None:
        return None
    try:
        if str(path) == "-":
            text = sys.stdin.read(_MAX_KEY_FILE + 1) if sys.stdin is not None else ""
        else:
            with path.open(encoding="utf-8") as handle:
                text = handle.read(_MAX_KEY_FILE + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(
            f"cannot read the key: {exc}", param_hint="--private-key-file"
        ) from None
    if len(text) > _MAX_KEY_FILE:
        raise typer.BadParameter("is not a .p8 file (too long)", param_hint="--private-key-file")
    return text


def _document(view: configs.ProviderView) -> dict[str, Any]:
    return {
        "type": view.type,
        "provider": view.provider,
        "issuer": view.issuer,
        "client_id": view.client_id,
        "client_secret": view.client_secret,
        "audiences": view.audiences,
        "applications": view.applications,
        "updated_at": view.updated_at,
        "team_id": view.team_id,
        "key_id": view.key_id,
        "private_key": view.private_key,
    }


@app.command("list")
def list_command(
    tenant: str = TenantOption, mode: Mode = ModeOption, as_json: bool = JsonOption
) -> None:
    """List the tenant's identity providers of one mode (client secrets masked)."""
    from crm.social import configs

    async def work(runtime: Runtime, session: AsyncSession) -> list[configs.ProviderView]:
        return await configs.list_providers(session, runtime.secret, tenant, mode)

    views = run_in_session(work)
    if as_json:
        print_json([_document(v) for v in views])
        return
    table = Table(
        "type", "issuer", "client id", "secret", "key", "audiences", "applications", "updated"
    )
    for view in views:
        table.add_row(
            view.type,
            view.issuer,
            view.client_id,
            view.client_secret or "",
            f"{view.team_id}/{view.key_id} {view.private_key}" if view.private_key else "",
            ",".join(view.audiences),
            ",".join(view.applications),
            when(view.updated_at),
        )
    console.print(table)


@app.command("set")
def set_command(
    kind: str = TypeArgument,
    tenant: str = TenantOption,
    mode: Mode = ModeOption,
    client_id: str = typer.Option(..., "--client-id", help="The OAuth client id (the aud)."),
    issuer: str | None = typer.Option(
        None, "--issuer", help="Required for oidc; defaults to the real one for the others."
    ),
    client_secret: str | None = typer.Option(
        None,
        "--client-secret",
        envvar="CRM_IDP_CLIENT_SECRET",
        help="Needed for redirect sign-in; left out, the stored one stays (unless the issuer "
        "changes). Also read from CRM_IDP_CLIENT_SECRET, to keep it out of shell history.",
        show_envvar=False,
    ),
    audiences: list[str] = typer.Option(
        [], "--audience", help="A further accepted client id (repeat for more)."
    ),
    applications: list[str] = typer.Option(
        [], "--application", help="Only this application may use it (repeat for more)."
    ),
    team_id: str | None = typer.Option(
        None, "--team-id", help="apple: the Apple Developer team id (10 characters)."
    ),
    key_id: str | None = typer.Option(
        None, "--key-id", help="apple: the Sign in with Apple key's id (10 characters)."
    ),
    private_key_file: Path | None = typer.Option(
        None,
        "--private-key-file",
        help="apple: the key's .p8 file, or - for standard input. With --team-id and --key-id, "
        "crm signs a short-lived client secret for each sign-in instead of --client-secret; "
        "left out, the stored key stays (unless the issuer changes or both ids are left out).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Set (create or replace) an identity provider of the tenant for one mode."""
    from crm.social import configs
    from crm.tenants.errors import TenantNotFound
    from crm.tenants.models import Tenant

    body = {
        "issuer": issuer,
        "client_id": client_id,
        "client_secret": client_secret,
        "audiences": audiences,
        "applications": applications,
        "team_id": team_id,
        "key_id": key_id,
        "private_key": _read_key(private_key_file),
    }

    async def work(runtime: Runtime, session: AsyncSession) -> configs.ProviderView:
        if await session.get(Tenant, tenant) is None:
            raise TenantNotFound()
        return await configs.put_provider(
            session,
            runtime.clock,
            secret=runtime.secret,
            production=runtime.settings.env == "production",
            private_addresses_allowed=runtime.settings.private_provider_urls_allowed,
            tenant_id=tenant,
            mode=mode,
            kind=kind,
            body=body,
        )

    view = run_in_session(work)
    if as_json:
        print_json(_document(view))
        return
    console.print(f"{view.type}: {view.issuer} (client {view.client_id}) set for {mode} keys")


@app.command("delete")
def delete_command(
    kind: str = TypeArgument,
    tenant: str = TenantOption,
    mode: Mode = ModeOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove an identity provider; identities it signed in stay on their contacts."""
    from crm.social import configs

    async def work(runtime: Runtime, session: AsyncSession) -> None:
        await configs.delete_provider(session, tenant, mode, kind)

    run_in_session(work)
    if as_json:
        print_json({"type": kind.strip().lower(), "deleted": True})
        return
    console.print(f"{kind} removed for {mode} keys")
