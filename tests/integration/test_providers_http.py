"""The webhook and Twilio SMS providers against real HTTP servers on loopback ports."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crm.messaging.providers import (
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    TwilioConfig,
    TwilioSmsProvider,
    WebhookConfig,
    WebhookSmsProvider,
    verify_webhook_signature,
)
from crm.messaging.providers.webhook import sign_webhook
from tests.support.http_sink import HttpSink, RecordedRequest, ScriptedResponse, free_port

SECRET = "whsec_test_0123456789abcdef"
CODE = "731905"


def outgoing(**overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "id": "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        "tenant_id": "tenant-42",
        "channel": "SMS",
        "recipient": "+35799123456",
        "subject": None,
        "body_text": f"{CODE} is your Acme code. It expires in 5 minutes. Don't share it.",
        "body_html": None,
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as shared:
        yield shared


@pytest.fixture
async def sink() -> AsyncIterator[HttpSink]:
    async with HttpSink() as running:
        yield running


def webhook(sink: HttpSink, client: httpx.AsyncClient, **overrides: Any) -> WebhookSmsProvider:
    settings: dict[str, Any] = {
        "url": sink.url_for("/sms/hook"),
        "signing_secret": SECRET,
        "timeout": 2,
    }
    settings.update(overrides)
    return WebhookSmsProvider(WebhookConfig.model_validate(settings), client=client)


# -- webhook ---------------------------------------------------------------------------------


async def test_webhook_posts_exact_compact_json_with_a_verifiable_signature(
    sink: HttpSink, client: httpx.AsyncClient
) -> None:
    message = outgoing()
    sink.default = ScriptedResponse(202, {"id": "gw-123", "status": "queued"})

    provider_id = await webhook(sink, client).send(message)

    assert provider_id == "gw-123"
    [request] = sink.requests
    assert request.method == "POST"
    assert request.path == "/sms/hook"
    assert request.header("content-type") == "application/json; charset=utf-8"
    assert request.header("x-crm-message-id") == message.id
    assert request.json() == {
        "to": "+35799123456",
        "text": message.body_text,
        "message_id": message.id,
        "tenant_id": "tenant-42",
    }
    # Compact: exactly the bytes json.dumps gives without spaces, keys in this order.
    assert request.body == (
        b'{"to":"+35799123456","text":"' + message.body_text.encode() + b'","message_id":"'
        b'6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b","tenant_id":"tenant-42"}'
    )
    signature = request.header("x-crm-signature")
    assert signature is not None
    assert verify_webhook_signature(SECRET, signature, request.body)


async def test_webhook_signature_is_stripe_style_hmac_of_timestamp_and_body(
    sink: HttpSink, client: httpx.AsyncClient
) -> None:
    before = int(time.time())
    await webhook(sink, client).send(outgoing())
    after = int(time.time())

    [request] = sink.requests
    header = request.header("x-crm-signature") or ""
    parts = dict(part.split("=", 1) for part in header.split(","))
    assert set(parts) == {"t", "v1"}
    assert before <= int(parts["t"]) <= after
    expected = hmac.new(
        SECRET.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert parts["v1"] == expected


async def test_webhook_sends_non_ascii_text_as_utf8(
    sink: HttpSink, client: httpx.AsyncClient
) -> None:
    text = f"{CODE} είναι ο κωδικός σας 🔐"

    await webhook(sink, client).send(outgoing(body_text=text))

    [request] = sink.requests
    assert text.encode("utf-8") in request.body
    assert request.json()["text"] == text
    assert verify_webhook_signature(SECRET, request.header("x-crm-signature"), request.body)


@pytest.mark.parametrize("reply", [{}, {"id": None}, {"id": ""}, [1, 2], "plain text"])
async def test_webhook_without_usable_id_returns_the_message_id(
    sink: HttpSink, client: httpx.AsyncClient, reply: Any
) -> None:
    sink.default = ScriptedResponse(200, reply)
    message = outgoing()

    assert await webhook(sink, client).send(message) == message.id


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
async def test_webhook_server_errors_and_throttling_are_transient(
    sink: HttpSink, client: httpx.AsyncClient, status: int
) -> None:
    sink.script_statuses([status], body={"error": "nope"})

    with pytest.raises(TransientDeliveryError) as caught:
        await webhook(sink, client).send(outgoing())

    assert str(status) in str(caught.value)
    assert CODE not in str(caught.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
async def test_webhook_client_errors_are_permanent(
    sink: HttpSink, client: httpx.AsyncClient, status: int
) -> None:
    sink.script(ScriptedResponse(status, {"error": "bad"}, headers={"Location": "/elsewhere"}))

    with pytest.raises(PermanentDeliveryError) as caught:
        await webhook(sink, client).send(outgoing())

    assert CODE not in str(caught.value)
    assert len(sink.requests) == 1  # a redirect is not followed


async def test_webhook_timeout_is_transient(sink: HttpSink, client: httpx.AsyncClient) -> None:
    sink.script(ScriptedResponse(200, {"id": "late"}, delay=3))
    started = time.monotonic()

    with pytest.raises(TransientDeliveryError):
        await webhook(sink, client, timeout=0.3).send(outgoing())

    assert time.monotonic() - started < 2.5


async def test_webhook_connection_refused_is_transient(client: httpx.AsyncClient) -> None:
    config = WebhookConfig(url=f"http://127.0.0.1:{free_port()}/hook", signing_secret=SECRET)

    with pytest.raises(TransientDeliveryError):
        await WebhookSmsProvider(config, client=client).send(outgoing())


async def test_webhook_recovers_after_a_transient_failure(
    sink: HttpSink, client: httpx.AsyncClient
) -> None:
    sink.script_statuses([503])
    provider = webhook(sink, client)

    with pytest.raises(TransientDeliveryError):
        await provider.send(outgoing())
    assert await provider.send(outgoing()) == outgoing().id

    first, second = sink.requests
    assert first.header("x-crm-message-id") == second.header("x-crm-message-id")


async def test_webhook_refuses_a_non_e164_recipient_without_a_request(
    sink: HttpSink, client: httpx.AsyncClient
) -> None:
    with pytest.raises(PermanentDeliveryError):
        await webhook(sink, client).send(outgoing(recipient="99123456"))

    assert sink.requests == []


async def test_webhook_creates_and_closes_its_own_client_when_none_is_given(
    sink: HttpSink,
) -> None:
    provider = WebhookSmsProvider(WebhookConfig(url=sink.url_for("/hook"), signing_secret=SECRET))

    await provider.send(outgoing())
    await provider.aclose()

    assert len(sink.requests) == 1
    assert provider._client is None


# -- signature verification (receivers' side) ------------------------------------------------


def test_verify_rejects_a_tampered_body() -> None:
    body = b'{"to":"+35799123456","text":"hello"}'
    header = sign_webhook(SECRET, body, timestamp=int(time.time()))

    assert verify_webhook_signature(SECRET, header, body)
    assert not verify_webhook_signature(SECRET, header, body.replace(b"hello", b"hellp"))


def test_verify_rejects_the_wrong_secret() -> None:
    body = b"{}"
    header = sign_webhook(SECRET, body, timestamp=int(time.time()))

    assert not verify_webhook_signature("whsec_another_secret_value", header, body)


def test_verify_rejects_an_old_timestamp() -> None:
    body = b"{}"
    sent_at = 1_700_000_000
    header = sign_webhook(SECRET, body, timestamp=sent_at)

    assert verify_webhook_signature(SECRET, header, body, now=sent_at + 300)
    assert not verify_webhook_signature(SECRET, header, body, now=sent_at + 301)
    assert not verify_webhook_signature(SECRET, header, body, now=sent_at + 86_400)


def test_verify_rejects_a_timestamp_from_the_future() -> None:
    body = b"{}"
    header = sign_webhook(SECRET, body, timestamp=1_700_000_000)

    assert not verify_webhook_signature(SECRET, header, body, now=1_700_000_000 - 301)


def test_verify_rejects_a_replayed_signature_with_a_new_timestamp() -> None:
    body = b"{}"
    old = sign_webhook(SECRET, body, timestamp=1_700_000_000)
    forged = old.replace("t=1700000000", "t=1700009999")

    assert not verify_webhook_signature(SECRET, forged, body, now=1_700_009_999)


def test_verify_accepts_any_of_several_v1_signatures_for_secret_rotation() -> None:
    body = b"{}"
    now = 1_700_000_000
    new = sign_webhook(SECRET, body, timestamp=now)
    old = sign_webhook("whsec_previous_secret_0000", body, timestamp=now)
    header = f"{new},v1={old.split('v1=')[1]}"

    assert verify_webhook_signature("whsec_previous_secret_0000", header, body, now=now)
    assert verify_webhook_signature(SECRET, header, body, now=now)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=abc,v1=00", "v1=" + "0" * 64, "t=1700000000", "t=-5,v1=00"],
)
def test_verify_rejects_malformed_headers(header: str | None) -> None:
    assert not verify_webhook_signature(SECRET, header, b"{}", now=1_700_000_000)


# -- Twilio ----------------------------------------------------------------------------------

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
SERVICE_SID = "MG" + "2" * 32


def twilio_error(status: int, code: int, message: str) -> ScriptedResponse:
    return ScriptedResponse(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class FakeTwilio:
    """Speaks the Messages resource of Twilio's 2010-04-01 API as far as sending SMS needs."""

    def __init__(self) -> None:
        self.created: list[dict[str, str]] = []

    def __call__(self, request: RecordedRequest) -> ScriptedResponse:
        expected_path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        if request.method != "POST" or request.route != expected_path:
            return twilio_error(404, 20404, "The requested resource was not found")
        expected_auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if request.header("authorization") != f"Basic {expected_auth}":
            return twilio_error(401, 20003, "Authenticate")
        content_type = request.header("content-type") or ""
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return twilio_error(400, 20001, "Unsupported content type")
        form = request.form()
        to = form.get("To", "")
        if not to.startswith("+") or len(to) < 8:
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if "From" not in form and "MessagingServiceSid" not in form:
            return twilio_error(400, 21603, "A 'From' or 'MessagingServiceSid' is required.")
        self.created.append(form)
        sid = "SM" + secrets.token_hex(16)
        return ScriptedResponse(
            201,
            {
                "account_sid": ACCOUNT_SID,
                "api_version": "2010-04-01",
                "body": form.get("Body", ""),
                "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
                "date_sent": None,
                "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued" if "From" in form else "accepted",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"
                },
                "to": to,
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
            },
        )


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[HttpSink, FakeTwilio]]:
    fake = FakeTwilio()
    async with HttpSink(responder=fake) as running:
        yield running, fake


