"""Errors of OpenID Connect sign-in: provider settings, ID tokens, redirects and linking."""

from __future__ import annotations

from crm.errors import AppError, Conflict, Forbidden, InvalidRequest, NotFound, Unauthenticated


class IdentityProviderTypeUnknown(NotFound):
    code = "IDENTITY_PROVIDER_TYPE_UNKNOWN"
    message = "The identity provider type must be google, apple, facebook or oidc."


class IdentityProviderNotFound(NotFound):
    code = "IDENTITY_PROVIDER_NOT_FOUND"
    message = "This identity provider is not set for this tenant and mode."


class IdentityProviderInvalid(InvalidRequest):
    code = "IDENTITY_PROVIDER_INVALID"
    message = "The identity provider settings are not valid."


class IdentityProviderNotConfigured(InvalidRequest):
    code = "IDENTITY_PROVIDER_NOT_CONFIGURED"
    message = "This identity provider is not set up for this tenant; ask the business to set it."


class IdentityProviderNotForApplication(Forbidden):
    code = "IDENTITY_PROVIDER_NOT_FOR_APPLICATION"
    message = "This identity provider may not be used by this application."


class OidcProviderUnavailable(AppError):
    status_code = 502
    code = "OIDC_PROVIDER_UNAVAILABLE"
    message = "The identity provider did not answer as expected; try again later."


# -- ID tokens (401: the token does not prove who the caller says) -----------------------------


class OidcTokenInvalid(Unauthenticated):
    code = "OIDC_TOKEN_INVALID"
    message = "The ID token is malformed, uses a refused algorithm, or misses a required claim."


class OidcSignatureInvalid(Unauthenticated):
    code = "OIDC_SIGNATURE_INVALID"
    message = "The ID token is not signed by a key the identity provider publishes."


class OidcIssuerMismatch(Unauthenticated):
    code = "OIDC_ISSUER_MISMATCH"
    message = "The ID token was issued by another issuer."


class OidcAudienceMismatch(Unauthenticated):
    code = "OIDC_AUDIENCE_MISMATCH"
    message = "The ID token was issued for another client (audience)."


class OidcTokenExpired(Unauthenticated):
    code = "OIDC_TOKEN_EXPIRED"
    message = "The ID token has expired, or was issued in the future."


class OidcNonceMismatch(Unauthenticated):
    code = "OIDC_NONCE_MISMATCH"
    message = "The ID token's nonce is not the one issued for this sign-in."


# -- redirects -----------------------------------------------------------------------------


class OidcRedirectNotAllowed(InvalidRequest):
    code = "OIDC_REDIRECT_NOT_ALLOWED"
    message = "redirect_url is not one of the application's oidc_redirect_urls (exact match)."


class OidcStateInvalid(InvalidRequest):
    code = "OIDC_STATE_INVALID"
    message = "The sign-in is unknown, expired or already ended; start it again."


class OidcCallbackInvalid(InvalidRequest):
    code = "OIDC_CALLBACK_INVALID"
    message = (
        "The provider's callback form is not a single application/x-www-form-urlencoded form "
        "of at most 16 KiB."
    )


class OidcResultInvalid(Unauthenticated):
    code = "OIDC_RESULT_INVALID"
    message = "The sign-in result is unknown, expired or already used."


# -- linking -------------------------------------------------------------------------------


class OidcLinkRequired(Conflict):
    code = "OIDC_LINK_REQUIRED"
    message = (
        "A contact already holds this email address. Sign in to it (a code to the address) "
        "and link this provider from the signed-in session."
    )


class OidcIdentityTaken(Conflict):
    code = "OIDC_IDENTITY_TAKEN"
    message = "This provider account already signs in another contact."
