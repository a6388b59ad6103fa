"""The product as a user meets it: the README walk-through and live delivery, against the real
`python -m crm serve` process on a fresh database (SQLite, and PostgreSQL when one answers),
with real loopback receivers: an HTTP sink for the webhook SMS provider and aiosmtpd for SMTP.

Every wait is a bounded poll; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import select

from crm.messaging.models import OutboxMessage
from crm.messaging.providers.webhook import verify_webhook_signature
from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL, _pg_execute, _pg_url_for
from tests.support.http_sink import HttpSink, RecordedRequest, ScriptedResponse, free_port
from tests.support.selfservice import unique_email, unique_phone
from tests.support.server import TEST_SECRET, CrmProcess, crm_env

T = TypeVar("T")

BACKENDS = ["sqlite", "postgresql"] if POSTGRES_ADMIN_URL else ["sqlite"]
WAIT = 15.0  # seconds: the longest any single poll may take before the test fails
HTTP_TIMEOUT = 10.0
CODE = re.compile(r"\b(\d{6})\b")

# The seed's Step 1 body, byte for byte (CRM.COM's onboarding guide).
SEED_REGISTER_BODY = """{
    "first_name": "Ahmed",
    "last_name": "Samir",
    "identity": {
        "provider": "PHONE",
        "phone_number": "9947823",
        "country_code": "CYP"
    },
    "service_acceptance": "true",
    "email_opt_out": "true",
    "sms_opt_out": "true"
}"""
SEED_PHONE_E164 = "+3579947823"

DEPLOYMENT_WEBHOOK_SECRET = "whsec-deployment-" + "d" * 24
TENANT_WEBHOOK_SECRET = "whsec-tenant-" + "t" * 24
SMTP_FROM = "Acme Sign-in <no-reply@acme.example>"


# -- polling ------------------------------------------------------------------------------


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def code_in(text: str) -> str:
    match = CODE.search(text)
    assert match is not None, f"no 6-digit code in {text!r}"
    return match.group(1)


# -- databases ----------------------------------------------------------------------------


def _settings(url: str) -> Settings:
    return Settings(database_url=url, secret_key=TEST_SECRET, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(params=BACKENDS)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test only: a SQLite file in tmp_path, or a
    PostgreSQL database created here and dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        upgrade(_settings(url))
        yield url
        return
    assert POSTGRES_ADMIN_URL is not None
    name = f"crm_walk_{secrets.token_hex(6)}"
    asyncio.run(_pg_execute(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    url = _pg_url_for(POSTGRES_ADMIN_URL, name)
    try:
        upgrade(_settings(url))
        yield url
    finally:
        asyncio.run(
            _pg_execute(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


# -- receivers ----------------------------------------------------------------------------


class MailRecorder:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self._messages.append((list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 OK: queued"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [
                m for rcpts, m in self._messages if address.lower() in [r.lower() for r in rcpts]
            ]

    def wait_for_mail_to(self, address: str, count: int = 1) -> list[EmailMessage]:
        return wait_for(
            lambda: found if len(found := self.to(address)) >= count else None,
            f"{count} email(s) to {address}",
        )


@dataclass
class Smtp:
    host: str
    port: int
    mail: MailRecorder


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    recorder = MailRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), ready_timeout=5)
    controller.start()
    try:
        yield Smtp("127.0.0.1", controller.port, recorder)
    finally:
        controller.stop()


@pytest.fixture
def sms_sink() -> Iterator[HttpSink]:
    with HttpSink() as sink:
        yield sink


def sms_to(sink: HttpSink, phone: str) -> list[RecordedRequest]:
    return [r for r in sink.requests if r.json().get("to") == phone]


def wait_for_sms(sink: HttpSink, phone: str, count: int = 1) -> list[RecordedRequest]:
    return wait_for(
        lambda: found if len(found := sms_to(sink, phone)) >= count else None,
        f"{count} SMS to {phone} at {sink.url}",
    )


# -- the server and its command line ------------------------------------------------------


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """Start `python -m crm ARGS --json` with the deployment's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "crm", *args, "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def cli_result(process: subprocess.Popen[bytes]) -> Any:
    """The parsed JSON a `crm ... --json` command printed; it must have succeeded."""
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-4000:]
    return json.loads(out)


