"""The SMTP provider against a real aiosmtpd server on a loopback port."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from crm.messaging.providers import (
    OutgoingMessage,
    PermanentDeliveryError,
    SmtpConfig,
    SmtpProvider,
    TransientDeliveryError,
)
from tests.support.http_sink import free_port

HOST = "127.0.0.1"
CODE = "482913"


class RecordingHandler:
    """Accepts mail and keeps it, or answers RCPT/DATA with a scripted reply."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.rcpt_reply: str | None = None
        self.data_reply = "250 2.0.0 OK: queued as TEST1"

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return self.data_reply


def start_controller(handler: RecordingHandler, **kwargs: Any) -> Controller:
    controller = Controller(handler, hostname=HOST, port=free_port(), ready_timeout=5, **kwargs)
    controller.start()
    return controller


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def smtp_server(handler: RecordingHandler) -> Iterator[Controller]:
    controller = start_controller(handler)
    try:
        yield controller
    finally:
        controller.stop()


def provider_for(port: int, **overrides: Any) -> SmtpProvider:
    settings: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "from_address": "Acme <no-reply@acme.example>",
        "starttls": False,
        "timeout": 2,
    }
    settings.update(overrides)
    return SmtpProvider(SmtpConfig.model_validate(settings))


def outgoing(**overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "id": "0b7d3c9e-1f2a-4b5c-9d8e-7f6a5b4c3d2e",
        "tenant_id": "tenant-1",
        "channel": "EMAIL",
        "recipient": "ahmed@example.com",
        "subject": "Your Acme sign-in code",
        "body_text": f"Your Acme sign-in code is {CODE}.\n",
        "body_html": f"<p>Your Acme sign-in code is <strong>{CODE}</strong>.</p>",
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)


def parse(envelope: Envelope) -> EmailMessage:
    raw = envelope.original_content or envelope.content
    assert isinstance(raw, bytes)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_send_delivers_multipart_alternative_with_headers_and_code(
    smtp_server: Controller, handler: RecordingHandler
) -> None:
    message = outgoing()

    provider_id = await provider_for(smtp_server.port).send(message)

    assert len(handler.envelopes) == 1
    envelope = handler.envelopes[0]
    assert envelope.mail_from == "no-reply@acme.example"
    assert envelope.rcpt_tos == ["ahmed@example.com"]
    received = parse(envelope)
    assert received["From"] == "Acme <no-reply@acme.example>"
    assert received["To"] == "ahmed@example.com"
    assert received["Subject"] == "Your Acme sign-in code"
    assert received["Message-ID"] == f"<{message.id}@acme.example>"
    assert received["Date"] is not None
    assert received["Date"].datetime is not None
    assert received["Auto-Submitted"] == "auto-generated"
    assert provider_id == received["Message-ID"]
    assert received.get_content_type() == "multipart/alternative"
    parts = list(received.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert isinstance(parts[0], EmailMessage) and isinstance(parts[1], EmailMessage)
    assert CODE in parts[0].get_content()
    assert f"<strong>{CODE}</strong>" in parts[1].get_content()


async def test_send_without_html_is_a_single_text_part(
    smtp_server: Controller, handler: RecordingHandler
) -> None:
    await provider_for(smtp_server.port).send(outgoing(body_html=None))

    received = parse(handler.envelopes[0])
    assert received.get_content_type() == "text/plain"
    assert CODE in received.get_content()


async def test_non_ascii_subject_and_body_arrive_intact(
    smtp_server: Controller, handler: RecordingHandler
) -> None:
    await provider_for(smtp_server.port).send(
        outgoing(subject="Ο κωδικός σας — Acme", body_text=f"Κωδικός: {CODE} ✓\n", body_html=None)
    )

    received = parse(handler.envelopes[0])
    assert received["Subject"] == "Ο κωδικός σας — Acme"
    assert received.get_content().replace("\r\n", "\n") == f"Κωδικός: {CODE} ✓\n"


@pytest.mark.parametrize(
    ("stage", "reply", "error"),
    [
        ("rcpt", "550 5.1.1 No such user here", PermanentDeliveryError),
        ("rcpt", "451 4.3.0 Try again later", TransientDeliveryError),
        ("data", "554 5.7.1 Message rejected", PermanentDeliveryError),
        ("data", "452 4.3.1 Insufficient system storage", TransientDeliveryError),
    ],
)
async def test_smtp_replies_are_classified_by_reply_class(
    smtp_server: Controller,
    handler: RecordingHandler,
    stage: str,
    reply: str,
    error: type[Exception],
) -> None:
    if stage == "rcpt":
        handler.rcpt_reply = reply
    else:
        handler.data_reply = reply

    with pytest.raises(error) as caught:
        await provider_for(smtp_server.port).send(outgoing())

    text = str(caught.value)
    assert reply[:3] in text
    # Safe to log: neither the code, the body nor the recipient's address.
    assert CODE not in text
    assert "ahmed@example.com" not in text


async def test_server_not_listening_is_transient() -> None:
    with pytest.raises(TransientDeliveryError):
        await provider_for(free_port()).send(outgoing())


async def test_server_that_never_greets_is_transient_after_the_timeout() -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept the connection and say nothing

    server = await asyncio.start_server(silent, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            with pytest.raises(TransientDeliveryError):
                await provider_for(port, timeout=0.3).send(outgoing())
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def auth_server(handler: RecordingHandler) -> Iterator[Controller]:
    def authenticator(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"mailer"
            and auth_data.password == b"correct-password"
        )
        # handled=False: let aiosmtpd answer a failure with its standard 535.
        return AuthResult(success=ok, handled=False)

    # Plain-text AUTH is allowed here only because the test server is on loopback.
    controller = start_controller(handler, authenticator=authenticator, auth_require_tls=False)
    try:
        yield controller
    finally:
        controller.stop()


async def test_valid_credentials_authenticate_and_send(
    auth_server: Controller, handler: RecordingHandler
) -> None:
    provider = provider_for(auth_server.port, username="mailer", password="correct-password")

    await provider.send(outgoing())

    assert len(handler.envelopes) == 1


async def test_rejected_credentials_are_permanent(auth_server: Controller) -> None:
    provider = provider_for(auth_server.port, username="mailer", password="wrong-password")

    with pytest.raises(PermanentDeliveryError) as caught:
        await provider.send(outgoing())

    assert "wrong-password" not in str(caught.value)


async def test_starttls_required_but_not_offered_is_permanent(smtp_server: Controller) -> None:
    with pytest.raises(PermanentDeliveryError):
        await provider_for(smtp_server.port, starttls=True).send(outgoing())


@pytest.mark.parametrize("recipient", ["not-an-address", "a@b.example\r\nBcc: x@y.example"])
async def test_invalid_recipient_is_permanent_before_connecting(
    smtp_server: Controller, handler: RecordingHandler, recipient: str
) -> None:
    with pytest.raises(PermanentDeliveryError):
        await provider_for(smtp_server.port).send(outgoing(recipient=recipient))

    assert handler.envelopes == []


async def test_subject_with_line_break_is_permanent(
    smtp_server: Controller, handler: RecordingHandler
) -> None:
    with pytest.raises(PermanentDeliveryError):
        await provider_for(smtp_server.port).send(outgoing(subject="Hi\r\nBcc: x@y.example"))

    assert handler.envelopes == []
