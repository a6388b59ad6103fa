"""At CRM_LOG_LEVEL=DEBUG the real server logs no statement parameters: a one-time code sent and
validated never appears in its log, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import migrated_database
from tests.support.http_sink import HttpSink
from tests.support.server import CrmProcess, crm_env

CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with migrated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


def test_debug_logs_never_carry_a_code(tmp_path: Path, fresh_url: str, sink: HttpSink) -> None:
    created = subprocess.run(
        [sys.executable, "-m", "crm", "tenants", "create", "--name", "Acme", "--json"],
        cwd=tmp_path,
        env=crm_env(fresh_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = json.loads(created.stdout)["keys"]["public_live"]
    env = {
        "CRM_LOG_LEVEL": "DEBUG",
        "CRM_SMS_PROVIDER": "webhook",
        "CRM_SMS_WEBHOOK_URL": sink.url_for("/sms"),
        "CRM_SMS_WEBHOOK_SECRET": "whsec-" + "d" * 24,
    }
    with (
        CrmProcess.serve(tmp_path, fresh_url, **env) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        registered = http.post(
            "/self-service/v1/contacts/register",
            json={
                "first_name": "Ahmed",
                "identity": {"provider": "PHONE", "phone_number": "9947823", "country_code": "CYP"},
                "service_acceptance": "true",
            },
            headers={"api_key": key},
        )
        assert registered.status_code == 201, registered.text
        (sms,) = sink.wait_for_requests_sync(1, timeout=15)
        match = CODE.search(sms.json()["text"])
        assert match is not None
        code = match.group(1)
        validated = http.post(
            "/self-service/v2/contacts/validate_otp",
            json={"auth_otp": registered.json()["auth_otp"], "code": code},
            headers={"api_key": key},
        )
        assert validated.status_code == 200, validated.text
    logs = server.logs()
    assert '"level": "debug"' in logs or '"level":"debug"' in logs  # DEBUG was on
    assert code not in logs
    assert validated.json()["refresh_token"] not in logs
