"""`crm doctor`: check a deployment's settings, database, secret and providers, and say what to fix."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from crm.cli.common import JsonOption, console, print_json

if TYPE_CHECKING:
    from pydantic import ValidationError

    from crm.deployment.doctor import Check


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    send_test_sms: str | None = typer.Option(
        None, "--send-test-sms", metavar="NUMBER", help="Send a test SMS to this number."
    ),
    send_test_email: str | None = typer.Option(
        None, "--send-test-email", metavar="ADDRESS", help="Send a test email to this address."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check the settings, the database and its schema, the secret, the message providers and
    the trusted proxies; print what holds and what to fix. Exits 1 when a check fails. Never
    prints a secret. Test messages go through the deployment's own providers."""
    from pydantic import ValidationError

    from crm import logging as crm_logging
    from crm.deployment.doctor import failed, run_checks
    from crm.settings import Settings

    try:
        cfg = Settings()
    except ValidationError as exc:
        report([_invalid_settings(exc)], as_json)
        raise typer.Exit(1) from None
    # Quiet logs: the report is the output (a console provider's test message still shows).
    crm_logging.configure("WARNING", "json" if cfg.log_format == "json" else "console")
    checks = asyncio.run(run_checks(cfg, send_sms_to=send_test_sms, send_email_to=send_test_email))
    report(checks, as_json)
    if failed(checks):
        raise typer.Exit(1)


def _invalid_settings(exc: ValidationError) -> Check:
    from crm.deployment.doctor import Check, Status

    problems = []
    # include_input=False: the rejected value may be a secret.
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        names = [f"CRM_{part}".upper() for part in error["loc"] if isinstance(part, str)]
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{', '.join(names)}: {message}" if names else message)
    return Check("settings", Status.FAIL, "; ".join(problems), "fix the settings named")


def report(checks: list[Check], as_json: bool) -> None:
    from crm.deployment.doctor import Status, failed

    if as_json:
        print_json({"ok": not failed(checks), "checks": [c.as_dict() for c in checks]})
        return
    table = Table("check", "status", "detail", "to fix", title="crm doctor")
    styles = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}
    for check in checks:
        style = styles[check.status]
        table.add_row(
            check.name,
            f"[{style}]{check.status.value}[/{style}]",
            escape(check.detail),
            escape(check.fix),
        )
    console.print(table)
