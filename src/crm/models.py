"""Imports every table so Alembic and the tests see the whole schema."""

from crm.contacts.models import (
    AuditEvent,
    ConsentEvent,
    Contact,
    ContactDevice,
    ContactPhone,
    ContactPicture,
    CustomFieldDefinition,
)
from crm.db import Base
from crm.deployment.models import SecretCheck
from crm.events.models import Event, WebhookAttempt, WebhookEndpoint
from crm.idempotency.models import IdempotencyRecord
from crm.identities.models import (
    Identity,
    OtpChallenge,
    RetiredRefreshToken,
    Session,
    SigningKey,
)
from crm.imports.models import ImportJob, ImportJobError
from crm.messaging.models import MessageTemplate, OutboxMessage
from crm.operators.models import Operator, OperatorSession
from crm.ratelimits.models import RateCounter
from crm.smsguard.models import SmsDailyCount
from crm.social.models import IdentityProvider, OidcFlow
from crm.tenants.models import ApiKey, Application, Integration, Tenant

__all__ = [
    "ApiKey",
    "Application",
    "AuditEvent",
    "Base",
    "ConsentEvent",
    "Contact",
    "ContactDevice",
    "ContactPhone",
    "ContactPicture",
    "CustomFieldDefinition",
    "Event",
    "IdempotencyRecord",
    "Identity",
    "IdentityProvider",
    "ImportJob",
    "ImportJobError",
    "Integration",
    "MessageTemplate",
    "OidcFlow",
    "Operator",
    "OperatorSession",
    "OtpChallenge",
    "OutboxMessage",
    "RateCounter",
    "RetiredRefreshToken",
    "SecretCheck",
    "Session",
    "SigningKey",
    "SmsDailyCount",
    "Tenant",
    "WebhookAttempt",
    "WebhookEndpoint",
]
