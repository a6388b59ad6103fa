"""`crm serve`: the HTTP server (uvicorn), refusing to start on an unmigrated database."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from crm.cli.common import err_console, settings

if TYPE_CHECKING:
    from crm.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes (each stateless)."),
) -> None:
    """Serve the HTTP API. Each process also runs a message delivery worker unless
    CRM_WORKER_ENABLED=false."""
    import uvicorn

    from crm.db import create_engine
    from crm.deployment.preflight import secret_problem
    from crm.migrate import current_revision, head_revision

    cfg = settings()
    refuse_bad_settings(cfg)

    async def revision() -> str | None:
        engine = create_engine(cfg)
        try:
            return await current_revision(engine)
        except Exception as exc:
            err_console.print(f"[red]Cannot reach the database:[/red] {type(exc).__name__}: {exc}")
            raise typer.Exit(1) from exc
        finally:
            await engine.dispose()

    current = asyncio.run(revision())
    if current != head_revision():
        err_console.print(
            f"[red]The database is not migrated[/red] (at {current or 'nothing'}, "
            f"needs {head_revision()}). Run `crm db upgrade` first."
        )
        raise typer.Exit(1)
    secret = cfg.resolved_secret()  # create the development secret once, before workers race

    async def secret_check() -> str | None:
        engine = create_engine(cfg)
        try:
            return await secret_problem(engine, cfg, secret)
        finally:
            await engine.dispose()

    refuse(asyncio.run(secret_check()))
    private_metrics = _share_metrics(workers)
    try:
        _run(uvicorn, host, port, workers)
    finally:
        if private_metrics is not None:
            shutil.rmtree(private_metrics, ignore_errors=True)


def _share_metrics(workers: int) -> str | None:
    """Give several workers one fresh, private metrics directory (see crm.metrics), unless the
    operator named one (shared with `crm worker` processes; the operator empties it before a
    start). Returns the directory to remove on exit."""
    from crm.metrics import MULTIPROC_ENV

    if workers < 2 or os.environ.get(MULTIPROC_ENV):
        return None
    # mkdtemp: a new empty directory readable by this user only, so no stale files are summed.
    path = tempfile.mkdtemp(prefix="crm-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def _run(uvicorn: Any, host: str, port: int, workers: int) -> None:
    uvicorn.run(
        "crm.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        # The client address is resolved by crm itself, from CRM_TRUSTED_PROXIES only: uvicorn's
        # own default would believe X-Forwarded-For from any local process.
        proxy_headers=False,
        forwarded_allow_ips="",
        server_header=False,
    )


def refuse_bad_settings(cfg: Settings) -> None:
    """Exit before serving when a deployment provider lacks a setting it needs, or the secret
    is too short."""
    from crm.deployment.preflight import settings_problem

    refuse(settings_problem(cfg))
    if cfg.secret_key is not None:
        try:
            cfg.resolved_secret()
        except ValueError as exc:
            refuse(str(exc))


def refuse(problem: str | None) -> None:
    """Exit 2 with the problem on one line (it names the setting to fix), if there is one."""
    if problem is not None:
        err_console.print(f"[red]Cannot start:[/red] {escape(problem)}", soft_wrap=True)
        raise typer.Exit(2)
