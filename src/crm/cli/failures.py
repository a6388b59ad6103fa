"""One handler for every command's unexpected failure: a plain line and a non-zero exit.

Operators run these commands by hand and in scripts; a 150-line SQLAlchemy traceback hides the
one thing to do (usually `crm db upgrade`). `CRM_DEBUG=1` shows the traceback for bug reports.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from rich.console import Console

# Exit codes: 1 for a failed command (as AppError handlers already use), 3 for the database.
EXIT_FAILED = 1
EXIT_DATABASE = 3

_MISSING_TABLE_SIGNS = ("no such table", "does not exist", "undefinedtable")


def _debug() -> bool:
    return os.environ.get("CRM_DEBUG", "").lower() in {"1", "true", "yes", "on"}


def explain(exc: BaseException) -> tuple[str, int]:
    """A one-line message for an operator, and the exit code, for an unexpected failure."""
    # Here, not at the top: every command imports this module, few of them need a database.
    from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

    from crm.db import DatabaseMissing

    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    lowered = str(exc).lower()
    if isinstance(exc, DatabaseMissing):
        return (str(exc), EXIT_DATABASE)
    if isinstance(exc, (OperationalError, ProgrammingError)) and any(
        sign in lowered for sign in _MISSING_TABLE_SIGNS
    ):
        return (
            "The database has no crm schema (or an old one): run `crm db upgrade` first.",
            EXIT_DATABASE,
        )
    if isinstance(exc, (DBAPIError, OSError)) and (
        "connect" in lowered or "unable to open" in lowered or "refused" in lowered
    ):
        return (f"Cannot reach the database (CRM_DATABASE_URL): {first}", EXIT_DATABASE)
    if isinstance(exc, DBAPIError):
        return (f"Database error: {first}", EXIT_DATABASE)
    return (f"{type(exc).__name__}: {first}", EXIT_FAILED)


def run_plainly(command: Callable[[], object]) -> None:
    """Run the Typer app; turn any uncaught exception into one line on stderr and an exit code."""
    try:
        command()
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if _debug():
            raise
        message, code = explain(exc)
        console = Console(stderr=True, soft_wrap=True)
        console.print(f"[red]error:[/red] {message}", highlight=False)
        console.print("(set CRM_DEBUG=1 to see the traceback)", style="dim")
        sys.exit(code)
