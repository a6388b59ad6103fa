"""Unit tests of the provider registry: building providers, refusing bad settings, redaction."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from crm.errors import InvalidRequest
from crm.messaging.errors import ProviderConfigInvalid, ProviderNotSupported
from crm.messaging.providers import (
    EMAIL_PROVIDERS,
    SMS_PROVIDERS,
    ConsoleProvider,
    OutgoingMessage,
    SmtpConfig,
    SmtpProvider,
    TwilioConfig,
    TwilioSmsProvider,
    WebhookConfig,
    WebhookSmsProvider,
    build_email_provider,
    build_sms_provider,
    config_model,
    redact,
    validate_config,
)
from crm.messaging.providers.base import mask_secret

SIGNING_SECRET = "whsec_0123456789abcdefSECRET"
TWILIO_TOKEN = "0123456789abcdef0123456789abTOKN"
SMTP_PASSWORD = "smtp-password-very-secret-pw9x"
ACCOUNT_SID = "AC" + "0" * 32

WEBHOOK = {"url": "https://sms.example.com/hook", "signing_secret": SIGNING_SECRET}
TWILIO = {"account_sid": ACCOUNT_SID, "auth_token": TWILIO_TOKEN, "from_number": "+15005550006"}
SMTP = {
    "host": "smtp.example.com",
    "from_address": "Acme <no-reply@acme.example>",
    "username": "mailer",
    "password": SMTP_PASSWORD,
}


def fields(error: ProviderConfigInvalid) -> set[str]:
    return {detail["field"] for detail in error.details}


def test_registries_name_the_supported_providers() -> None:
    assert set(SMS_PROVIDERS) == {"console", "webhook", "twilio"}
    assert set(EMAIL_PROVIDERS) == {"console", "smtp"}


async def test_build_sms_provider_shares_the_given_http_client() -> None:
    async with httpx.AsyncClient() as client:
        webhook = build_sms_provider("webhook", WEBHOOK, client=client)
        twilio = build_sms_provider("Twilio", TWILIO, client=client)

    assert isinstance(webhook, WebhookSmsProvider)
    assert webhook._client is client
    assert isinstance(twilio, TwilioSmsProvider)
    assert twilio._client is client


def test_build_providers_validate_and_return_the_right_classes() -> None:
    assert isinstance(build_sms_provider("console", {}), ConsoleProvider)
    assert isinstance(build_email_provider("console", {}), ConsoleProvider)
    smtp = build_email_provider("smtp", SMTP)
    assert isinstance(smtp, SmtpProvider)
    assert smtp.config.port == 587
    assert smtp.config.starttls is True


@pytest.mark.parametrize(
    ("channel", "name"), [("SMS", "smtp"), ("EMAIL", "twilio"), ("SMS", "carrier-pigeon")]
)
def test_unknown_provider_is_provider_not_supported(channel: str, name: str) -> None:
    with pytest.raises(ProviderNotSupported) as caught:
        config_model(channel, name)

    assert caught.value.code == "PROVIDER_NOT_SUPPORTED"
    assert caught.value.status_code == 400
    assert isinstance(caught.value, InvalidRequest)
    assert caught.value.details[0]["field"] == "provider"


def test_unknown_channel_is_provider_not_supported() -> None:
    with pytest.raises(ProviderNotSupported):
        config_model("FAX", "console")


def test_config_model_accepts_either_case_of_channel() -> None:
    assert config_model("sms", "twilio") is TwilioConfig
    assert config_model("EMAIL", "smtp") is SmtpConfig
    assert config_model("Sms", " Webhook ") is WebhookConfig


@pytest.mark.parametrize(
    ("name", "config", "expected_fields"),
    [
        ("webhook", {"url": "https://x.example/h"}, {"signing_secret"}),
        ("webhook", {**WEBHOOK, "url": "ftp://x.example/h"}, {"url"}),
        ("webhook", {**WEBHOOK, "signing_secret": "short-pw"}, {"signing_secret"}),
        ("webhook", {**WEBHOOK, "timeout": 0}, {"timeout"}),
        ("webhook", {**WEBHOOK, "secret": "typo"}, {"secret"}),
        ("twilio", {**TWILIO, "account_sid": "XX123"}, {"account_sid"}),
        ("twilio", {"account_sid": ACCOUNT_SID, "auth_token": TWILIO_TOKEN}, {"config"}),
        ("twilio", {**TWILIO, "messaging_service_sid": "MG1"}, {"messaging_service_sid"}),
        ("twilio", {**TWILIO, "base_url": "not a url"}, {"base_url"}),
    ],
)
def test_bad_sms_config_is_provider_config_invalid_with_details(
    name: str, config: dict[str, Any], expected_fields: set[str]
) -> None:
    with pytest.raises(ProviderConfigInvalid) as caught:
        build_sms_provider(name, config)

    assert caught.value.code == "PROVIDER_CONFIG_INVALID"
    assert caught.value.status_code == 400
    assert fields(caught.value) == expected_fields
    assert all(detail["message"] for detail in caught.value.details)


@pytest.mark.parametrize(
    ("config", "expected_fields"),
    [
        ({"from_address": "a@b.example"}, {"host"}),
        ({**SMTP, "from_address": "not an address"}, {"from_address"}),
        ({**SMTP, "from_address": "a@b.example\r\nBcc: x@y.example"}, {"from_address"}),
        ({**SMTP, "port": 70000}, {"port"}),
        ({k: v for k, v in SMTP.items() if k != "username"}, {"config"}),
    ],
)
def test_bad_smtp_config_is_provider_config_invalid_with_details(
    config: dict[str, Any], expected_fields: set[str]
) -> None:
    with pytest.raises(ProviderConfigInvalid) as caught:
        build_email_provider("smtp", config)

    assert fields(caught.value) == expected_fields


def test_model_level_error_message_is_readable() -> None:
    with pytest.raises(ProviderConfigInvalid) as caught:
        build_sms_provider("twilio", {"account_sid": ACCOUNT_SID, "auth_token": TWILIO_TOKEN})

    assert caught.value.details == [
        {"field": "config", "message": "from_number or messaging_service_sid is required"}
    ]


def test_field_prefix_names_fields_as_the_api_body_does() -> None:
    with pytest.raises(ProviderConfigInvalid) as caught:
        validate_config("SMS", "webhook", {"url": "https://x.example"}, field_prefix="config")

    assert fields(caught.value) == {"config.signing_secret"}


def test_config_errors_never_echo_a_rejected_secret() -> None:
    rejected = "tiny-secret"  # too short for a signing secret
    with pytest.raises(ProviderConfigInvalid) as caught:
        build_sms_provider("webhook", {**WEBHOOK, "signing_secret": rejected})

    assert rejected not in json.dumps(caught.value.details)
    assert rejected not in str(caught.value)


@pytest.mark.parametrize(
    ("channel", "name", "config", "secret"),
    [
        ("SMS", "webhook", WEBHOOK, SIGNING_SECRET),
        ("SMS", "twilio", TWILIO, TWILIO_TOKEN),
        ("EMAIL", "smtp", SMTP, SMTP_PASSWORD),
    ],
)
def test_redaction_never_contains_the_secret(
    channel: str, name: str, config: dict[str, Any], secret: str
) -> None:
    shown = redact(channel, name, config)
    model_shown = validate_config(channel, name, config).redacted()

    for view in (shown, model_shown):
        text = json.dumps(view)
        assert secret not in text
        assert f"****{secret[-4:]}" in text
    assert secret not in repr(validate_config(channel, name, config))


def test_redaction_shows_non_secret_fields() -> None:
    shown = redact("SMS", "twilio", TWILIO)

    assert shown == {
        "account_sid": ACCOUNT_SID,
        "auth_token": "****TOKN",
        "from_number": "+15005550006",
        "messaging_service_sid": None,
        "base_url": "https://api.twilio.com",
        "timeout": 10,
    }


@pytest.mark.parametrize(
    ("secret", "masked"),
    [("", "****"), ("abc", "****"), ("12345678901", "****"), ("123456789012", "****9012")],
)
def test_mask_shows_the_last_four_only_for_secrets_of_twelve_or_more(
    secret: str, masked: str
) -> None:
    assert mask_secret(secret) == masked


def test_redaction_masks_a_password_in_the_webhook_url() -> None:
    config = {**WEBHOOK, "url": "https://gateway:hunter2-long-password@sms.example.com/hook"}

    shown = redact("SMS", "webhook", config)

    assert "hunter2" not in json.dumps(shown)
    # Masked whole: not even the tail of the password or the host around it.
    assert shown["url"] == "****"


@pytest.mark.parametrize(
    "url",
    [
        "https://sms.example.com/hook?token=s3cr3t-query-token",
        "https://sms.example.com/hook#s3cr3t-query-token",
        "https://user@sms.example.com/hook",
    ],
)
def test_redaction_masks_a_url_that_may_carry_a_secret_whole(url: str) -> None:
    shown = redact("SMS", "webhook", {**WEBHOOK, "url": url})
    assert shown["url"] == "****"


def test_redaction_shows_a_plain_url() -> None:
    shown = redact("SMS", "webhook", {**WEBHOOK, "url": "https://sms.example.com/hook"})
    assert shown["url"] == "https://sms.example.com/hook"


def test_redaction_of_invalid_stored_config_still_masks_secrets() -> None:
    stored = {"url": "not-a-url", "signing_secret": SIGNING_SECRET, "legacy_token": "abc"}

    shown = redact("SMS", "webhook", stored)

    assert shown == {"url": "not-a-url", "signing_secret": "****CRET"}


def test_smtp_without_credentials_redacts_to_none() -> None:
    shown = redact("EMAIL", "smtp", {"host": "localhost", "from_address": "a@b.example"})

    assert shown["password"] is None
    assert shown["username"] is None


async def test_console_provider_logs_the_message_and_returns_an_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = build_sms_provider("console", {})
    message = OutgoingMessage(
        id="m-1",
        tenant_id="t-1",
        channel="SMS",
        recipient="+35799123456",
        subject=None,
        body_text="123456 is your Acme code.",
        body_html=None,
    )

    with caplog.at_level(logging.INFO, logger="crm.messaging.console"):
        provider_id = await provider.send(message)

    assert provider_id is not None and provider_id.startswith("console-")
    records = [r for r in caplog.records if r.name == "crm.messaging.console"]
    assert len(records) == 1
    assert "123456 is your Acme code." in records[0].getMessage()
    assert "+35799123456" in records[0].getMessage()
