"""Providers tell a failure before the request left (safe to retry) from one after (ambiguous)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from crm.messaging.providers import (
    AmbiguousDeliveryError,
    TransientDeliveryError,
    TwilioConfig,
    TwilioSmsProvider,
    WebhookConfig,
    WebhookSmsProvider,
)
from crm.messaging.providers.base import OutgoingMessage
from crm.messaging.providers.smtp import SmtpConfig, SmtpProvider
from tests.support.http_sink import HttpSink, ScriptedResponse, free_port

SMS = OutgoingMessage(
    id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    tenant_id="t1",
    channel="SMS",
    recipient="+35799000001",
    subject=None,
    body_text="123456 is your code.",
    body_html=None,
)
EMAIL = OutgoingMessage(
    id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
    tenant_id="t1",
    channel="EMAIL",
    recipient="ann@example.com",
    subject="Your code",
    body_text="Your code is 123456.",
    body_html=None,
)


def twilio(base_url: str) -> TwilioSmsProvider:
    config = TwilioConfig(
        account_sid="AC" + "0" * 32,
        auth_token="t" * 32,
        from_number="+15005550006",
        base_url=base_url,
        timeout=0.3,
    )
    return TwilioSmsProvider(config)


def webhook(url: str) -> WebhookSmsProvider:
    return WebhookSmsProvider(WebhookConfig(url=url, signing_secret="s" * 24, timeout=0.3))


async def test_http_answer_after_the_timeout_is_ambiguous() -> None:
    async with HttpSink(default=ScriptedResponse(201, {"sid": "SM1"}, delay=3)) as sink:
        for provider in (twilio(sink.url), webhook(sink.url_for("/sms"))):
            with pytest.raises(AmbiguousDeliveryError):
                await provider.send(SMS)
            await provider.aclose()
        assert len(sink.requests) == 2


async def test_http_connection_refused_is_a_plain_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for provider in (twilio(url), webhook(url + "/sms")):
        with pytest.raises(TransientDeliveryError) as failed:
            await provider.send(SMS)
        assert not isinstance(failed.value, AmbiguousDeliveryError)
        await provider.aclose()


class _SlowData:
    """Takes the message, then answers only after the client has given up."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        await asyncio.sleep(3)
        return "250 OK"


async def test_smtp_reply_lost_after_the_message_went_out_is_ambiguous() -> None:
    handler = _SlowData()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=5)
    controller.start()
    try:
        config = SmtpConfig(
            host="127.0.0.1",
            port=controller.port,
            from_address="no-reply@acme.example",
            starttls=False,
            timeout=0.3,
        )
        with pytest.raises(AmbiguousDeliveryError):
            await SmtpProvider(config).send(EMAIL)
    finally:
        controller.stop()
    assert handler.received == 1


async def test_smtp_connection_refused_is_a_plain_retry() -> None:
    config = SmtpConfig(
        host="127.0.0.1", port=free_port(), from_address="no-reply@acme.example", timeout=0.3
    )
    with pytest.raises(TransientDeliveryError) as failed:
        await SmtpProvider(config).send(EMAIL)
    assert not isinstance(failed.value, AmbiguousDeliveryError)
