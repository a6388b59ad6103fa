"""`crm doctor` as an operator runs it: what holds, what to fix, real test messages through the
deployment's providers (a real SMTP server and an HTTP sink), and never a secret on screen."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from crm.deployment.doctor import Status, database_label, trusted_proxies
from crm.settings import Settings
from tests.support.http_sink import HttpSink, ScriptedResponse, free_port
from tests.support.server import TEST_SECRET, crm_env

WEBHOOK_SECRET = "whsec-doctor-" + "w" * 20
SMTP_PASSWORD = "smtp-password-" + "p" * 12
OTHER_SECRET = "another-secret-" + "y" * 40
SECRETS = (TEST_SECRET, WEBHOOK_SECRET, SMTP_PASSWORD, OTHER_SECRET)


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 OK: queued as DOCTOR1"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    def authenticator(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"mailer"
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok)

    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        ready_timeout=5,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


def doctor(tmp_path: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = crm_env(url, **env)
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    document = json.loads(result.stdout)
    assert document["ok"] is (result.returncode == 0)
    return {check["name"]: check for check in document["checks"]}


def no_secret_in(result: subprocess.CompletedProcess[str]) -> None:
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


def providers_env(sink: HttpSink, smtp_port: int) -> dict[str, str]:
    return {
        "CRM_SMS_PROVIDER": "webhook",
        "CRM_SMS_WEBHOOK_URL": sink.url_for("/sms"),
        "CRM_SMS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CRM_EMAIL_PROVIDER": "smtp",
        "CRM_SMTP_HOST": "127.0.0.1",
        "CRM_SMTP_PORT": str(smtp_port),
        "CRM_SMTP_FROM": "Acme <no-reply@acme.example>",
        "CRM_SMTP_USERNAME": "mailer",
        "CRM_SMTP_PASSWORD": SMTP_PASSWORD,
        "CRM_SMTP_STARTTLS": "false",
    }


@pytest.fixture
def upgraded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    result = doctor(tmp_path, url, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return url


def test_a_healthy_deployment_passes_and_sends_real_test_messages(
    tmp_path: Path, upgraded: str, sink: HttpSink, mailbox: tuple[Mailbox, int]
) -> None:
    box, smtp_port = mailbox
    result = doctor(
        tmp_path,
        upgraded,
        "doctor",
        "--json",
        "--send-test-sms",
        "+357 99 123456",
        "--send-test-email",
        "ops@acme.example",
        **providers_env(sink, smtp_port),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    checks = report(result)
    for name in (
        "settings",
        "secret key",
        "database",
        "schema",
        "secret check",
        "database file",
        "sms provider",
        "email provider",
        "test sms",
        "test email",
    ):
        assert checks[name]["status"] == Status.OK, checks[name]
    # A real, signed webhook request and a real email reached the providers.
    (request,) = sink.wait_for_requests_sync(1)
    assert request.json()["to"] == "+35799123456"
    assert request.header("X-CRM-Signature") is not None
    assert len(box.envelopes) == 1
    assert box.envelopes[0].rcpt_tos == ["ops@acme.example"]
    assert "crm doctor" in box.envelopes[0].content.decode()  # type: ignore[union-attr]
    no_secret_in(result)


def test_the_table_names_what_to_fix_and_exits_non_zero(tmp_path: Path, upgraded: str) -> None:
    result = doctor(
        tmp_path,
        upgraded,
        "doctor",
        CRM_SMS_PROVIDER="webhook",
        CRM_SMS_WEBHOOK_URL="http://127.0.0.1:9/sms",
    )
    assert result.returncode == 1
    assert "crm doctor" in result.stdout
    assert "sms provider" in result.stdout
    assert "CRM_SMS_WEBHOOK_SECRET" in result.stdout
    assert "fail" in result.stdout
    no_secret_in(result)


def test_a_failing_test_message_fails_the_report(
    tmp_path: Path, upgraded: str, sink: HttpSink, mailbox: tuple[Mailbox, int]
) -> None:
    sink.script(ScriptedResponse(401, {"error": "bad signature"}))
    env = providers_env(sink, mailbox[1]) | {"CRM_SMTP_PASSWORD": OTHER_SECRET}
    result = doctor(
        tmp_path,
        upgraded,
        "doctor",
        "--json",
        "--send-test-sms",
        "+35799123456",
        "--send-test-email",
        "ops@acme.example",
        **env,
    )
    assert result.returncode == 1
    checks = report(result)
    assert checks["test sms"]["status"] == Status.FAIL
    assert checks["test email"]["status"] == Status.FAIL
    assert checks["sms provider"]["status"] == Status.OK
    no_secret_in(result)


def test_another_secret_fails_the_secret_check(tmp_path: Path, upgraded: str) -> None:
    result = doctor(tmp_path, upgraded, "doctor", "--json", CRM_SECRET_KEY=OTHER_SECRET)
    assert result.returncode == 1
    check = report(result)["secret check"]
    assert check["status"] == Status.FAIL
    assert "CRM_SECRET_KEY" in check["fix"]
    no_secret_in(result)


def test_an_unmigrated_database_fails_the_schema_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    missing = report(doctor(tmp_path, url, "doctor", "--json"))
    assert missing["database"]["status"] == Status.FAIL
    assert "crm db upgrade" in missing["database"]["fix"]
    assert not (tmp_path / "crm.db").exists()  # the doctor creates nothing
    (tmp_path / "crm.db").touch(mode=0o600)
    result = doctor(tmp_path, url, "doctor", "--json")
    assert result.returncode == 1
    assert report(result)["schema"]["status"] == Status.FAIL


def test_an_unreachable_database_is_reported_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://crm:{OTHER_SECRET}@127.0.0.1:{free_port()}/crm"
    result = doctor(tmp_path, url, "doctor", "--json")
    assert result.returncode == 1
    checks = report(result)
    assert checks["database"]["status"] == Status.FAIL
    assert "***" in checks["settings"]["detail"]
    no_secret_in(result)


def test_invalid_settings_are_named_without_their_values(tmp_path: Path) -> None:
    result = doctor(
        tmp_path,
        "sqlite:///crm.db",
        "doctor",
        "--json",
        CRM_ENV="production",
        CRM_SECRET_KEY=OTHER_SECRET,
    )
    assert result.returncode == 1
    assert report(result)["settings"]["status"] == Status.FAIL
    no_secret_in(result)


def test_database_label_masks_the_password() -> None:
    label = database_label(f"postgresql://crm:{OTHER_SECRET}@db.internal:5432/crm")
    assert OTHER_SECRET not in label
    assert "db.internal" in label


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("", Status.OK),
        ("10.0.0.1, 192.168.0.0/16, ::1", Status.OK),
        ("0.0.0.0/0", Status.FAIL),
    ],
)
def test_trusted_proxies_are_checked(value: str, status: Status) -> None:
    settings = Settings(secret_key=TEST_SECRET, trusted_proxies=value, _env_file=None)  # type: ignore[call-arg]
    check = trusted_proxies(settings)
    assert check is not None
    assert check.status == status


@pytest.mark.parametrize("value", ["10.0.0.300", "not-an-address"])
def test_malformed_trusted_proxies_fail_the_settings(
    tmp_path: Path, upgraded: str, value: str
) -> None:
    result = doctor(tmp_path, upgraded, "doctor", "--json", CRM_TRUSTED_PROXIES=value)
    assert result.returncode == 1
    assert report(result)["settings"]["status"] == Status.FAIL
