"""What a self-service flow may read besides its database session and its request's caller and
metadata (which it receives as arguments of their own).

A flow is handed this, not the process's whole runtime, so the domain states its few needs
(clock, secret, the settings it reads (FlowSettings), the engine for its out-of-transaction counters and read
pool, the policy cache) and never reaches for the rest. It is a structural type: the
composition root's runtime, built once per process, already has these attributes, so a request
passes it as is and pays no allocation.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm.clock import Clock
from crm.identities.policy_cache import PolicyCache
from crm.identities.sessions import SessionSettings
from crm.media import MediaStore
from crm.pgpool import PoolSettings
from crm.smsguard.service import SmsSettings


class FlowSettings(SmsSettings, SessionSettings, PoolSettings, Protocol):
    """The deployment settings the flows read, and no others: the SMS defences', a session's
    lifetime, the read pool's, and these. crm.settings.Settings is one; a test may pass any
    object that has them."""

    @property
    def public_url(self) -> str: ...  # the tokens' issuer
    @property
    def access_token_ttl_seconds(self) -> int: ...
    @property
    def access_token_verify_cache(self) -> int: ...
    @property
    def unproven_identity_hours(self) -> int: ...
    @property
    def reauth_max_age_seconds(self) -> int: ...

    # The per-client limits' deployment defaults (policy.CLIENT_LIMITS names them).
    @property
    def register_limit_per_client_hour(self) -> int: ...
    @property
    def signin_limit_per_client_minute(self) -> int: ...
    @property
    def otp_request_limit_per_client_minute(self) -> int: ...
    @property
    def otp_validate_limit_per_client_minute(self) -> int: ...
    @property
    def password_reset_limit_per_client_minute(self) -> int: ...
    @property
    def contact_exists_limit_per_client_minute(self) -> int: ...
    @property
    def email_verification_limit_per_client_hour(self) -> int: ...


class FlowContext(Protocol):
    """Read-only: a flow never rewires the process it runs in."""

    @property
    def clock(self) -> Clock: ...

    @property
    def secret(self) -> str: ...

    @property
    def settings(self) -> FlowSettings: ...

    # Counters that must outlive a rolled-back request (client limits, verify keys, read pool).
    @property
    def engine(self) -> AsyncEngine: ...

    # A second session for counters that commit on their own (see proof.count).
    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def policies(self) -> PolicyCache: ...

    # Where contact pictures are kept (a signed-in read answers with the picture's address).
    @property
    def media(self) -> MediaStore: ...
