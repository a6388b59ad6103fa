"""Shared plumbing of the CLI commands: settings, a runtime per command, output helpers.

Every `crm` command, even `--help`, imports this package: the settings, the database and the
services are imported inside the functions that use them, so that a command pays only for what
it runs (tests/unit/test_cli_imports.py keeps it so).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from crm.errors import AppError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.runtime import Runtime
    from crm.settings import Settings

T = TypeVar("T")
console = Console(soft_wrap=True)
# Soft wrap: an error line stays one line, whatever the terminal width, so scripts can grep it.
err_console = Console(stderr=True, soft_wrap=True)

JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout (for scripts).")


def settings() -> Settings:
    from crm import logging as crm_logging
    from crm.settings import Settings

    try:
        cfg = Settings()
    except Exception as exc:  # pydantic's message names the bad variable
        err_console.print(f"[red]Invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from exc
    # Commands talk to people: readable lines on stderr unless JSON logs were asked for.
    crm_logging.configure(cfg.log_level, "json" if cfg.log_format == "json" else "console")
    return cfg


def run_in_session(work: Callable[[Runtime, AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work in its own transaction and exit non-zero with the error code on failure."""
    # Every table must be mapped before a flush (an audit entry references its contact, an
    # outbox row its tenant): the services import only the models they name.
    import crm.models  # noqa: F401
    from crm.runtime import Runtime
    from crm.unit_of_work import session_scope

    async def runner() -> T:
        runtime = Runtime.build(settings())
        try:
            async with session_scope(runtime.sessions) as session:
                return await work(runtime, session)
        finally:
            await runtime.close()

    try:
        return asyncio.run(runner())
    except AppError as exc:
        err_console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=_default) + "\n")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")
