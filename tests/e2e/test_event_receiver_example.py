"""examples/event_receiver.py as its own process, fed by `crm events listen --forward-to`: events
of a CSV import arrive signed and are printed; a repeated id is ignored; a stale, forged or
missing signature is answered 401. SQLite only: the database is not what is under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from crm.messaging.providers.webhook import sign_webhook
from tests.support.databases import migrated_database
from tests.support.http_sink import free_port
from tests.support.server import crm_env

T = TypeVar("T")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "event_receiver.py"
SECRET = "whsec_example_" + "k" * 24
WAIT = 15.0


def wait_for(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + WAIT
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT}s waiting for {what}")
        time.sleep(0.05)


def crm(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    out = tmp_path / "receiver.out"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", str(port)],
            env={**clean, "CRM_WEBHOOK_SECRET": SECRET},
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    try:
        wait_for(lambda: "listening" in out.read_text(), "the receiver to listen")
        yield f"http://127.0.0.1:{port}/events", out
    finally:
        process.terminate()
        process.wait(5)


def test_listen_forwards_signed_events_to_the_example_receiver(
    tmp_path: Path, receiver: tuple[str, Path]
) -> None:
    url, out = receiver
    listen_args = ["--mode", "test", "--forward-to", url, "--secret", SECRET]
    listen_args += ["--max-events", "2", "--poll", "0.1"]
    with migrated_database("sqlite", tmp_path) as database_url:
        env = crm_env(database_url)
        created = crm(env, tmp_path, "tenants", "create", "--name", "Listen Co", "--json")
        assert created.returncode == 0, created.stderr
        tenant = json.loads(created.stdout)["id"]
        listen_err = tmp_path / "listen.err"
        with listen_err.open("wb") as err:
            listen = subprocess.Popen(
                [sys.executable, "-m", "crm", "events", "listen", *listen_args, "--tenant", tenant],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            wait_for(lambda: "Ready" in listen_err.read_text(), "listen to start")
            csv = tmp_path / "people.csv"
            csv.write_text("first_name,last_name\nAnn,Lee\nBo,Kim\n", encoding="utf-8")
            imported = crm(
                env, tmp_path, "contacts", "import", str(csv), "--tenant", tenant, "--mode", "test"
            )
            assert imported.returncode == 0, imported.stderr
            assert listen.wait(WAIT) == 0
        finally:
            if listen.poll() is None:
                listen.kill()
                listen.wait(5)
        lines = wait_for(
            lambda: (
                [line for line in out.read_text().splitlines() if line.startswith("event ")]
                if out.read_text().count("event contact.created") >= 2
                else None
            ),
            "two events on the receiver's stdout",
        )
        assert all("mode=test" in line for line in lines)
        listed = crm(
            env, tmp_path, "events", "list", "--tenant", tenant, "--mode", "test", "--json"
        )
        assert listed.returncode == 0, listed.stderr
        events = json.loads(listed.stdout)
        assert sorted(e["type"] for e in events) == ["contact.created", "contact.created"]
        assert (
            crm(env, tmp_path, "events", "list", "--tenant", tenant, "--json").stdout.strip()
            == "[]"
        )
        shown = crm(
            env,
            tmp_path,
            "events",
            "show",
            events[0]["id"],
            "--tenant",
            tenant,
            "--mode",
            "test",
            "--json",
        )
        assert json.loads(shown.stdout) == events[0]

    # The receiver's own checks, exercised directly.
    body = json.dumps(events[0], separators=(",", ":")).encode()
    now = int(time.time())

    def post(signature: str | None) -> int:
        headers = {"X-CRM-Event-Id": events[0]["id"]}
        if signature is not None:
            headers["X-CRM-Signature"] = signature
        return httpx.post(url, content=body, headers=headers, timeout=5).status_code

    assert post(sign_webhook(SECRET, body, timestamp=now)) == 200
    wait_for(lambda: "duplicate event" in out.read_text(), "the repeat to be ignored")
    assert post(sign_webhook(SECRET, body, timestamp=now - 400)) == 401
    assert post(sign_webhook("whsec_wrong_" + "x" * 24, body, timestamp=now)) == 401
    assert post(None) == 401
    assert out.read_text().count("event contact.created") == 2


def test_webhooks_commands_create_list_and_delete(tmp_path: Path) -> None:
    with migrated_database("sqlite", tmp_path) as database_url:
        env = crm_env(database_url)
        tenant = json.loads(
            crm(env, tmp_path, "tenants", "create", "--name", "W", "--json").stdout
        )["id"]
        made = crm(
            env,
            tmp_path,
            "webhooks",
            "create",
            "--tenant",
            tenant,
            "--url",
            "http://127.0.0.1:9/hook",
            "--events",
            "contact.created,session.started",
            "--json",
        )
        assert made.returncode == 0, made.stderr
        endpoint = json.loads(made.stdout)
        assert endpoint["secret"].startswith("whsec_")
        assert endpoint["events"] == ["contact.created", "session.started"]
        listed = json.loads(
            crm(env, tmp_path, "webhooks", "list", "--tenant", tenant, "--json").stdout
        )
        assert [e["id"] for e in listed] == [endpoint["id"]]
        assert "secret" not in listed[0]
        bad = crm(env, tmp_path, "webhooks", "create", "--tenant", tenant, "--url", "ftp://x/")
        assert bad.returncode == 1 and "WEBHOOK_INVALID" in bad.stderr
        gone = crm(
            env, tmp_path, "webhooks", "delete", endpoint["id"], "--tenant", tenant, "--json"
        )
        assert gone.returncode == 0, gone.stderr
        again = crm(env, tmp_path, "webhooks", "delete", endpoint["id"], "--tenant", tenant)
        assert again.returncode == 1 and "WEBHOOK_NOT_FOUND" in again.stderr
