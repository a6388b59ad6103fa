"""`crm operators` as a person runs it: the password comes from standard input, never argv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.settings import Settings
from crm.tenants import service as tenants
from tests.support.server import TEST_SECRET, crm_env


def _crm(tmp_path: Path, url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=crm_env(url),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _tenant(url: str) -> dict[str, str]:
    runtime = Runtime.build(Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None))  # type: ignore[call-arg]
    try:
        async with runtime.sessions() as session:
            created = await tenants.create_tenant(session, runtime.clock, "Cli Shop")
            await session.commit()
    finally:
        await runtime.close()
    return {"id": created.id}


def test_operators_lifecycle_with_the_password_on_stdin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None))  # type: ignore[call-arg]
    tenant = json.loads(
        _crm(tmp_path, url, "tenants", "create", "--name", "Cli Shop", "--json").stdout
    )
    password = "a long and unusual phrase"
    created = _crm(
        tmp_path,
        url,
        "operators", "create", "--tenant", tenant["id"], "--email", "Ops@Shop.example.com",
        "--role", "owner", "--json",
        stdin=password + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    operator = json.loads(created.stdout)
    assert operator["email"] == "ops@shop.example.com" and operator["role"] == "owner"
    assert password not in created.stdout + created.stderr
    listed = json.loads(_crm(tmp_path, url, "operators", "list", "--json").stdout)
    assert [o["email"] for o in listed] == ["ops@shop.example.com"]
    reset = _crm(tmp_path, url, "operators", "reset-password", operator["id"], "--json",
                 stdin="another quite long phrase\n")  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    # The tenant's only owner stays.
    last = _crm(tmp_path, url, "operators", "disable", "ops@shop.example.com")
    assert last.returncode == 1 and "OPERATOR_LAST_OWNER" in last.stderr
    # What the command line did is in the tenant's activity log, attributed to it; the refused
    # disable is not.
    log = _crm(tmp_path, url, "operators", "activity", "--tenant", tenant["id"], "--json")
    assert log.returncode == 0, log.stderr
    entries = [(e["actor"], e["action"], e["target"]) for e in json.loads(log.stdout)]
    assert sorted(entries) == [
        ("command line", "OPERATOR_CREATED", "ops@shop.example.com"),
        ("command line", "PASSWORD_RESET", "ops@shop.example.com"),
    ]
    wrong = _crm(tmp_path, url, "operators", "activity", "--tenant", tenant["id"], "--action", "x")
    assert wrong.returncode != 0 and "--action must be one of" in wrong.stderr
    assert "Traceback" not in wrong.stderr
