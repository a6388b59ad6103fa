"""`crm operators`: the business's console users (create, list, disable, reset a password) and
the tenant's activity log.

Passwords are read from standard input, never from the command line (where `ps` and shell
history would keep them).
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from crm.cli.common import JsonOption, console, print_json, run_in_session, when
from crm.operators.roles import ROLES

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.operators.models import Operator
    from crm.runtime import Runtime

app = typer.Typer(
    help="Operators: the business's people who sign in to the console at /console/.",
    no_args_is_help=True,
)
# One line of input is plenty for a password; a bound keeps a runaway pipe from filling memory.
_MAX_INPUT = 4096


def read_password() -> str:
    """The password: typed without echo on a terminal, else the first line of standard input."""
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass("Password: ")
    if sys.stdin is None:
        return ""
    return sys.stdin.readline(_MAX_INPUT + 1).rstrip("\r\n")


def operator_json(operator: Operator) -> dict[str, Any]:
    return {
        "id": operator.id,
        "tenant_id": operator.tenant_id,
        "email": operator.email,
        "role": operator.role,
        "totp_enabled": operator.totp_secret_encrypted is not None,
        "created_at": operator.created_at,
        "disabled_at": operator.disabled_at,
    }


@app.command("create")
def create(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    email: str = typer.Option(..., "--email", help="The operator's email (their sign-in name)."),
    role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
    as_json: bool = JsonOption,
) -> None:
    """Create an operator; the password is read from standard input (one line)."""
    from crm.operators import service
    from crm.operators.activity import CLI_ACTOR

    password = read_password()

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        created = await service.create_operator(
            session,
            runtime.clock,
            tenant_id=tenant,
            email=email,
            role=role,
            password=password,
            actor=CLI_ACTOR,
        )
        return operator_json(created)

    result = run_in_session(work)
    if as_json:
        print_json(result)
        return
    console.print(f"Created operator {result['email']} ({result['role']}) {result['id']}")


@app.command("list")
def list_(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's operators."),
    as_json: bool = JsonOption,
) -> None:
    """List operators (every tenant's, or one's)."""
    from crm.operators import service

    async def work(runtime: Runtime, session: AsyncSession) -> list[dict[str, Any]]:
        return [operator_json(o) for o in await service.list_operators(session, tenant)]

    rows = run_in_session(work)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "tenant", "email", "role", "created", "disabled")
    for row in rows:
        table.add_row(
            row["id"],
            row["tenant_id"],
            row["email"],
            row["role"],
            when(row["created_at"]),
            when(row["disabled_at"]),
        )
    console.print(table)


@app.command("disable")
def disable(
    operator: str = typer.Argument(..., help="Operator id or email."),
    as_json: bool = JsonOption,
) -> None:
    """Stop an operator signing in and end their console sessions."""
    from crm.operators import service
    from crm.operators.activity import CLI_ACTOR

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        found = await service.get_operator(session, operator)
        disabled = await service.disable_operator(session, runtime.clock, found, actor=CLI_ACTOR)
        return operator_json(disabled)

    result = run_in_session(work)
    if as_json:
        print_json(result)
        return
    console.print(f"Disabled operator {result['email']} {result['id']}")


@app.command("reset-password")
def reset_password(
    operator: str = typer.Argument(..., help="Operator id or email."),
    as_json: bool = JsonOption,
) -> None:
    """Set a new password (read from standard input); ends sessions and lifts a lock."""
    from crm.operators import service
    from crm.operators.activity import CLI_ACTOR

    password = read_password()

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        found = await service.get_operator(session, operator)
        changed = await service.reset_password(
            session, runtime.clock, found, password=password, actor=CLI_ACTOR
        )
        return operator_json(changed)

    result = run_in_session(work)
    if as_json:
        print_json(result)
        return
    console.print(f"New password set for {result['email']} {result['id']}")


@app.command("activity")
def activity_(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    action: str | None = typer.Option(
        None, "--action", help="Only this action (e.g. SIGN_IN_FAILED, KEY_REVOKED)."
    ),
    before: str | None = typer.Option(
        None, "--before", help="Entries older than this entry id (the last id of a page)."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=100, help="At most this many entries."),
    as_json: bool = JsonOption,
) -> None:
    """The tenant's activity log, newest first: sign-ins, failed ones, and changes to operators,
    providers, applications and keys (changes to contacts are in each contact's audit trail)."""
    from crm.errors import InvalidRequest
    from crm.operators import activity
    from crm.vocabulary import OperatorAction

    chosen = None
    if action is not None:
        try:
            chosen = OperatorAction(action.strip().upper())
        except ValueError:
            names = ", ".join(a.value for a in OperatorAction)
            raise InvalidRequest(f"--action must be one of: {names}.") from None

    async def work(runtime: Runtime, session: AsyncSession) -> list[dict[str, Any]]:
        rows = await activity.newest(
            session, tenant_id=tenant, before=before, size=limit, action=chosen
        )
        return [
            {
                "id": row.id,
                "created_at": row.created_at,
                "actor": row.actor,
                "action": row.action,
                "target": row.target,
                "detail": row.detail or {},
                "ip_address": row.ip_address,
            }
            for row in rows
        ]

    rows = run_in_session(work)
    if as_json:
        print_json(rows)
        return
    table = Table("when", "who", "what", "of", "details", "from", "id")
    for row in rows:
        details = "; ".join(f"{k}: {v}" for k, v in sorted(row["detail"].items()))
        table.add_row(
            when(row["created_at"]),
            row["actor"],
            row["action"],
            row["target"] or "",
            details,
            row["ip_address"] or "",
            row["id"],
        )
    console.print(table)
