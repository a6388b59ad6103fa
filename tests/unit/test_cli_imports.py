"""Every `crm` command starts by importing crm.cli, so that import stays small: the server, the
migrations, the database code and the services are imported by the commands that run them.

Asserted on the modules a fresh interpreter holds, never on time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm.cli import help_text

# What registering and printing help may import from crm itself.
ALLOWED_CRM = {"crm", "crm.errors", "crm.vocabulary", "crm.operators", "crm.operators.roles"}
# Packages only some commands need (a module or anything below it).
NEEDED_BY_SOME_COMMANDS = (
    "uvicorn",
    "alembic",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "pydantic_settings",
    "httpx",
    "prometheus_client",
    "phonenumbers",
)

_LIST_MODULES = "import sys; print('\\n'.join(sorted(sys.modules)))"
# Runs the command line as `crm ARGS` does, then lists the modules it imported.
_RUN_AND_LIST = (
    "import contextlib, io, sys\n"
    "import crm.cli\n"
    "sys.argv = ['crm', *sys.argv[1:]]\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
    "    crm.cli.main()\n" + _LIST_MODULES
)


def _modules(code: str, *args: str, cwd: Path | None = None) -> set[str]:
    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{cwd or '.'}/absent.db"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=cwd,
        env=env,
    )
    return set(done.stdout.split())


def _too_heavy(modules: set[str]) -> list[str]:
    crm = {
        name
        for name in modules
        if (name == "crm" or name.startswith("crm."))
        and not name.startswith("crm.cli")
        and name not in ALLOWED_CRM
    }
    other = {
        name
        for name in modules
        if any(name == top or name.startswith(top + ".") for top in NEEDED_BY_SOME_COMMANDS)
    }
    return sorted(crm | other)


def test_importing_the_command_line_imports_no_command_s_machinery() -> None:
    modules = _modules("import crm.cli\n" + _LIST_MODULES)
    assert "crm.cli.contacts" in modules  # the commands themselves are registered
    assert _too_heavy(modules) == []


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["contacts", "import", "--help"], ["outbox", "list", "--help"]],
)
def test_help_and_version_import_no_command_s_machinery(args: list[str]) -> None:
    modules = _modules(_RUN_AND_LIST, *args)
    assert "typer" in modules
    assert _too_heavy(modules) == []


def test_a_command_still_imports_what_it_runs(tmp_path: Path) -> None:
    # The checks above would pass with commands that import nothing: one that runs must.
    modules = _modules(_RUN_AND_LIST, "db", "current", cwd=tmp_path)
    assert {"sqlalchemy", "crm.settings", "crm.migrate"} <= modules


def test_help_words_are_the_sources_own() -> None:
    from crm.contacts import importer
    from crm.messaging.service import STATUSES

    assert help_text.CONTACT_SCALAR_COLUMNS == importer.SCALAR_COLUMNS
    assert help_text.CONTACT_JSON_COLUMNS == importer.JSON_COLUMNS
    assert help_text.OUTBOX_STATUSES == STATUSES
