"""The `crm` command line: thin Typer commands over the same services the HTTP API uses."""

from __future__ import annotations

import typer

from crm.cli import applications, contacts, db, doctor, keys, outbox, serve, tenants, worker

app = typer.Typer(
    name="crm",
    help="crm: customer contacts and self-service sign-in. Configure with CRM_* environment "
    "variables (see the README); start with `crm db upgrade` then `crm serve`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(tenants.app, name="tenants")
app.add_typer(applications.app, name="applications")
app.add_typer(keys.app, name="keys")
app.add_typer(contacts.app, name="contacts")
app.add_typer(outbox.app, name="outbox")
serve.register(app)
worker.register(app)
doctor.register(app)


def main() -> None:
    app()