def assert_created_tenant(created: dict[str, Any], name: str) -> dict[str, Any]:
    assert created["name"] == name
    assert set(created["keys"]) == {"public_test", "public_live", "secret_test", "secret_live"}
    for label, prefix in (
        ("public_test", "pk_test_"),
        ("public_live", "pk_live_"),
        ("secret_test", "sk_test_"),
        ("secret_live", "sk_live_"),
    ):
        assert created["keys"][label].startswith(prefix)
    return created


@dataclass
class Deployment:
    """A running `crm serve` and the tenant `crm tenants create --name Acme --json` made."""

    server: CrmProcess
    tenant: dict[str, Any]
    http: httpx.Client


def start_deployment(tmp_path: Path, database_url: str, env: dict[str, str]) -> Deployment:
    """Start the server; the tenant is created by the command line meanwhile (both are
    subprocesses with the same environment and database)."""
    cli = run_cli(tmp_path, crm_env(database_url, **env), "tenants", "create", "--name", "Acme")
    server = CrmProcess.serve(tmp_path, database_url, **env)
    try:
        server.start()
        tenant = assert_created_tenant(cli_result(cli), "Acme")
    except BaseException:
        cli.kill()
        cli.wait(5)
        server.stop()
        raise
    return Deployment(server, tenant, httpx.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT))


def live_env(sms_sink: HttpSink, smtp: Smtp, **extra: str) -> dict[str, str]:
    """Real providers chosen by the deployment's environment."""
    return {
        "CRM_SMS_PROVIDER": "webhook",
        "CRM_SMS_WEBHOOK_URL": sms_sink.url_for("/sms"),
        "CRM_SMS_WEBHOOK_SECRET": DEPLOYMENT_WEBHOOK_SECRET,
        "CRM_EMAIL_PROVIDER": "smtp",
        "CRM_SMTP_HOST": smtp.host,
        "CRM_SMTP_PORT": str(smtp.port),
        "CRM_SMTP_STARTTLS": "false",
        "CRM_SMTP_FROM": SMTP_FROM,
        "CRM_OUTBOX_POLL_SECONDS": "0.1",
        **extra,
    }


@pytest.fixture
def deployment(
    tmp_path: Path, fresh_database: str, sms_sink: HttpSink, smtp: Smtp
) -> Iterator[Deployment]:
    running = start_deployment(tmp_path, fresh_database, live_env(sms_sink, smtp))
    try:
        yield running
    finally:
        running.http.close()
        running.server.stop()


async def _outbox_rows(database_url: str) -> list[tuple[str, str, int]]:
    runtime = Runtime.build(_settings(database_url))
    try:
        async with runtime.sessions() as session:
            rows = await session.execute(
                select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts)
            )
            return [(i, s, a) for i, s, a in rows]
    finally:
        await runtime.close()


def outbox_rows(database_url: str) -> list[tuple[str, str, int]]:
    """(id, status, attempts) of every outbox message, read straight from the database."""
    return asyncio.run(_outbox_rows(database_url))


def verify_access_token(http: httpx.Client, token: str) -> dict[str, Any]:
    """Verify the JWT as a third party would: the key from /.well-known/jwks.json, the
    algorithm pinned to the key's own, `typ: at+jwt`. Returns the claims."""
    header = jwt.get_unverified_header(token)
    assert header["typ"].lower() in {"at+jwt", "application/at+jwt"}
    jwks = http.get("/.well-known/jwks.json")
    assert jwks.status_code == 200, jwks.text
    keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(jwks.json()).keys}
    signing = keys[header["kid"]]
    assert header["alg"] in {"EdDSA", "ES256"} and header["alg"] == signing.algorithm_name
    claims: dict[str, Any] = jwt.decode(
        token,
        signing.key,
        algorithms=[signing.algorithm_name],
        options={"verify_aud": False, "require": ["iss", "aud", "sub", "exp", "iat", "jti"]},
    )
    return claims


