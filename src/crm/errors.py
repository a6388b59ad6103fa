"""The application's error hierarchy: every failure a client can see has a stable code and status."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any


class AppError(Exception):
    """Base of every error that reaches a client as the JSON body of API.md section 2."""

    status_code: int = 400
    code: str = "BAD_REQUEST"
    message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or type(self).message
        self.details = details or []
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequest(AppError):
    status_code = 400
    code = "INVALID_REQUEST"
    message = "The request is not valid."


class ProviderNotSupported(InvalidRequest):
    """An unknown provider: of sign-in identities or of messages (one code for both surfaces)."""

    code = "PROVIDER_NOT_SUPPORTED"
    message = "The provider is not supported."


class MalformedJson(AppError):
    status_code = 400
    code = "MALFORMED_JSON"
    message = "The request body is not valid JSON."


class Unauthenticated(AppError):
    status_code = 401
    code = "UNAUTHENTICATED"
    message = "Authentication is required."


class ApiKeyMissing(Unauthenticated):
    code = "API_KEY_MISSING"
    message = "The api_key header is required."


class ApiKeyInvalid(Unauthenticated):
    code = "API_KEY_INVALID"
    message = "The api_key is unknown or revoked."


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"
    message = "This credential may not perform this operation."


class WrongKeyKind(Forbidden):
    code = "WRONG_KEY_KIND"
    message = "This kind of key may not be used on this API."


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"
    message = "The resource does not exist."


class RouteNotFound(NotFound):
    code = "ROUTE_NOT_FOUND"
    message = "No such endpoint."


class MethodNotAllowed(AppError):
    status_code = 405
    code = "METHOD_NOT_ALLOWED"
    message = "The method is not allowed on this endpoint."


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"
    message = "The resource already exists."


class ConcurrentChange(AppError):
    status_code = 409
    code = "CONCURRENT_CHANGE"
    message = "Another request changed the same record at the same moment; try again."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is too large."


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    message = "The request body must be application/json."


class RateLimited(AppError):
    status_code = 429
    code = "RATE_LIMITED"
    message = "Too many requests; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = retry_after


def retry_after(moment: datetime, now: datetime) -> int:
    """Whole seconds from `now` until `moment`, rounded up and at least one: a client that
    waits exactly this long is never refused again for the same reason."""
    return max(1, math.ceil((moment - now).total_seconds()))


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    message = "A dependency is unavailable; nothing was changed. Try again shortly."


class InternalError(AppError):
    status_code = 500
    code = "INTERNAL_ERROR"
    message = "An unexpected error occurred. Quote the request id when reporting it."


# --- security and identifiers ---


class InvalidPhone(AppError):
    status_code = 400
    code = "INVALID_PHONE"
    message = "The phone number is not valid."


class InvalidEmail(AppError):
    status_code = 400
    code = "INVALID_EMAIL"
    message = "The email address is not valid."


class MixedScriptDomain(InvalidEmail):
    """A domain label mixing scripts, the shape of a lookalike ("exаmple.com", Cyrillic "а")."""

    code = "EMAIL_DOMAIN_MIXED_SCRIPTS"
    message = "A label of the email domain mixes letters of different scripts."


class PhoneNotForSms(InvalidPhone):
    """Premium-rate and shared-cost numbers: texting them costs the business, not the owner."""

    code = "PHONE_NUMBER_NOT_FOR_SMS"
    message = "Codes cannot be sent to premium-rate or shared-cost numbers."


class InvalidCountry(AppError):
    status_code = 400
    code = "INVALID_COUNTRY_CODE"
    message = "The country code must be an ISO 3166-1 alpha-3 code."


class WeakPassword(AppError):
    """A password the policy refuses; the base class is used for common or guessable ones."""

    status_code = 400
    code = "PASSWORD_TOO_WEAK"
    message = "The password is too common or too easy to guess; choose another."


class PasswordTooShort(WeakPassword):
    code = "PASSWORD_TOO_SHORT"
    message = "The password must be at least 8 characters long."


class PasswordTooLong(WeakPassword):
    code = "PASSWORD_TOO_LONG"
    message = "The password must be at most 128 characters long."


class PasswordRepetitive(WeakPassword):
    code = "PASSWORD_REPETITIVE"
    message = "The password repeats one character or a short pattern; choose another."


class PasswordSequential(WeakPassword):
    code = "PASSWORD_SEQUENTIAL"
    message = "The password is a run of consecutive characters or keyboard keys; choose another."


class PasswordWhitespaceOnly(WeakPassword):
    code = "PASSWORD_WHITESPACE_ONLY"
    message = "The password must contain something other than spaces."


class InvalidToken(Unauthenticated):
    code = "TOKEN_INVALID"
    message = "The access token is invalid."


class TokenExpired(InvalidToken):
    code = "TOKEN_EXPIRED"
    message = "The access token has expired."


class DecryptionFailed(InternalError):
    """A secret stored encrypted could not be opened (tampered, truncated or wrong server key).

    It keeps InternalError's code and message on purpose: the cause is server-side and goes to
    the log, never to the client.
    """


class FieldNotSupported(InvalidRequest):
    """A member of CRM.COM's schema this server does not keep: refused rather than dropped, so
    a client never believes it stored something it did not."""

    code = "FIELD_NOT_SUPPORTED"
    message = "This field of CRM.COM's schema is not supported by this server."
