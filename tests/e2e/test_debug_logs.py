"""At CRM_LOG_LEVEL=DEBUG the real server logs no statement parameters: a one-time code sent and
validated never appears in its log, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crm.migrate import upgrade
from crm.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL, _pg_execute, _pg_url_for
from tests.support.http_sink import HttpSink
from tests.support.server import TEST_SECRET, CrmProcess, crm_env

CODE = re.compile(r"\b(\d{6})\b")


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        upgrade(settings_for(url))
        yield url
        return
    if POSTGRES_ADMIN_URL is None:
        pytest.skip("PostgreSQL tier skipped: nothing answers on 127.0.0.1:5432")
    name = f"crm_e2e_{secrets.token_hex(6)}"
    asyncio.run(_pg_execute(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    url = _pg_url_for(POSTGRES_ADMIN_URL, name)
    try:
        upgrade(settings_for(url))
        yield url
    finally:
        asyncio.run(
            _pg_execute(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


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
