"""Client-facing messaging errors: unknown providers, invalid or unsafe provider settings."""

from __future__ import annotations

from crm.errors import InvalidRequest, NotFound
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


class TemplateNotFound(NotFound):
    code = "TEMPLATE_NOT_FOUND"
    message = "This tenant has no template of its own for this purpose and language."


class TemplatePurposeUnknown(NotFound):
    code = "TEMPLATE_PURPOSE_UNKNOWN"
    message = "There is no such message purpose (OTP, EMAIL_VERIFICATION, PASSWORD_RESET)."


class TemplateLanguageInvalid(InvalidRequest):
    code = "TEMPLATE_LANGUAGE_INVALID"
    message = "The language must be a tag such as en, el or pt-BR."


class TemplateInvalid(InvalidRequest):
    code = "TEMPLATE_INVALID"
    message = "The template is not valid."


class TemplateSyntaxInvalid(InvalidRequest):
    code = "TEMPLATE_SYNTAX_INVALID"
    message = (
        "A placeholder is malformed: write {name} with a plain name, and {{ or }} for a brace."
    )


class TemplateUnknownPlaceholder(InvalidRequest):
    code = "TEMPLATE_UNKNOWN_PLACEHOLDER"
    message = "The template uses a placeholder this message does not have."


class TemplateSecretMissing(InvalidRequest):
    code = "TEMPLATE_CODE_MISSING"
    message = "The message would not carry its code or link: the template must use it."


class TemplateSecretInSubject(InvalidRequest):
    code = "TEMPLATE_SECRET_IN_SUBJECT"
    message = "An email subject may not show the code or link (subjects are logged and previewed)."


class TemplateSmsTooLong(InvalidRequest):
    code = "TEMPLATE_SMS_TOO_LONG"
    message = "The SMS would not fit one segment (160 GSM-7 characters, or 70 otherwise)."
