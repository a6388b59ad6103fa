"""End-to-end tests of examples/: each example runs as its own process against a real `crm serve`.

The Self-Service and Back-Office examples run against a test-mode server on a fresh SQLite
database, configured once by environment variables and once by a keys file shaped like
`var/demo-keys.json`. The webhook receiver example runs as a process that a live-mode server
delivers codes to with the `webhook` SMS provider. Every wait is a bounded poll; everything
listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from crm.messaging.providers.webhook import sign_webhook
from crm.migrate import upgrade
from crm.settings import Settings
from tests.support.http_sink import free_port
from tests.support.selfservice import unique_phone
from tests.support.server import TEST_SECRET, CrmProcess, crm_env

T = TypeVar("T")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT = 30.0  # seconds one example run may take
WAIT = 10.0  # seconds any single poll may take
WEBHOOK_SECRET = "whsec-examples-" + "w" * 24


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# -- the server ---------------------------------------------------------------------------


@dataclass
class Deployment:
    server: CrmProcess
    tenant: dict[str, Any]  # what `crm tenants create --json` printed (same shape as demo-keys)
    keys_file: Path
    env: dict[str, str]  # the deployment's environment, for further `crm` commands


def crm_cli(directory: Path, env: dict[str, str], *args: str) -> Any:
    """Run `python -m crm ARGS --json` and return what it printed; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "crm", *args, "--json"],
        cwd=directory,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    return json.loads(done.stdout)


