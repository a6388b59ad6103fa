"""The provider registry: which SMS and email providers exist, their settings, how to build one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pydantic import SecretStr, ValidationError

from crm.messaging.errors import ProviderConfigInvalid, ProviderNotSupported
from crm.messaging.providers.base import (
    AmbiguousDeliveryError,
    DeliveryError,
    EmailProvider,
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderConfig,
    SmsProvider,
    TransientDeliveryError,
    mask_secret,
    mask_url,
)
from crm.messaging.providers.console import ConsoleConfig, ConsoleProvider
from crm.messaging.providers.smtp import SmtpConfig, SmtpProvider
from crm.messaging.providers.twilio import TwilioConfig, TwilioSmsProvider
from crm.messaging.providers.webhook import (
    WebhookConfig,
    WebhookSmsProvider,
    verify_webhook_signature,
)

__all__ = [
    "EMAIL_PROVIDERS",
    "SMS_PROVIDERS",
    "AmbiguousDeliveryError",
    "ConsoleConfig",
    "ConsoleProvider",
    "DeliveryError",
    "EmailProvider",
    "OutgoingMessage",
    "PermanentDeliveryError",
    "ProviderConfig",
    "ProviderSpec",
    "SmsProvider",
    "SmtpConfig",
    "SmtpProvider",
    "TransientDeliveryError",
    "TwilioConfig",
    "TwilioSmsProvider",
    "WebhookConfig",
    "WebhookSmsProvider",
    "build_email_provider",
    "build_sms_provider",
    "config_model",
    "redact",
    "repeats_dropped",
    "validate_config",
    "verify_webhook_signature",
]

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class ProviderSpec(Generic[P]):
    """One registered provider: the model that validates its settings and how to build it."""

    config_model: type[ProviderConfig]
    # (settings, shared HTTP client, guarded): guarded providers connect only to checked public
    # addresses (netguard); HTTP ones get that from a guarded client.
    build: Callable[[ProviderConfig, httpx.AsyncClient | None, bool], P]
    # Whether the provider drops a repeated message itself (an idempotency key it honours), so
    # a retry after an ambiguous outcome cannot reach the recipient twice.
    repeats_dropped: bool = False


def _console(
    config: ProviderConfig, client: httpx.AsyncClient | None, guarded: bool
) -> ConsoleProvider:
    assert isinstance(config, ConsoleConfig)
    return ConsoleProvider(config)


def _webhook(
    config: ProviderConfig, client: httpx.AsyncClient | None, guarded: bool
) -> WebhookSmsProvider:
    assert isinstance(config, WebhookConfig)
    return WebhookSmsProvider(config, client=client)


def _twilio(
    config: ProviderConfig, client: httpx.AsyncClient | None, guarded: bool
) -> TwilioSmsProvider:
    assert isinstance(config, TwilioConfig)
    return TwilioSmsProvider(config, client=client)


def _smtp(config: ProviderConfig, client: httpx.AsyncClient | None, guarded: bool) -> SmtpProvider:
    assert isinstance(config, SmtpConfig)
    return SmtpProvider(config, guarded=guarded)


SMS_PROVIDERS: Mapping[str, ProviderSpec[SmsProvider]] = {
    # Writing a log line twice sends nothing twice.
    "console": ProviderSpec(ConsoleConfig, _console, repeats_dropped=True),
    "webhook": ProviderSpec(WebhookConfig, _webhook, repeats_dropped=True),
    "twilio": ProviderSpec(TwilioConfig, _twilio),
}

EMAIL_PROVIDERS: Mapping[str, ProviderSpec[EmailProvider]] = {
    "console": ProviderSpec(ConsoleConfig, _console, repeats_dropped=True),
    "smtp": ProviderSpec(SmtpConfig, _smtp),
}


def repeats_dropped(channel: str, name: str) -> bool:
    """True when `name` on `channel` drops a repeated message (unknown names: False)."""
    try:
        return _spec(channel, name).repeats_dropped
    except ProviderNotSupported:
        return False


def _registry(channel: str) -> Mapping[str, ProviderSpec[Any]]:
    normalized = channel.strip().upper()
    if normalized == "SMS":
        return SMS_PROVIDERS
    if normalized == "EMAIL":
        return EMAIL_PROVIDERS
    raise ProviderNotSupported(
        "The channel is not supported.",
        details=[{"field": "channel", "message": "must be SMS or EMAIL"}],
    )


def _spec(channel: str, name: str) -> ProviderSpec[Any]:
    registry = _registry(channel)
    spec = registry.get(name.strip().lower())
    if spec is None:
        supported = ", ".join(sorted(registry))
        raise ProviderNotSupported(
            details=[{"field": "provider", "message": f"must be one of: {supported}"}]
        )
    return spec


def config_model(channel: str, name: str) -> type[ProviderConfig]:
    """The pydantic model that validates the settings of provider `name` on `channel`."""
    return _spec(channel, name).config_model


def validate_config(
    channel: str, name: str, config: Mapping[str, Any], *, field_prefix: str = ""
) -> ProviderConfig:
    """Parse `config` with the provider's model or raise PROVIDER_CONFIG_INVALID with details.

    `field_prefix` (e.g. "config") lets an API name the fields as they appear in its body.
    """
    model = config_model(channel, name)
    try:
        return model.model_validate(dict(config))
    except ValidationError as exc:
        raise ProviderConfigInvalid(details=_details(exc, field_prefix)) from None


def _details(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    # include_input=False: the rejected value may be a secret.
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        path = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        message = error["msg"].removeprefix("Value error, ")
        details.append({"field": path or "config", "message": message})
    return details


def build_sms_provider(
    name: str, config: Mapping[str, Any], *, client: httpx.AsyncClient | None = None
) -> SmsProvider:
    """A ready SMS provider; HTTP providers share `client` so the worker keeps one pool."""
    spec: ProviderSpec[SmsProvider] = _spec("SMS", name)
    return spec.build(validate_config("SMS", name, config), client, False)


def build_email_provider(
    name: str, config: Mapping[str, Any], *, guarded: bool = False
) -> EmailProvider:
    """A ready email provider; `guarded` ones connect only to checked public addresses."""
    spec: ProviderSpec[EmailProvider] = _spec("EMAIL", name)
    return spec.build(validate_config("EMAIL", name, config), None, guarded)


def redact(channel: str, name: str, config: Mapping[str, Any] | ProviderConfig) -> dict[str, Any]:
    """Settings safe to show: secrets masked, even when the stored settings no longer validate."""
    model = config_model(channel, name)
    if isinstance(config, ProviderConfig):
        return config.redacted()
    try:
        return model.model_validate(dict(config)).redacted()
    except ValidationError:
        pass
    # Settings that no longer validate (an older version, a hand edit) are still shown field by
    # field; secret fields are masked whatever their value, and unknown keys are left out since
    # nothing says they are not secret.
    shown: dict[str, Any] = {}
    for field_name, field in model.model_fields.items():
        if field_name not in config:
            continue
        value = config[field_name]
        if _is_secret_field(field.annotation):
            shown[field_name] = None if value is None else mask_secret(str(_unwrap(value)))
        elif field_name in model.url_fields and isinstance(value, str):
            shown[field_name] = mask_url(value)
        elif isinstance(value, str | int | float | bool) or value is None:
            shown[field_name] = value
    return shown


def _is_secret_field(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return SecretStr in getattr(annotation, "__args__", ())


def _unwrap(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value
