"""`crm tenants`: create and list tenants, show and change their settings and custom fields, and
a demo tenant."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from crm.cli import demo_data
from crm.cli.common import JsonOption, console, print_json, run_in_session, when
from crm.vocabulary import CustomFieldType

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.runtime import Runtime
    from crm.tenants.schemas import CreatedTenant, TenantInfo

app = typer.Typer(help="Tenants (businesses) and their keys.", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="The business's name, shown in messages."),
    as_json: bool = JsonOption,
) -> None:
    """Create a tenant with a default application and one key of each kind and mode.

    The keys are printed once and cannot be shown again (only their hashes are stored).
    """
    from crm.tenants import service

    async def work(runtime: Runtime, session: AsyncSession) -> CreatedTenant:
        return await service.create_tenant(session, runtime.clock, name)

    created = run_in_session(work)
    if as_json:
        print_json(_tenant_json(created))
        return
    _print_created(created)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List tenants with their number of applications and active keys."""
    from crm.tenants import service

    async def work(runtime: Runtime, session: AsyncSession) -> list[TenantInfo]:
        return await service.list_tenants(session)

    tenants = run_in_session(work)
    if as_json:
        print_json([asdict(t) for t in tenants])
        return
    table = Table("id", "name", "created", "applications", "active keys")
    for t in tenants:
        table.add_row(t.id, t.name, when(t.created_at), str(t.applications), str(t.active_keys))
    console.print(table)


