"""Every `crm` command against a database it cannot use: one plain message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from crm.cli import app

# One invocation per leaf command, with its required arguments. The test below fails when a
# command is added without an entry here, so every new command is held to the same promise.
INVOCATIONS: dict[str, list[str]] = {
    "serve": ["serve", "--port", "1"],
    "worker": ["worker"],
    "doctor": ["doctor", "--json"],
    "db current": ["db", "current"],
    "tenants create": ["tenants", "create", "--name", "Acme"],
    "tenants list": ["tenants", "list"],
    "tenants demo": ["tenants", "demo"],
    "tenants settings": ["tenants", "settings", "t"],
    "tenants custom-fields": ["tenants", "custom-fields", "t"],
    "applications create": ["applications", "create", "--tenant", "t", "--name", "App"],
    "applications list": ["applications", "list", "--tenant", "t"],
    "applications settings": ["applications", "settings", "app"],
    "keys create": ["keys", "create", "--tenant", "t", "--kind", "public", "--mode", "test"],
    "keys list": ["keys", "list", "--tenant", "t"],
    "keys revoke": ["keys", "revoke", "key"],
    "keys rotate-signing": ["keys", "rotate-signing"],
    "contacts import": ["contacts", "import", "{csv}", "--tenant", "t", "--mode", "test"],
    "contacts export": ["contacts", "export", "--tenant", "t"],
    "outbox list": ["outbox", "list"],
    "outbox retry": ["outbox", "retry", "message"],
    "identities unlock": ["identities", "unlock", "i", "--tenant", "t", "--mode", "test"],
    "identity-providers list": ["identity-providers", "list", "--tenant", "t", "--mode", "test"],
    "identity-providers set": [
        "identity-providers",
        "set",
        "google",
        "--tenant",
        "t",
        "--mode",
        "test",
        "--client-id",
        "c",
    ],
    "identity-providers delete": [
        "identity-providers",
        "delete",
        "google",
        "--tenant",
        "t",
        "--mode",
        "test",
    ],
    "templates list": ["templates", "list", "--tenant", "t", "--mode", "test"],
    "templates set": [
        "templates",
        "set",
        "OTP",
        "en",
        "--tenant",
        "t",
        "--mode",
        "test",
        "--sms",
        "{code}",
    ],
    "templates delete": ["templates", "delete", "OTP", "en", "--tenant", "t", "--mode", "test"],
    "templates preview": ["templates", "preview", "OTP", "en", "--tenant", "t", "--mode", "test"],
    "operators create": [
        "operators",
        "create",
        "--tenant",
        "t",
        "--email",
        "a@example.com",
        "--role",
        "owner",
    ],
    "operators list": ["operators", "list"],
    "operators disable": ["operators", "disable", "a@example.com"],
    "operators reset-password": ["operators", "reset-password", "a@example.com"],
    "operators activity": ["operators", "activity", "--tenant", "t"],
    "events list": ["events", "list", "--tenant", "t"],
    "events show": ["events", "show", "e", "--tenant", "t"],
    "events listen": ["events", "listen", "--tenant", "t", "--forward-to", "http://127.0.0.1:9/"],
    "webhooks create": ["webhooks", "create", "--tenant", "t", "--url", "http://127.0.0.1:9/"],
    "webhooks list": ["webhooks", "list", "--tenant", "t"],
    "webhooks delete": ["webhooks", "delete", "w", "--tenant", "t"],
}
# Commands that need no schema (they create it or only report on it) are left out of the
# unmigrated sweep but still must not crash on an unreachable database.
NEEDS_NO_SCHEMA = {"db upgrade"}
# `doctor` reports every check in its own words (one JSON document here) rather than one line.
OWN_REPORT = {"doctor"}


def leaf_commands() -> set[str]:
    found: set[str] = set()

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, [*path, name])
        else:
            found.add(" ".join(path))

    walk(typer.main.get_command(app), [])
    return found


def crm(
    tmp_path: Path, database_url: str, *args: str, debug: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATABASE_URL"] = database_url
    if debug:
        env["CRM_DEBUG"] = "1"
    env["CRM_SECRET_KEY"] = "cli-errors-" + "s" * 40
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_command_has_an_invocation() -> None:
    assert leaf_commands() - NEEDS_NO_SCHEMA == set(INVOCATIONS)


def _sweep(tmp_path: Path, database_url: str, expected: str) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text("first_name,last_name\nAnn,Lee\n", encoding="utf-8")
    for name, args in INVOCATIONS.items():
        argv = [str(csv) if a == "{csv}" else a for a in args]
        result = crm(tmp_path, database_url, *argv)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"crm {name} exited 0:\n{output}"
        assert "Traceback" not in output, f"crm {name} printed a traceback:\n{output}"
        assert len(output.strip().splitlines()) <= 4, f"crm {name} said too much:\n{output}"
        if name not in OWN_REPORT:
            assert expected in output, f"crm {name} did not say {expected!r}:\n{output}"


def test_unmigrated_database_names_the_fix(tmp_path: Path) -> None:
    _sweep(tmp_path, f"sqlite:///{tmp_path / 'crm.db'}", "crm db upgrade")
    # Only `crm db upgrade` creates a database: no command above left an empty one behind.
    assert not (tmp_path / "crm.db").exists()


def test_a_command_run_elsewhere_creates_no_second_database(tmp_path: Path) -> None:
    """The default URL is relative: from another directory there is no database, and the
    command says where it looked instead of starting an empty one and a new secret there."""
    home = tmp_path / "project"
    elsewhere = tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    default = "sqlite:///./var/crm.db"
    assert crm(home, default, "db", "upgrade").returncode == 0
    assert crm(home, default, "tenants", "list").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    result = subprocess.run(
        [sys.executable, "-m", "crm", "tenants", "list"],
        cwd=elsewhere,
        env=env,  # no CRM_SECRET_KEY either: a development secret must not be generated here
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert str(elsewhere / "var" / "crm.db") in " ".join(result.stderr.split())
    assert "crm db upgrade" in result.stderr
    assert not (elsewhere / "var").exists()


def test_unreachable_database_says_so(tmp_path: Path) -> None:
    # Port 9 on loopback (discard) has no PostgreSQL: the connection is refused at once.
    _sweep(tmp_path, "postgresql://crm@127.0.0.1:9/crm", "Cannot reach the database")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = crm(tmp_path, f"sqlite:///{tmp_path / 'crm.db'}", "tenants", "list", debug=True)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_version(tmp_path: Path) -> None:
    result = crm(tmp_path, f"sqlite:///{tmp_path / 'crm.db'}", "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("crm ")


@pytest.mark.parametrize("migrated", [False, True])
def test_db_current_exit_code(tmp_path: Path, migrated: bool) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    if migrated:
        assert crm(tmp_path, url, "db", "upgrade").returncode == 0
    result = crm(tmp_path, url, "db", "current")
    assert result.returncode == (0 if migrated else 1)
