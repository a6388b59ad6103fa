"""Errors of the identities domain: sign-in identities, one-time codes, sessions and tokens."""

from __future__ import annotations

from crm.errors import AppError, Conflict, Forbidden, InvalidRequest, NotFound, Unauthenticated
from crm.errors import ProviderNotSupported as SharedProviderNotSupported


class StatefulFailure(AppError):
    """A failure whose bookkeeping must be kept (a counted wrong code, a revoked session).

    The router answers it as an error but lets the request's transaction commit, so raising it
    never rolls back the attempt counter or revocation that the failure itself wrote.
    """


class IdentityAlreadyExists(Conflict):
    code = "IDENTITY_ALREADY_EXISTS"
    message = "This email address or phone number is already registered."


class IdentityNotFound(NotFound):
    code = "IDENTITY_NOT_FOUND"
    message = "No such identity."


class IdentityLocked(Forbidden):
    code = "IDENTITY_LOCKED"
    message = "This identity is locked after too many failed attempts; contact support."


class ProviderNotSupported(SharedProviderNotSupported):
    # Same code as a messaging provider refused; only the hint differs.
    message = "This identity provider is not supported; use EMAIL or PHONE."


class CredentialsMismatch(InvalidRequest):
    code = "CREDENTIALS_MISMATCH"
    message = "The credentials given belong to different contacts."


class OtpNotFound(NotFound):
    code = "OTP_NOT_FOUND"
    message = "No such one-time code session, or no live code for this identity."


class OtpInvalid(InvalidRequest, StatefulFailure):
    code = "OTP_INVALID"
    message = "The code is wrong."


class OtpExpired(InvalidRequest):
    code = "OTP_EXPIRED"
    message = "The code has expired; request a new one."


class OtpAlreadyUsed(InvalidRequest):
    code = "OTP_ALREADY_USED"
    message = "The code has already been used; request a new one."


class OtpAttemptsExceeded(InvalidRequest):
    code = "OTP_ATTEMPTS_EXCEEDED"
    message = "Too many wrong tries for this code; request a new one."


class InvalidCredentials(Unauthenticated, StatefulFailure):
    code = "INVALID_CREDENTIALS"
    message = "The username or password is wrong."


class RefreshTokenInvalid(Unauthenticated):
    code = "REFRESH_TOKEN_INVALID"
    message = "The refresh token is missing, unknown, expired or revoked."


class RefreshTokenReused(Unauthenticated, StatefulFailure):
    code = "REFRESH_TOKEN_REUSED"
    message = "This refresh token was already used; the session has been ended for safety."


class SessionRevoked(Unauthenticated):
    code = "SESSION_REVOKED"
    message = "The session has ended; sign in again."


class TokenAudienceMismatch(Unauthenticated):
    code = "TOKEN_KEY_MISMATCH"
    message = "The access token does not belong to the tenant or mode of the api_key."


class NotOwnContact(Forbidden):
    code = "NOT_OWN_CONTACT"
    message = "A contact may only act on its own record."


class TokenInvalidForReset(InvalidRequest):
    code = "RESET_TOKEN_INVALID"
    message = "The password reset token is invalid or has expired."


class VerificationTokenInvalid(InvalidRequest):
    code = "VERIFICATION_TOKEN_INVALID"
    message = "The email verification token is invalid or has expired."


class NoPasswordIdentity(InvalidRequest):
    code = "NO_PASSWORD_IDENTITY"
    message = "This contact has no identity a password can be set on."


class IdentifierRequired(InvalidRequest):
    code = "IDENTIFIER_REQUIRED"
    message = "Give an email_address, or a phone with its country_code."


class ReauthenticationRequired(Forbidden):
    code = "REAUTHENTICATION_REQUIRED"
    message = "This change needs a recent sign-in: sign in again, or give current_password."


class CurrentPasswordInvalid(Forbidden):
    code = "CURRENT_PASSWORD_INVALID"
    message = "current_password is wrong."


class IdentityAlreadyVerified(Conflict):
    code = "IDENTITY_ALREADY_VERIFIED"
    message = "This identity is already verified."


class IdentityClaimExpired(InvalidRequest):
    code = "IDENTITY_CLAIM_EXPIRED"
    message = "This unproven email or phone has expired; register or add it again."


class CredentialNotSupported(InvalidRequest):
    code = "CREDENTIAL_NOT_SUPPORTED"
    message = (
        "CARD and GIFT_PASS credentials belong to CRM.COM's payment and gift-pass products, "
        "which this server does not include; name an email, phone, loyalty identifier, id "
        "number, passport or statutory id."
    )


class BirthdateAlone(InvalidRequest):
    code = "BIRTHDATE_NEEDS_ANOTHER_CREDENTIAL"
    message = "BIRTHDATE identifies nobody on its own: give it with another credential."
