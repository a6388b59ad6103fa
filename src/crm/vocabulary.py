"""The words shared by the domains and the wire: channels, identity providers, code purposes and
why a session ended. Each is a StrEnum, so its members are the very strings stored and sent."""

from __future__ import annotations

from enum import StrEnum

# The outbox's statuses are messaging's own: crm.messaging.models.OutboxStatus.


class Channel(StrEnum):
    """How a message reaches a person."""

    SMS = "SMS"
    EMAIL = "EMAIL"


class Provider(StrEnum):
    """The sign-in identities crm keeps (CRM.COM's other providers are refused)."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"


class ChallengePurpose(StrEnum):
    """What a one-time code or emailed token proves when it is spent."""

    REGISTER = "REGISTER"
    SIGN_IN = "SIGN_IN"
    PASSWORD_RESET = "PASSWORD_RESET"
    EMAIL_VERIFICATION = "EMAIL_VERIFICATION"


class RevokeReason(StrEnum):
    """Why a session ended, kept on the session row (at most 40 characters)."""

    SIGNED_OUT = "SIGNED_OUT"
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"
    PASSWORD_RESET = "PASSWORD_RESET"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"
    UNPROVEN_ACCESS_ENDED = "UNPROVEN_ACCESS_ENDED"
    BACK_OFFICE = "back_office"  # stored lower-case since the first release


class OperatorRole(StrEnum):
    """What an operator may do in the console (crm.operators.roles lists the permissions)."""

    OWNER = "owner"  # everything, including operators and keys
    ADMIN = "admin"  # everything but operators
    AGENT = "agent"  # contacts, identities, sessions, consents
    VIEWER = "viewer"  # read only


class OperatorAction(StrEnum):
    """What an operator did in the console (or an administrator with the CLI), as the tenant's
    activity log records it. Changes to contacts go to the contact's own audit trail instead."""

    SIGNED_IN = "SIGNED_IN"
    SIGN_IN_FAILED = "SIGN_IN_FAILED"
    SIGNED_OUT = "SIGNED_OUT"
    SESSION_ENDED = "SESSION_ENDED"
    TOTP_ENROLLED = "TOTP_ENROLLED"
    OPERATOR_CREATED = "OPERATOR_CREATED"
    OPERATOR_DISABLED = "OPERATOR_DISABLED"
    PASSWORD_RESET = "PASSWORD_RESET"
    INTEGRATION_SAVED = "INTEGRATION_SAVED"
    INTEGRATION_REMOVED = "INTEGRATION_REMOVED"
    TEST_MESSAGE_SENT = "TEST_MESSAGE_SENT"
    APPLICATION_CREATED = "APPLICATION_CREATED"
    KEY_CREATED = "KEY_CREATED"
    KEY_REVOKED = "KEY_REVOKED"
    MESSAGE_RETRIED = "MESSAGE_RETRIED"


class EventType(StrEnum):
    """What happened to a contact (or a webhook endpoint), as other systems learn it."""

    CONTACT_CREATED = "contact.created"
    CONTACT_UPDATED = "contact.updated"
    CONTACT_ERASED = "contact.erased"
    IDENTITY_ADDED = "identity.added"
    IDENTITY_VERIFIED = "identity.verified"
    IDENTITY_REMOVED = "identity.removed"
    IDENTITY_LOCKED = "identity.locked"
    IDENTITY_UNLOCKED = "identity.unlocked"
    SESSION_STARTED = "session.started"
    SESSION_ENDED = "session.ended"
    CONSENT_CHANGED = "consent.changed"
    PASSWORD_CHANGED = "password.changed"
    MESSAGE_FAILED = "message.failed"
    WEBHOOK_DISABLED = "webhook.disabled"


class AddressType(StrEnum):
    """What an address of a contact is for (CRM.COM's words; several may share a type)."""

    HOME = "HOME"
    BUSINESS = "BUSINESS"
    ALTERNATIVE = "ALTERNATIVE"


class DevicePlatform(StrEnum):
    """Where a contact's push-notification device runs."""

    MOBILE = "MOBILE"
    BROWSER = "BROWSER"
    OTHER = "OTHER"


class CustomFieldType(StrEnum):
    """What a tenant's custom field holds; every value travels as a string on the wire."""

    STRING = "STRING"
    INTEGER = "INTEGER"
    DECIMAL = "DECIMAL"
    BOOLEAN = "BOOLEAN"
    DATE = "DATE"  # YYYY-MM-DD
