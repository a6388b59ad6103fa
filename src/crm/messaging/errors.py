"""Client-facing messaging errors: unknown providers and invalid provider settings."""

from __future__ import annotations

from crm.errors import InvalidRequest


class ProviderNotSupported(InvalidRequest):
    code = "PROVIDER_NOT_SUPPORTED"
    message = "The provider is not supported."


class ProviderConfigInvalid(InvalidRequest):
    code = "PROVIDER_CONFIG_INVALID"
    message = "The provider settings are not valid."
