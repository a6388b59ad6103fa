"""`crm serve` and `crm worker` refuse to start, with one line naming the setting to fix, when a
deployment provider's settings are incomplete or the server secret cannot read the database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm.migrate import upgrade
from tests.support.databases import migrated_database, settings_for
from tests.support.http_sink import free_port
from tests.support.server import TEST_SECRET, CrmProcess, crm_env

OTHER_SECRET = "another-secret-" + "y" * 40
WEBHOOK_SECRET = "whsec-" + "s" * 24
TWILIO_TOKEN = "twilio-token-" + "t" * 20


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of its own: a wrong secret must never meet the shared one."""
    with migrated_database(request.param, tmp_path) as url:
        yield url


def run_crm(tmp_path: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command expected to end by itself; one that serves instead times out (and fails)."""
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=crm_env(url, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refusal_line(result: subprocess.CompletedProcess[str], setting: str) -> str:
    """The one line that names `setting`, after checking the process refused to start."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if setting in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Cannot start:"), lines[0]
    return lines[0]


def serve_args() -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", str(free_port())]


INCOMPLETE = [
    pytest.param(
        {"CRM_SMS_PROVIDER": "webhook", "CRM_SMS_WEBHOOK_URL": "http://127.0.0.1:9/sms"},
        "CRM_SMS_WEBHOOK_SECRET",
        id="webhook-without-secret",
    ),
    pytest.param(
        {"CRM_SMS_PROVIDER": "webhook", "CRM_SMS_WEBHOOK_SECRET": WEBHOOK_SECRET},
        "CRM_SMS_WEBHOOK_URL",
        id="webhook-without-url",
    ),
    pytest.param(
        {"CRM_EMAIL_PROVIDER": "smtp", "CRM_SMTP_FROM": "Acme <no-reply@acme.example>"},
        "CRM_SMTP_HOST",
        id="smtp-without-host",
    ),
    pytest.param(
        {"CRM_EMAIL_PROVIDER": "smtp", "CRM_SMTP_HOST": "127.0.0.1"},
        "CRM_SMTP_FROM",
        id="smtp-without-from",
    ),
    pytest.param(
        {"CRM_SMS_PROVIDER": "twilio", "CRM_TWILIO_AUTH_TOKEN": TWILIO_TOKEN},
        "CRM_TWILIO_ACCOUNT_SID",
        id="twilio-without-account",
    ),
    pytest.param(
        {
            "CRM_SMS_PROVIDER": "twilio",
            "CRM_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "CRM_TWILIO_FROM_NUMBER": "+15005550006",
        },
        "CRM_TWILIO_AUTH_TOKEN",
        id="twilio-without-token",
    ),
]


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize(("env", "setting"), INCOMPLETE)
def test_incomplete_provider_settings_stop_the_process_naming_the_setting(
    tmp_path: Path, command: str, env: dict[str, str], setting: str
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(settings_for(url))
    args = serve_args() if command == "serve" else ["worker"]
    line = refusal_line(run_crm(tmp_path, url, *args, **env), setting)
    # Never the values of the settings that were given.
    assert WEBHOOK_SECRET not in line and TWILIO_TOKEN not in line


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_short_secret_stops_the_process_naming_the_setting(tmp_path: Path, command: str) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(settings_for(url))
    args = serve_args() if command == "serve" else ["worker"]
    result = run_crm(tmp_path, url, *args, CRM_SECRET_KEY="too-short-secret")
    refusal_line(result, "CRM_SECRET_KEY")
    assert "too-short-secret" not in result.stderr + result.stdout


def test_twilio_without_a_sender_names_both_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(settings_for(url))
    env = {
        "CRM_SMS_PROVIDER": "twilio",
        "CRM_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "CRM_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    }
    line = refusal_line(run_crm(tmp_path, url, *serve_args(), **env), "CRM_TWILIO_FROM_NUMBER")
    assert "CRM_TWILIO_MESSAGING_SERVICE_SID" in line
    assert TWILIO_TOKEN not in line


def test_another_secret_stops_serve_and_worker_naming_the_setting(
    tmp_path: Path, fresh_url: str
) -> None:
    # The first start records the check value with the secret the database is written with.
    with CrmProcess.serve(tmp_path, fresh_url):
        pass
    other = {"CRM_SECRET_KEY": OTHER_SECRET}
    for args in (serve_args(), ["worker"]):
        result = run_crm(tmp_path, fresh_url, *args, **other)
        line = refusal_line(result, "CRM_SECRET_KEY")
        assert "another secret" in line
        assert OTHER_SECRET not in result.stderr + result.stdout
        assert TEST_SECRET not in result.stderr + result.stdout
    # The right secret still starts, and the refused starts recorded nothing.
    with CrmProcess.serve(tmp_path, fresh_url, name="again") as again:
        assert again.running


def test_db_upgrade_records_the_check_value(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgraded = run_crm(tmp_path, url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    result = run_crm(tmp_path, url, *serve_args(), CRM_SECRET_KEY=OTHER_SECRET)
    refusal_line(result, "CRM_SECRET_KEY")
    # Upgrading again with the wrong secret says so too, after migrating.
    again = run_crm(tmp_path, url, "db", "upgrade", CRM_SECRET_KEY=OTHER_SECRET)
    refusal_line(again, "CRM_SECRET_KEY")


def test_a_database_written_before_check_values_is_judged_by_its_encrypted_rows(
    tmp_path: Path,
) -> None:
    """A signing key sealed with the right secret, and no check value yet: the wrong secret is
    refused rather than recorded as the database's own."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(settings_for(url))
    rotated = run_crm(tmp_path, url, "keys", "rotate-signing")
    assert rotated.returncode == 0, rotated.stderr
    refusal_line(run_crm(tmp_path, url, "worker", CRM_SECRET_KEY=OTHER_SECRET), "CRM_SECRET_KEY")
    with CrmProcess.serve(tmp_path, url) as server:
        assert server.running
    refusal_line(
        run_crm(tmp_path, url, *serve_args(), CRM_SECRET_KEY=OTHER_SECRET), "CRM_SECRET_KEY"
    )