def public(key: str) -> dict[str, str]:
    return {"api_key": key}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_token_object(grant: dict[str, Any], tenant: dict[str, Any]) -> None:
    """The token object of API.md section 3, as a CRM.COM client reads it."""
    assert isinstance(grant["access_token"], str) and grant["access_token"].count(".") == 2
    assert isinstance(grant["refresh_token"], str) and len(grant["refresh_token"]) >= 22
    assert isinstance(grant["expiration_date"], int)
    assert grant["exp"] == grant["expiration_date"]
    assert 0 < grant["expiration_date"] - time.time() <= 900 + 5
    assert isinstance(grant["contact"]["id"], str) and grant["contact"]["id"]
    assert grant["organisations"] == [
        {"id": tenant["id"], "name": tenant["name"], "type": "BUSINESS"}
    ]
    # A field without a value is left out, never sent as null.
    assert None not in grant["contact"].values()


def validate_v2(http: httpx.Client, key: str, auth_otp: str, code: str) -> dict[str, Any]:
    response = http.post(
        "/self-service/v2/contacts/validate_otp",
        json={"auth_otp": auth_otp, "code": code},
        headers=public(key),
    )
    assert response.status_code == 200, response.text
    grant: dict[str, Any] = response.json()
    return grant


# -- 1. the README walk-through, test mode ------------------------------------------------


