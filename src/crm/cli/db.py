"""`crm db`: schema migrations."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from crm.cli.common import console, settings
from crm.cli.serve import refuse

if TYPE_CHECKING:
    from crm.settings import Settings

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Migrate the database (CRM_DATABASE_URL) to the current schema. Safe to run repeatedly."""
    from crm.migrate import head_revision, upgrade

    cfg = settings()
    upgrade(cfg)
    console.print(f"Database is at revision [bold]{head_revision()}[/bold].")
    # Record the secret check value now when the secret is known (otherwise at first start).
    if cfg.secret_key is not None or cfg.secret_key_path().exists():
        refuse(asyncio.run(_secret_problem(cfg)))


async def _secret_problem(cfg: Settings) -> str | None:
    from crm.db import create_engine
    from crm.deployment.preflight import secret_problem

    engine = create_engine(cfg)
    try:
        return await secret_problem(engine, cfg, cfg.resolved_secret())
    finally:
        await engine.dispose()


@app.command("current")
def current_command() -> None:
    """Print the database's schema revision; exit 1 when it is behind (scripts can gate on it)."""
    from crm.db import DatabaseMissing, create_engine
    from crm.migrate import current_revision, head_revision

    cfg = settings()

    async def read() -> str | None:
        engine = create_engine(cfg)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    try:
        current = asyncio.run(read())
    except DatabaseMissing as missing:
        # Not there yet is "behind" to a script gating on this command, not a failure to connect.
        console.print(f"revision none: no database at {missing.path}; run `crm db upgrade`")
        raise typer.Exit(1) from None
    head = head_revision()
    state = "up to date" if current == head else f"behind (head is {head}); run `crm db upgrade`"
    console.print(f"revision {current or 'none'}: {state}")
    if current != head:
        raise typer.Exit(1)