@app.command("settings")
def settings_(
    tenant: str = typer.Argument(..., help="Tenant id."),
    assignments: list[str] = typer.Argument(
        None, help="NAME=VALUE pairs, e.g. sms_daily_limit=2000"
    ),
    unset: list[str] = typer.Option([], "--unset", help="Go back to the default for NAME."),
    as_json: bool = JsonOption,
) -> None:
    """Show or change a tenant's own settings (sms_daily_limit: SMS per UTC day and mode).

    Without assignments, prints each setting as stored and as in effect (the deployment's
    CRM_* default where the tenant sets none), and the SMS counted today.
    """
    from crm.smsguard import service as sms_guard
    from crm.tenants import service
    from crm.tenants.schemas import TENANT_SETTING_RANGES, tenant_settings_from

    try:
        changes = dict(_parse_setting(item) for item in assignments or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    for name in unset:
        if name not in TENANT_SETTING_RANGES:
            known = ", ".join(TENANT_SETTING_RANGES)
            raise typer.BadParameter(f"unknown setting {name!r}; known: {known}")

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        if changes or unset:
            stored = await service.update_tenant_settings(session, tenant, changes, unset)
        else:
            stored = await service.get_tenant_settings(session, tenant)
        own = tenant_settings_from(stored)
        defaults = {"sms_daily_limit": runtime.settings.sms_daily_limit}
        return {
            "id": tenant,
            "settings": stored,
            "effective": {
                name: value if value is not None else defaults[name]
                for name, value in asdict(own).items()
            },
            "sms_sent_today": await sms_guard.sent_today(session, runtime.clock, tenant),
        }

    result = run_in_session(work)
    if as_json:
        print_json(result)
        return
    table = Table("setting", "stored", "in effect")
    for name in TENANT_SETTING_RANGES:
        stored = result["settings"].get(name)
        table.add_row(name, "" if stored is None else str(stored), str(result["effective"][name]))
    console.print(table)
    sent = result["sms_sent_today"]
    console.print(f"SMS today (UTC): live {sent.get('live', 0)}, test {sent.get('test', 0)}")


def _parse_setting(assignment: str) -> tuple[str, int]:
    from crm.tenants.schemas import tenant_setting_value

    name, sep, raw = assignment.partition("=")
    name = name.strip()
    if not sep:
        raise ValueError(f"{assignment!r} is not NAME=VALUE")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return name, tenant_setting_value(name, value)


@app.command("demo")
def demo(
    name: str = typer.Option("Demo", "--name", help="Name of the demo tenant."),
    keys_file: Path = typer.Option(
        Path("var/demo-keys.json"), "--keys-file", help="Where the demo keys are kept (0600)."
    ),
    base_url: str = typer.Option(
        "http://127.0.0.1:8000",
        "--base-url",
        help="Where the server answers: for the sample curl, and kept in the keys file.",
    ),
    with_contacts: int = typer.Option(
        0,
        "--with-contacts",
        min=0,
        max=demo_data.MAX_CONTACTS,
        help="Also create this many sample test-mode contacts (ids demo-00001...; existing "
        "ones are kept, so a re-run adds none twice).",
    ),
) -> None:
    """Create the development tenant if there is none, and print its keys and a first curl.

    Keys are shown once at creation, so the demo keeps its own in a 0600 file for the next
    run (with the base URL, so scripts can read both); when that file is gone, fresh keys are
    issued for the existing tenant.
    """
    from crm.tenants import service

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        saved = _read_keys(keys_file)
        tenant_id = await service.find_tenant_by_name(session, name)
        if tenant_id is not None and saved and saved.get("id") == tenant_id:
            still_valid = all([await runtime.keys.resolve(k) for k in saved["keys"].values()])
            if still_valid:
                return saved
        if tenant_id is None:
            return _tenant_json(await service.create_tenant(session, runtime.clock, name))
        application_id = (await service.list_applications(session, tenant_id))[0].id
        keys = await service.issue_key_set(session, runtime.clock, tenant_id, application_id)
        return {"id": tenant_id, "name": name, "application_id": application_id, "keys": keys}

    data = {**run_in_session(work), "base_url": base_url.rstrip("/")}
    previous = _read_keys(keys_file) or {}

    async def owner(runtime: Runtime, session: AsyncSession) -> dict[str, str]:
        return await demo_data.demo_owner(
            session, runtime.clock, tenant_id=data["id"], name=name, saved=previous.get("console")
        )

    data["console"] = {**run_in_session(owner), "url": f"{data['base_url']}/console/"}
    _write_keys(keys_file, data)
    console.print(f"[bold]Tenant[/bold] {data['name']} ({data['id']}); keys kept in {keys_file}")
    if with_contacts:

        async def populate(runtime: Runtime, session: AsyncSession) -> int:
            return await demo_data.create_contacts(
                session, runtime.clock, tenant_id=data["id"], count=with_contacts
            )

        added = run_in_session(populate)
        console.print(f"Sample contacts (test mode): {added} created, {with_contacts} wanted.")
    for label, key in data["keys"].items():
        console.print(f"  {label:<12} {key}")
    signin = data["console"]
    console.print(
        f"\n[bold]Console[/bold] {signin['url']}  owner {signin['email']}  "
        f"password {signin['password']}",
        soft_wrap=True,
        highlight=False,
    )
    body = (
        '{"first_name": "Ahmed", "last_name": "Samir", "title": "Mr", '
        '"identity": {"provider": "PHONE", "phone_number": "9947823", "country_code": "CYP"}, '
        '"service_acceptance": "true", "email_opt_out": "true", "sms_opt_out": "true"}'
    )
    console.print("\n[bold]Register the guide's example customer (test mode):[/bold]")
    console.print(
        f"curl -s -X POST {base_url}/self-service/v1/contacts/register \\\n"
        f"  -H 'api_key: {data['keys']['public_test']}' -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        "\nThen read the code from the test outbox:\n"
        f"curl -s {base_url}/backoffice/v1/outbox -H 'api_key: {data['keys']['secret_test']}'",
        soft_wrap=True,
        highlight=False,
    )


def _tenant_json(created: CreatedTenant) -> dict[str, Any]:
    return {
        "id": created.id,
        "name": created.name,
        "application_id": created.application_id,
        "keys": created.keys,
    }


def _print_created(created: CreatedTenant) -> None:
    console.print(f"Created tenant [bold]{created.name}[/bold] {created.id}")
    console.print(f"Default application {created.application_id}")
    table = Table("key", "value")
    for label, key in created.keys.items():
        table.add_row(label, key)
    console.print(table)
    console.print("[yellow]Store these keys now: they are not shown again.[/yellow]")


def _read_keys(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return None


def _write_keys(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)


@app.command("custom-fields")
def custom_fields_(
    tenant: str = typer.Argument(..., help="Tenant id."),
    define: list[str] = typer.Option(
        [],
        "--define",
        help="KEY, KEY=TYPE or KEY=TYPE:MAX_LENGTH (TYPE: STRING, INTEGER, DECIMAL, BOOLEAN, "
        "DATE; MAX_LENGTH 1-1024, default 255). Repeatable.",
    ),
    remove: list[str] = typer.Option([], "--remove", help="Remove KEY's definition."),
    as_json: bool = JsonOption,
) -> None:
    """Show or change the custom field keys the tenant's contacts may carry (both modes).

    A contact written with a key not defined here is refused (400 CUSTOM_FIELD_UNDEFINED).
    """
    from crm.contacts import custom_fields
    from crm.contacts.subresource_schemas import definition_out
    from crm.tenants import service

    try:
        parsed = [_parse_definition(item) for item in define]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc

    async def work(runtime: Runtime, session: AsyncSession) -> list[dict[str, Any]]:
        await service.get_tenant_settings(session, tenant)  # an unknown tenant stops here
        for key, value_type, max_length in parsed:
            await custom_fields.define(
                session,
                runtime.clock,
                tenant_id=tenant,
                key=key,
                value_type=value_type,
                max_length=max_length,
                allowed_values=[],
                description=None,
            )
        for key in remove:
            await custom_fields.undefine(session, tenant_id=tenant, key=key)
        rows = await custom_fields.list_definitions(session, tenant)
        return [definition_out(row).model_dump() for row in rows]

    result = run_in_session(work)
    if as_json:
        print_json(result)
        return
    table = Table("key", "type", "max length", "allowed values")
    for item in result:
        table.add_row(
            item["key"], item["type"], str(item["max_length"]), ", ".join(item["allowed_values"])
        )
    console.print(table)


def _parse_definition(item: str) -> tuple[str, CustomFieldType, int]:
    from crm.contacts import custom_fields
    from crm.contacts.custom_fields import MAX_VALUE_LENGTH

    key, _, spec = item.partition("=")
    type_name, _, length = spec.partition(":")
    try:
        value_type = CustomFieldType((type_name or "STRING").strip().upper())
    except ValueError:
        known = ", ".join(CustomFieldType)
        raise ValueError(f"{item!r}: the type is one of {known}") from None
    max_length = int(length) if length.strip().isdigit() else 255
    if (length and not length.strip().isdigit()) or not 1 <= max_length <= MAX_VALUE_LENGTH:
        raise ValueError(f"{item!r}: the max length is a whole number from 1 to 1024")
    if not custom_fields.KEY_PATTERN.fullmatch(key.strip()):
        raise ValueError(f"{item!r}: a key is 1-64 of A-Z a-z 0-9 _ . : -")
    return key.strip(), value_type, max_length
