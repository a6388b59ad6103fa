"""`crm applications`: a tenant's apps and portals, each with its own public keys and sign-in policy."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from crm.cli.common import JsonOption, console, print_json, run_in_session, when
from crm.errors import InvalidCountry

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.runtime import Runtime

app = typer.Typer(
    help="Applications (apps and portals): public keys and self-service policy.",
    no_args_is_help=True,
)


@functools.cache
def _policy_fields() -> dict[str, dataclasses.Field[Any]]:
    """The settings an application may override: the fields of the sign-in policy."""
    from crm.identities.policy import Policy

    return {f.name: f for f in dataclasses.fields(Policy)}


@app.command("create")
def create(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    name: str = typer.Option(..., "--name", help="The app's or portal's name."),
    as_json: bool = JsonOption,
) -> None:
    """Add an application with its own public test and live keys (printed once)."""
    from crm.tenants import service

    async def work(runtime: Runtime, session: AsyncSession) -> tuple[str, dict[str, str]]:
        return await service.create_application(session, runtime.clock, tenant, name)

    application_id, keys = run_in_session(work)
    if as_json:
        print_json({"id": application_id, "name": name, "keys": keys})
        return
    console.print(f"Created application [bold]{name}[/bold] {application_id}")
    for label, key in keys.items():
        console.print(f"  {label:<12} {key}")
    console.print("[yellow]Store these keys now: they are not shown again.[/yellow]")


@app.command("list")
def list_(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."), as_json: bool = JsonOption
) -> None:
    """List a tenant's applications and the settings each overrides."""
    from crm.tenants import service

    async def work(runtime: Runtime, session: AsyncSession) -> list[dict[str, Any]]:
        rows = await service.list_applications(session, tenant)
        return [
            {"id": a.id, "name": a.name, "created_at": a.created_at, "settings": a.settings}
            for a in rows
        ]

    rows = run_in_session(work)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "created", "settings")
    for row in rows:
        table.add_row(row["id"], row["name"], when(row["created_at"]), json.dumps(row["settings"]))
    console.print(table)


@app.command("settings")
def settings_(
    application: str = typer.Argument(..., help="Application id."),
    assignments: list[str] = typer.Argument(
        None,
        help="NAME=VALUE pairs, e.g. otp_resend_cooldown_seconds=0 strict_phone_validation=true",
    ),
    unset: list[str] = typer.Option([], "--unset", help="Go back to the default for NAME."),
    as_json: bool = JsonOption,
) -> None:
    """Show or change an application's self-service policy (OTP limits, phone strictness, links,
    per-client limits, allowed browser origins).

    Without assignments, prints the effective policy for live and test keys. Values are clamped
    to safe ranges when used (a code never lives more than 10 minutes; only test keys may have
    no resend cooldown).
    """
    from crm.identities.policy import client_limit_defaults, from_settings
    from crm.tenants import service

    changes = dict(_parse(item) for item in assignments or [])
    for name in unset:
        if name not in _policy_fields():
            raise _unknown(name)

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        if changes or unset:
            stored = await service.update_application_settings(session, application, changes, unset)
        else:
            stored = (await service.get_application(session, application)).settings or {}
        return {
            "id": application,
            "settings": stored,
            "effective": {
                mode: dataclasses.asdict(
                    from_settings(stored, mode, client_limit_defaults(runtime.settings))
                )
                for mode in ("live", "test")
            },
        }

    result = run_in_session(work)
    if as_json:
        print_json(result)
        return
    table = Table("setting", "stored", "live", "test")
    for name in _policy_fields():
        table.add_row(
            name,
            json.dumps(result["settings"][name]) if name in result["settings"] else "",
            str(result["effective"]["live"][name]),
            str(result["effective"]["test"][name]),
        )
    console.print(table)


# What an operator typed wrong, in words rather than Python type names.
_KIND_WORDS = {int: "a whole number", bool: "true or false", str: "text", float: "a number"}


def _parse(assignment: str) -> tuple[str, Any]:
    from crm.identifiers.core import normalize_country
    from crm.identities.policy import EmailPasswordRegistration, origin_problem, parse_sms_countries
    from crm.social.redirect import redirect_url_problem

    name, sep, raw = assignment.partition("=")
    name = name.strip()
    if not sep or name not in _policy_fields():
        raise _unknown(name)
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    default = _policy_fields()[name].default
    expected: tuple[type, ...] = (str, type(None)) if default is None else (type(default),)
    if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
        wanted = " or ".join(
            _KIND_WORDS.get(t, t.__name__) for t in expected if t is not type(None)
        )
        raise typer.BadParameter(f"{name} needs {wanted}")
    registration_choices = tuple(choice.value for choice in EmailPasswordRegistration)
    if name == "email_password_registration" and value not in registration_choices:
        choices = " or ".join(registration_choices)
        raise typer.BadParameter(f"email_password_registration needs {choices}")
    if name == "sms_countries" and isinstance(value, str):
        try:
            value = ",".join(parse_sms_countries(value))
        except InvalidCountry as exc:
            raise typer.BadParameter(exc.message) from exc
    if name == "default_country" and isinstance(value, str):
        try:
            value = normalize_country(value)
        except InvalidCountry as exc:
            raise typer.BadParameter(exc.message) from exc
    if name == "allowed_origins" and isinstance(value, str) and origin_problem(value):
        raise typer.BadParameter(f"allowed_origins: {origin_problem(value)}")
    if name == "oidc_redirect_urls" and isinstance(value, str) and redirect_url_problem(value):
        raise typer.BadParameter(f"oidc_redirect_urls: {redirect_url_problem(value)}")
    return name, value


def _unknown(name: str) -> typer.BadParameter:
    known = ", ".join(_policy_fields())
    return typer.BadParameter(f"unknown setting {name!r}; known: {known}")
