"""Self-service sign-in and profile rules: register, codes, passwords, tokens, own profile.

The flows live in their own modules (registration, signin, access, recovery, profile, with
flows_common beneath them); this module re-exports them, and the back office uses the identity
and session functions re-exported here (add_identity, list_identities, remove_identity,
unlock_identity, list_sessions, revoke_all_sessions).
"""

from __future__ import annotations

from crm.identities.access import (
    _PROFILE_COLUMNS,
    _SIGNED_IN_QUERY,
    _phone_subquery,
    refresh,
    resolve_access,
    sign_out,
)
from crm.identities.flows_common import (
    _MAIL_HOURLY_CAP,
    _TOKEN_PURPOSE,
    SOURCE,
    CodeSent,
    Grant,
    RequestMeta,
    SignedIn,
    _actor,
    _client,
    _client_limit,
    _credential_identifier,
    _grant,
    _identities_for,
    _is_verified,
    _policy,
    _queue_token_email,
    _send_code,
    _signer_ready,
)
from crm.identities.identities import (
    add_identity,
    list_identities,
    remove_identity,
    unlock_identity,
)
from crm.identities.profile import (
    add_own_identity,
    contact_exists,
    profile,
    update_profile,
)
from crm.identities.recovery import (
    _consume_token,
    _email_identity_for_username,
    _email_token,
    _set_password,
    change_password,
    forgot_password,
    request_email_verification,
    reset_password,
    verify_email,
)
from crm.identities.registration import register
from crm.identities.sessions import list_sessions, revoke_all_sessions
from crm.identities.signin import (
    _named,
    _send_decoy,
    _send_sign_in_code,
    authenticate,
    request_code,
    validate,
)

__all__ = [
    "SOURCE",
    "_MAIL_HOURLY_CAP",
    "_PROFILE_COLUMNS",
    "_SIGNED_IN_QUERY",
    "_TOKEN_PURPOSE",
    "CodeSent",
    "Grant",
    "RequestMeta",
    "SignedIn",
    "_actor",
    "_client",
    "_client_limit",
    "_consume_token",
    "_credential_identifier",
    "_email_identity_for_username",
    "_email_token",
    "_grant",
    "_identities_for",
    "_is_verified",
    "_named",
    "_phone_subquery",
    "_policy",
    "_queue_token_email",
    "_send_code",
    "_send_decoy",
    "_send_sign_in_code",
    "_set_password",
    "_signer_ready",
    "add_identity",
    "add_own_identity",
    "authenticate",
    "change_password",
    "contact_exists",
    "forgot_password",
    "list_identities",
    "list_sessions",
    "profile",
    "refresh",
    "register",
    "remove_identity",
    "request_code",
    "request_email_verification",
    "reset_password",
    "resolve_access",
    "revoke_all_sessions",
    "sign_out",
    "unlock_identity",
    "update_profile",
    "validate",
    "verify_email",
]