def twilio_provider(
    sink: HttpSink, client: httpx.AsyncClient, **overrides: Any
) -> TwilioSmsProvider:
    settings: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "+15005550006",
        "base_url": sink.url + "/",
        "timeout": 2,
    }
    settings.update(overrides)
    return TwilioSmsProvider(TwilioConfig.model_validate(settings), client=client)


async def test_twilio_creates_a_message_with_form_fields_and_basic_auth(
    twilio: tuple[HttpSink, FakeTwilio], client: httpx.AsyncClient
) -> None:
    sink, fake = twilio
    message = outgoing()

    sid = await twilio_provider(sink, client).send(message)

    assert sid is not None and sid.startswith("SM") and len(sid) == 34
    assert fake.created == [
        {"To": "+35799123456", "Body": message.body_text, "From": "+15005550006"}
    ]
    [request] = sink.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


async def test_twilio_can_send_through_a_messaging_service(
    twilio: tuple[HttpSink, FakeTwilio], client: httpx.AsyncClient
) -> None:
    sink, fake = twilio

    sid = await twilio_provider(
        sink, client, from_number=None, messaging_service_sid=SERVICE_SID
    ).send(outgoing())

    assert sid is not None
    assert fake.created[0]["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in fake.created[0]


async def test_twilio_invalid_number_error_21211_is_permanent(
    twilio: tuple[HttpSink, FakeTwilio], client: httpx.AsyncClient
) -> None:
    sink, _ = twilio
    # E.164-shaped, so it passes our check; Twilio still refuses it.
    with pytest.raises(PermanentDeliveryError) as caught:
        await twilio_provider(sink, client).send(outgoing(recipient="+1555"))

    text = str(caught.value)
    assert "21211" in text
    assert "400" in text
    assert "+1555" not in text  # Twilio's message quotes the number; ours does not


async def test_twilio_wrong_auth_token_is_permanent(
    twilio: tuple[HttpSink, FakeTwilio], client: httpx.AsyncClient
) -> None:
    sink, _ = twilio

    with pytest.raises(PermanentDeliveryError) as caught:
        await twilio_provider(sink, client, auth_token="f" * 32).send(outgoing())

    assert "20003" in str(caught.value)
    assert "f" * 32 not in str(caught.value)


@pytest.mark.parametrize(
    "answer",
    [
        twilio_error(503, 20503, "Service Unavailable"),
        twilio_error(500, 20500, "Internal Server Error"),
        twilio_error(429, 20429, "Too Many Requests"),
        ScriptedResponse(502, "<html>Bad Gateway</html>"),
    ],
)
async def test_twilio_outages_and_throttling_are_transient(
    twilio: tuple[HttpSink, FakeTwilio], client: httpx.AsyncClient, answer: ScriptedResponse
) -> None:
    sink, fake = twilio
    sink.script(answer)

    with pytest.raises(TransientDeliveryError) as caught:
        await twilio_provider(sink, client).send(outgoing())

    assert str(answer.status) in str(caught.value)
    assert fake.created == []


async def test_twilio_timeout_is_transient(
    twilio: tuple[HttpSink, FakeTwilio], client: httpx.AsyncClient
) -> None:
    sink, _ = twilio
    sink.script(ScriptedResponse(201, {"sid": "SMlate"}, delay=3))

    with pytest.raises(TransientDeliveryError):
        await twilio_provider(sink, client, timeout=0.3).send(outgoing())


async def test_twilio_connection_refused_is_transient(client: httpx.AsyncClient) -> None:
    config = TwilioConfig(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number="+15005550006",
        base_url=f"http://127.0.0.1:{free_port()}",
    )

    with pytest.raises(TransientDeliveryError):
        await TwilioSmsProvider(config, client=client).send(outgoing())


def test_sink_records_and_answers_for_another_thread_or_process() -> None:
    # The end-to-end suite starts the sink this way and lets the server process post to it.
    with HttpSink(default=ScriptedResponse(204)) as sink:
        response = httpx.post(sink.url_for("/x?y=1"), content=b"ping")
        recorded = sink.wait_for_requests_sync(1, timeout=2)

    assert response.status_code == 204
    assert recorded[0].route == "/x"
    assert recorded[0].query == {"y": "1"}
    assert recorded[0].body == b"ping"
    assert json.dumps(recorded[0].headers)  # plain strings, serialisable for reports
