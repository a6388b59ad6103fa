"""The `crm` command line: thin Typer commands over the same services the HTTP API uses.

Importing it registers every command without importing what the commands run (the server, the
migrations, the services and models): each command imports those itself. See crm.cli.common.
"""

from __future__ import annotations

import typer

from crm.cli import applications, contacts, db, doctor, keys, outbox, serve, tenants, worker
from crm.cli import events as events_cli
from crm.cli import identities as identities_cli
from crm.cli import identity_providers as identity_providers_cli
from crm.cli import operators as operators_cli
from crm.cli import templates as templates_cli
from crm.cli import webhooks as webhooks_cli
from crm.cli.failures import run_plainly

app = typer.Typer(
    name="crm",
    help="crm: customer contacts and self-service sign-in. Configure with CRM_* environment "
    "variables (see the README); start with `crm db upgrade` then `crm serve`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crm")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"crm {_installed_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the installed version and exit.",
    ),
) -> None:
    """crm: customer contacts and self-service sign-in."""


app.add_typer(db.app, name="db")
app.add_typer(tenants.app, name="tenants")
app.add_typer(applications.app, name="applications")
app.add_typer(keys.app, name="keys")
app.add_typer(contacts.app, name="contacts")
app.add_typer(outbox.app, name="outbox")
app.add_typer(identities_cli.app, name="identities")
app.add_typer(templates_cli.app, name="templates")
app.add_typer(identity_providers_cli.app, name="identity-providers")
app.add_typer(operators_cli.app, name="operators")
app.add_typer(events_cli.app, name="events")
app.add_typer(webhooks_cli.app, name="webhooks")
serve.register(app)
worker.register(app)
doctor.register(app)


def main() -> None:
    run_plainly(app)