def start_deployment(tmp_path: Path, **env: str) -> Deployment:
    """A fresh migrated SQLite file, a tenant made by the command line, and `crm serve`."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None))  # type: ignore[call-arg]
    deployment_env = crm_env(url, **env)
    tenant = crm_cli(tmp_path, deployment_env, "tenants", "create", "--name", "Acme")
    keys_file = tmp_path / "demo-keys.json"
    keys_file.write_text(json.dumps(tenant))
    server = CrmProcess.serve(tmp_path, url, **env).start()
    return Deployment(server, tenant, keys_file, deployment_env)


@pytest.fixture
def test_mode(tmp_path: Path) -> Iterator[Deployment]:
    deployment = start_deployment(tmp_path)
    try:
        yield deployment
    finally:
        deployment.server.stop()


def run_example(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run examples/NAME with the caller's environment minus CRM_*, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def succeeded(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "done: every step answered" in done.stdout, done.stdout
    return done.stdout


# -- examples/self_service_signin.py ------------------------------------------------------


def test_self_service_signin_example(test_mode: Deployment) -> None:
    keys = test_mode.tenant["keys"]
    url = test_mode.server.base_url

    # Keys from the environment, default policy: the new code is asked for within the 30 s
    # resend cooldown, and the example explains the 429 instead of failing.
    out = succeeded(
        run_example(
            "self_service_signin.py",
            CRM_URL=url,
            CRM_PUBLIC_KEY=keys["public_test"],
            CRM_SECRET_KEY_API=keys["secret_test"],
        )
    )
    assert re.search(r"^1\. registered \+35799\d{6}: 201", out, re.M), out
    assert re.search(r"^2\. read code \d{6} from the test outbox", out, re.M), out
    assert "3. signed in: contact " in out and "organisation Acme" in out
    assert "4. profile with the bearer token only: Ahmed Samir" in out
    assert "refresh token rotated: True" in out
    assert "5. new code: 429 OTP_RESEND_TOO_SOON (Retry-After: " in out
    assert "the old access token is refused: 401" in out
    assert "and so is its refresh token: 401" in out

    # Keys from a demo-keys.json file, and no cooldown for test keys: the new code is sent,
    # validated, and that second session outlives the first one's sign-out.
    app_id = test_mode.tenant["application_id"]
    crm_cli(
        test_mode.server.cwd,
        test_mode.env,
        "applications",
        "settings",
        app_id,
        "otp_resend_cooldown_seconds=0",
    )
    out = succeeded(
        run_example("self_service_signin.py", "--keys-file", str(test_mode.keys_file), CRM_URL=url)
    )
    assert re.search(r"^5\. new code \d{6} sent to \+357\d+\*+\d+ and validated", out, re.M), out
    assert "the old access token is refused: 401" in out
    assert "the session opened with the new code is still signed in: 200" in out


def test_examples_exit_non_zero_with_the_error_code_and_message(test_mode: Deployment) -> None:
    keys = test_mode.tenant["keys"]
    url = test_mode.server.base_url
    for name in ("self_service_signin.py", "back_office_onboarding.py"):
        # A revoked or mistyped key: the server's error code and message, exit 1.
        failed = run_example(
            name,
            CRM_URL=url,
            CRM_PUBLIC_KEY="pk_test_" + "0" * 32,
            CRM_SECRET_KEY_API=keys["secret_test"],
        )
        assert failed.returncode == 1, failed
        assert "FAILED: " in failed.stderr and "API_KEY_INVALID" in failed.stderr, failed.stderr
        assert "expected 20" in failed.stderr and "got 401" in failed.stderr, failed.stderr
        # No keys at all: a usage message, exit 2.
        missing = run_example(name, CRM_URL=url)
        assert missing.returncode == 2, missing
        assert "--keys-file var/demo-keys.json" in missing.stderr
        # Nothing listening: exit 1 with the reason, not a traceback.
        down = run_example(
            name, "--keys-file", str(test_mode.keys_file), CRM_URL=f"http://127.0.0.1:{free_port()}"
        )
        assert down.returncode == 1, down
        assert "FAILED: cannot reach" in down.stderr and "Traceback" not in down.stderr


# -- examples/back_office_onboarding.py ---------------------------------------------------


def test_back_office_onboarding_example(test_mode: Deployment) -> None:
    keys = test_mode.tenant["keys"]
    env = {
        "CRM_URL": test_mode.server.base_url,
        "CRM_PUBLIC_KEY": keys["public_test"],
        "CRM_SECRET_KEY_API": keys["secret_test"],
    }
    out = succeeded(run_example("back_office_onboarding.py", **env))
    created = re.search(r'^1\. created contact: 201 \{"id": "(ext-[0-9a-f]{8})"\}', out, re.M)
    assert created, out
    contact_id = created.group(1)
    assert (
        f'same Idempotency-Key: 201 {{"id": "{contact_id}"}} (Idempotent-Replayed: true)' in out
    ), out
    assert "2. added a verified EMAIL identity maria.georgiou+" in out
    assert f"found ['{contact_id}']" in out
    assert "Maria Georgiou, id " + contact_id in out
    assert re.search(r"^4\. code sent to \S+; read \d{6} from the test outbox", out, re.M), out
    assert f"signed in as {contact_id} (code CRM-" in out
    assert "profile with the access token: Maria Georgiou" in out

    # Run again: a new contact, not a 409.
    again = succeeded(run_example("back_office_onboarding.py", **env))
    assert contact_id not in again

    # The contact really exists on the server, with its code.
    found = httpx.get(
        f"{test_mode.server.base_url}/backoffice/v1/contacts/{contact_id}",
        headers={"api_key": keys["secret_test"]},
        timeout=10,
    )
    assert found.status_code == 200, found.text
    assert found.json()["code"] == "CRM-" + contact_id.removeprefix("ext-")


# -- examples/webhook_receiver.py ---------------------------------------------------------


@dataclass
class Receiver:
    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def wait_for_line(self, text: str) -> str:
        def probe() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"receiver exited with {self.process.returncode}: "
                    + self.stderr.read_text(errors="replace")[-2000:]
                )
            return next((line for line in self.output().splitlines() if text in line), None)

        return wait_for(probe, f"{text!r} on the receiver's stdout")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    port = free_port()
    stdout, stderr = tmp_path / "receiver.out", tmp_path / "receiver.err"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "webhook_receiver.py"), "--port", str(port)],
            env={**clean, "CRM_SMS_WEBHOOK_SECRET": WEBHOOK_SECRET},
            stdout=out,
            stderr=err,
        )
    running = Receiver(process, f"http://127.0.0.1:{port}", stdout, stderr)
    try:
        running.wait_for_line(f"listening on http://127.0.0.1:{port}")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_webhook_receiver_example_verifies_live_sms_and_refuses_bad_signatures(
    tmp_path: Path, receiver: Receiver
) -> None:
    deployment = start_deployment(
        tmp_path,
        CRM_SMS_PROVIDER="webhook",
        CRM_SMS_WEBHOOK_URL=receiver.url + "/sms",
        CRM_SMS_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CRM_OUTBOX_POLL_SECONDS="0.1",
    )
    live = deployment.tenant["keys"]["public_live"]
    try:
        with httpx.Client(base_url=deployment.server.base_url, timeout=10) as http:
            number = unique_phone()
            phone = f"+357{number}"
            registered = http.post(
                "/self-service/v1/contacts/register",
                headers={"api_key": live},
                json={
                    "first_name": "Ahmed",
                    "last_name": "Samir",
                    "identity": {
                        "provider": "PHONE",
                        "phone_number": number,
                        "country_code": "CYP",
                    },
                    "service_acceptance": "true",
                },
            )
            assert registered.status_code == 201, registered.text
            line = receiver.wait_for_line(f"verified SMS to={phone} ")
            assert f"tenant_id={deployment.tenant['id']}" in line
            # The code the receiver printed signs the contact in.
            code = re.search(r"\b(\d{6})\b", line.split("text=", 1)[1])
            assert code, line
            validated = http.post(
                "/self-service/v2/contacts/validate_otp",
                headers={"api_key": live},
                json={"auth_otp": registered.json()["auth_otp"], "code": code.group(1)},
            )
            assert validated.status_code == 200, validated.text
    finally:
        deployment.server.stop()

    with httpx.Client(base_url=receiver.url, timeout=5) as http:
        body = json.dumps(
            {"to": "+35799000000", "text": "hello", "message_id": "m-1", "tenant_id": "t"}
        ).encode()
        now = int(time.time())
        bad = http.post("/sms", content=body, headers={"X-CRM-Signature": f"t={now},v1={'0' * 64}"})
        assert bad.status_code == 401, bad.text

        # Also refused: no header, another secret, a stale timestamp, a body changed after signing.
        def signature(secret: str, timestamp: int) -> dict[str, str]:
            return {"X-CRM-Signature": sign_webhook(secret, body, timestamp=timestamp)}

        for headers, content in (
            ({}, body),
            (signature("another-secret-" + "x" * 16, now), body),
            (signature(WEBHOOK_SECRET, now - 301), body),
            (signature(WEBHOOK_SECRET, now), body + b" "),
        ):
            refused = http.post("/sms", content=content, headers=headers)
            assert refused.status_code == 401, (headers, refused.text)
        # Correctly signed (by crm's own signer): delivered once; the same message_id again is
        # acknowledged with 200 so crm stops retrying, and not delivered twice.
        for _ in range(2):
            accepted = http.post("/sms", content=body, headers=signature(WEBHOOK_SECRET, now))
            assert accepted.status_code == 200, accepted.text
            assert accepted.json() == {"id": "m-1"}
    receiver.wait_for_line("duplicate message_id=m-1 ignored")
    printed = receiver.output()
    assert printed.count("verified SMS to=+35799000000 message_id=m-1 ") == 1, printed
    assert "refused" not in printed  # refusals go to stderr, never print a message
