"""Client-facing messaging errors: unknown providers, invalid or unsafe provider settings."""

from __future__ import annotations

from crm.errors import InvalidRequest
from crm.errors import ProviderNotSupported as ProviderNotSupported


class ProviderConfigInvalid(InvalidRequest):
    code = "PROVIDER_CONFIG_INVALID"
    message = "The provider settings are not valid."


class ProviderUrlNotAllowed(InvalidRequest):
    code = "PROVIDER_URL_NOT_ALLOWED"
    message = "The provider address is private, loopback or link-local; it is not allowed."


class ProviderHostUnresolvable(InvalidRequest):
    code = "PROVIDER_HOST_UNRESOLVABLE"
    message = "The provider's host name does not resolve."


class ProviderUrlNotHttps(InvalidRequest):
    code = "PROVIDER_URL_NOT_HTTPS"
    message = "In production, provider and webhook addresses must use https://."


class SecretsRequired(InvalidRequest):
    code = "PROVIDER_SECRETS_REQUIRED"
    message = (
        "The provider's destination changed, so its secrets must be sent again in full: a stored "
        "secret never follows a new address."
    )