def test_readme_walkthrough_in_test_mode_signs_in_refreshes_and_signs_out(
    deployment: Deployment, sms_sink: HttpSink
) -> None:
    tenant = deployment.tenant
    keys = tenant["keys"]
    http = deployment.http

    # Register the guide's customer exactly as the seed writes the request.
    registered = http.post(
        "/self-service/v1/contacts/register",
        content=SEED_REGISTER_BODY,
        headers={**public(keys["public_test"]), "Content-Type": "application/json"},
    )
    assert registered.status_code == 201, registered.text
    sent = registered.json()
    assert set(sent) == {"auth_otp", "obfuscated_value"}
    assert sent["obfuscated_value"] == "+357994***23"
    uuid.UUID(sent["auth_otp"])

    # Test mode: the code waits in the test outbox, readable with the test secret key only.
    outbox = http.get("/backoffice/v1/outbox", headers=public(keys["secret_test"]))
    assert outbox.status_code == 200, outbox.text
    (message,) = outbox.json()["content"]
    assert message["recipient"] == SEED_PHONE_E164
    assert message["purpose"] == "OTP"
    assert message["channel"] == "SMS"
    code = code_in(message["body"])
    assert "Acme" in message["body"]
    live_outbox = http.get("/backoffice/v1/outbox", headers=public(keys["secret_live"]))
    assert live_outbox.status_code == 403, live_outbox.text

    # The guide's v1 validation, by credentials.
    validated = http.post(
        "/self-service/v1/contacts/validate-otp",
        json={"credentials": [{"name": "PHONE", "value": SEED_PHONE_E164}], "code": code},
        headers=public(keys["public_test"]),
    )
    assert validated.status_code == 200, validated.text
    grant = validated.json()
    assert_token_object(grant, tenant)
    contact_id = grant["contact"]["id"]
    claims = verify_access_token(http, grant["access_token"])
    assert claims["sub"] == contact_id
    assert claims["aud"] in (tenant["id"], [tenant["id"]])
    assert claims["mode"] == "test"
    assert claims["exp"] == grant["expiration_date"]
    assert grant["contact"]["first_name"] == "Ahmed"
    assert grant["contact"]["last_name"] == "Samir"
    assert grant["contact"]["is_verified"] is True

    # Signed in: the bearer token alone opens the profile (no api_key).
    profile = http.get(
        f"/self-service/v2/contacts/{contact_id}", headers=bearer(grant["access_token"])
    )
    assert profile.status_code == 200, profile.text
    assert profile.json()["id"] == contact_id
    assert profile.json()["first_name"] == "Ahmed"
    assert profile.json()["last_name"] == "Samir"
    # The national number beside its country: the shape it was registered in.
    assert profile.json()["phone"]["number"] == SEED_PHONE_E164.removeprefix("+357")
    assert profile.json()["phone"]["country_code"] == "CYP"
    assert http.get(f"/self-service/v2/contacts/{contact_id}").status_code == 401
    # An api_key sent alongside must be of the token's mode: a live key with a test token is 401.
    mixed = http.get(
        f"/self-service/v2/contacts/{contact_id}",
        headers={**bearer(grant["access_token"]), **public(keys["public_live"])},
    )
    assert mixed.status_code == 401, mixed.text

    # The seed's refresh curl: a bare Authorization header, no api_key, no body.
    refreshed = http.post(
        "/self-service/v1/contacts/refresh", headers={"Authorization": grant["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    renewed = refreshed.json()
    assert_token_object(renewed, tenant)
    assert renewed["contact"]["id"] == contact_id
    assert renewed["refresh_token"] != grant["refresh_token"]
    # A second tab presenting the just-replaced token within the grace window gets the same
    # successor and stays signed in.
    twin = http.post(
        "/self-service/v1/contacts/refresh", headers={"Authorization": grant["refresh_token"]}
    )
    assert twin.status_code == 200, twin.text
    assert twin.json()["refresh_token"] == renewed["refresh_token"]
    assert (
        http.get(
            f"/self-service/v2/contacts/{contact_id}", headers=bearer(renewed["access_token"])
        ).status_code
        == 200
    )

    signed_out = http.post(
        f"/self-service/v2/contacts/{contact_id}/sign_out", headers=bearer(renewed["access_token"])
    )
    assert signed_out.status_code in (200, 204), signed_out.text

    # The session is over at once: neither access token nor the refresh token works any more.
    for token in (grant["access_token"], renewed["access_token"]):
        refused = http.get(f"/self-service/v2/contacts/{contact_id}", headers=bearer(token))
        assert refused.status_code == 401, refused.text
    again = http.post(
        "/self-service/v1/contacts/refresh", headers={"Authorization": renewed["refresh_token"]}
    )
    assert again.status_code == 401, again.text

    # Test mode never reached the real SMS provider.
    assert sms_sink.requests == []


# -- 2. live delivery through the deployment's providers, and a tenant's own -------------


def test_live_codes_arrive_by_signed_webhook_sms_and_smtp_email_and_sign_in(
    deployment: Deployment, sms_sink: HttpSink, smtp: Smtp
) -> None:
    tenant = deployment.tenant
    live = tenant["keys"]["public_live"]
    http = deployment.http

    # PHONE: the code travels as a signed webhook SMS.
    number = unique_phone()
    phone = f"+357{number}"
    registered = http.post(
        "/self-service/v2/contacts/register",
        json={
            "first_name": "Eleni",
            "last_name": "Georgiou",
            "identification": {
                "provider": "PHONE",
                "phone": {"number": number, "country_code": "CYP"},
            },
            "accept_terms_&_conditions": True,
        },
        headers=public(live),
    )
    assert registered.status_code == 201, registered.text
    sent = registered.json()
    (sms,) = wait_for_sms(sms_sink, phone)
    assert sms.method == "POST" and sms.route == "/sms"
    assert verify_webhook_signature(
        DEPLOYMENT_WEBHOOK_SECRET, sms.header("X-CRM-Signature"), sms.body
    )
    assert not verify_webhook_signature(
        TENANT_WEBHOOK_SECRET, sms.header("X-CRM-Signature"), sms.body
    )
    payload = sms.json()
    assert payload["tenant_id"] == tenant["id"]
    assert sms.header("X-CRM-Message-Id") == payload["message_id"]
    grant = validate_v2(http, live, sent["auth_otp"], code_in(payload["text"]))
    assert_token_object(grant, tenant)
    assert grant["contact"]["first_name"] == "Eleni"

    # EMAIL without a password: the code travels by SMTP, as text and HTML.
    address = unique_email()
    registered = http.post(
        "/self-service/v1/contacts/register",
        json={
            "first_name": "Nikos",
            "last_name": "Ioannou",
            "identity": {"provider": "EMAIL", "email": address},
            "service_acceptance": "true",
        },
        headers=public(live),
    )
    assert registered.status_code == 201, registered.text
    sent = registered.json()
    assert set(sent) == {"auth_otp", "obfuscated_value"}
    (mail,) = smtp.mail.wait_for_mail_to(address)
    assert mail["From"] == SMTP_FROM
    assert mail["To"].lower() == address.lower()
    assert mail.get_content_type() == "multipart/alternative"
    text_part = mail.get_body(("plain",))
    html_part = mail.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert isinstance(text_part, EmailMessage) and isinstance(html_part, EmailMessage)
    code = code_in(text_part.get_content())
    assert code in html_part.get_content()
    grant = validate_v2(http, live, sent["auth_otp"], code)
    assert_token_object(grant, tenant)
    assert grant["contact"]["first_name"] == "Nikos"

    # A second code for the same contact is not reusable: the first one was single use.
    reused = http.post(
        "/self-service/v2/contacts/validate_otp",
        json={"auth_otp": sent["auth_otp"], "code": code},
        headers=public(live),
    )
    assert reused.status_code in (400, 404), reused.text


def test_tenant_sms_integration_sends_the_next_code_to_its_own_webhook(
    deployment: Deployment, sms_sink: HttpSink
) -> None:
    tenant = deployment.tenant
    keys = tenant["keys"]
    http = deployment.http
    with HttpSink() as own_sink:
        # A test secret key may not redirect live codes.
        config = {"url": own_sink.url_for("/tenant-sms"), "signing_secret": TENANT_WEBHOOK_SECRET}
        refused = http.put(
            "/backoffice/v1/integrations/sms",
            json={"provider": "webhook", "config": config},
            headers=public(keys["secret_test"]),
        )
        assert refused.status_code == 403, refused.text

        chosen = http.put(
            "/backoffice/v1/integrations/sms",
            json={"provider": "webhook", "config": config},
            headers=public(keys["secret_live"]),
        )
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["source"] == "tenant"
        assert TENANT_WEBHOOK_SECRET not in chosen.text

        number = unique_phone()
        phone = f"+357{number}"
        registered = http.post(
            "/self-service/v1/contacts/register",
            json={
                "first_name": "Andreas",
                "last_name": "Christou",
                "identity": {"provider": "PHONE", "phone_number": number, "country_code": "CYP"},
                "service_acceptance": "true",
            },
            headers=public(keys["public_live"]),
        )
        assert registered.status_code == 201, registered.text
        (sms,) = wait_for_sms(own_sink, phone)
        assert sms.route == "/tenant-sms"
        assert verify_webhook_signature(
            TENANT_WEBHOOK_SECRET, sms.header("X-CRM-Signature"), sms.body
        )
        grant = validate_v2(
            http, keys["public_live"], registered.json()["auth_otp"], code_in(sms.json()["text"])
        )
        assert_token_object(grant, tenant)
    # The deployment's webhook never saw this tenant's code.
    assert sms_to(sms_sink, phone) == []
    assert [r for r in sms_sink.requests if r.json()["tenant_id"] == tenant["id"]] == []


# -- 3. a contact created by the back office signs in ------------------------------------


def test_back_office_contact_with_verified_email_signs_in_by_emailed_code(
    deployment: Deployment, smtp: Smtp
) -> None:
    tenant = deployment.tenant
    keys = tenant["keys"]
    http = deployment.http
    address = unique_email()

    created = http.post(
        "/backoffice/v1/contacts",
        json={"id": "ext-42", "code": "CRM-42", "first_name": "Maria", "last_name": "Kyriacou"},
        headers=public(keys["secret_live"]),
    )
    assert created.status_code == 201, created.text
    assert created.json() == {"id": "ext-42"}

    # Without credentials the contact cannot be reached by the Self-Service API yet: the
    # address is answered as any unknown one (an auth_otp that never validates, nothing sent).
    before = http.post(
        "/self-service/v2/contacts/otp",
        json={"method": "EMAIL", "credentials": [{"name": "EMAIL", "value": address}]},
        headers=public(keys["public_live"]),
    )
    assert before.status_code == 200, before.text

    identity = http.post(
        "/backoffice/v1/contacts/ext-42/identities",
        json={"provider": "EMAIL", "email": address, "verified": True},
        headers=public(keys["secret_live"]),
    )
    assert identity.status_code == 201, identity.text

    requested = http.post(
        "/self-service/v2/contacts/otp",
        json={"method": "EMAIL", "credentials": [{"name": "EMAIL", "value": address}]},
        headers=public(keys["public_live"]),
    )
    assert requested.status_code == 200, requested.text
    sent = requested.json()
    assert set(sent) == {"auth_otp", "obfuscated_value"}
    assert address not in sent["obfuscated_value"]

    (mail,) = smtp.mail.wait_for_mail_to(address)
    text_part = mail.get_body(("plain",))
    assert isinstance(text_part, EmailMessage)
    grant = validate_v2(
        http, keys["public_live"], sent["auth_otp"], code_in(text_part.get_content())
    )
    assert_token_object(grant, tenant)
    assert grant["contact"]["id"] == "ext-42"
    assert grant["contact"]["code"] == "CRM-42"
    assert grant["contact"]["first_name"] == "Maria"

    profile = http.get("/self-service/v2/contacts/ext-42", headers=bearer(grant["access_token"]))
    assert profile.status_code == 200, profile.text
    assert profile.json()["code"] == "CRM-42"


# -- 4. nothing lost across a restart ----------------------------------------------------


@dataclass
class Outage:
    """A webhook receiver that answers 503 until the outage is over, and remembers its answers."""

    over: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, request: RecordedRequest) -> ScriptedResponse:
        status = 200 if self.over.is_set() else 503
        self.answers.append((request.json()["message_id"], status))
        return ScriptedResponse(status, {"id": "gw-1"} if status == 200 else {})


def test_code_queued_during_an_sms_outage_is_delivered_once_after_a_restart(
    tmp_path: Path, fresh_database: str, smtp: Smtp
) -> None:
    outage = Outage()
    with HttpSink(responder=outage, default=ScriptedResponse(500)) as sink:
        env = live_env(
            sink,
            smtp,
            CRM_OUTBOX_BACKOFF_BASE_SECONDS="0.2",
            CRM_OUTBOX_BACKOFF_MAX_SECONDS="0.5",
            CRM_OUTBOX_MAX_ATTEMPTS="50",
            CRM_OUTBOX_LEASE_SECONDS="4",
        )
        deployment = start_deployment(tmp_path, fresh_database, env)
        server, tenant, http = deployment.server, deployment.tenant, deployment.http
        live = tenant["keys"]["public_live"]
        try:
            number = unique_phone()
            phone = f"+357{number}"
            registered = http.post(
                "/self-service/v1/contacts/register",
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
                headers=public(live),
            )
            assert registered.status_code == 201, registered.text
            # The provider is down: the message is being retried.
            wait_for_sms(sink, phone, count=2)
            # SIGTERM: a graceful exit (uvicorn re-raises the signal once it has shut down).
            assert server.stop() in (0, -signal.SIGTERM)
            assert "Application shutdown complete" in server.logs()
            assert "delivery worker stopped" in server.logs()
            tried = list(outage.answers)
            assert len(tried) >= 2 and all(status == 503 for _, status in tried)
            # Still owed, not given up on, not lost: queued in the database for a later try.
            ((message_id, status, attempts),) = outbox_rows(fresh_database)
            assert status == "queued"
            assert attempts == len(tried)

            outage.over.set()
            server.start()  # same port, same database, same log file
            wait_for(
                lambda: any(s == 200 for _, s in outage.answers),
                "the message delivered after the restart",
            )
            wait_for(
                lambda: outbox_rows(fresh_database)[0][1] == "sent",
                "the outbox to mark the message sent",
            )
            ((_, status, attempts),) = outbox_rows(fresh_database)
        finally:
            http.close()
            server.stop()
    # Exactly one successful delivery, after the failed tries, all of the same message.
    assert [s for _, s in outage.answers] == [503] * len(tried) + [200]
    assert {m for m, _ in outage.answers} == {message_id}
    assert attempts == len(tried) + 1
    delivered = sink.requests[-1]
    assert delivered.json()["to"] == phone
    assert verify_webhook_signature(
        DEPLOYMENT_WEBHOOK_SECRET, delivered.header("X-CRM-Signature"), delivered.body
    )
    assert code_in(delivered.json()["text"]) not in server.logs()
