"""Per-application self-service policy (OTP limits, phone strictness) read from Application.settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm.tenants.models import Application

# API.md section 3: codes live 5 minutes by default and never more than 10.
MAX_OTP_TTL_SECONDS = 600


class EmailPasswordRegistration(StrEnum):
    """What an email + password registration answers (see the README's security notes)."""

    PROOF_FIRST = "proof_first"  # a code to the address; the password signs in once proven
    TOKENS_FIRST = "tokens_first"  # CRM.COM's: tokens at once, ended by an outside first proof


@dataclass(frozen=True, slots=True)
class Policy:
    """The limits one application's sign-ins run under; every field has API.md's default."""

    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 5
    otp_resend_cooldown_seconds: int = 30
    otp_hourly_send_limit: int = 10
    # NIST SP 800-63B-4 throttling: from this many consecutive failures new codes wait...
    failure_delay_threshold: int = 10
    # ...a delay starting here and doubling per further failure, capped below...
    failure_base_delay_seconds: int = 30
    failure_max_delay_seconds: int = 3600
    # ...and at this many the identity is locked until the back office unlocks it.
    failure_lock_threshold: int = 100
    strict_phone_validation: bool = False
    password_reset_ttl_seconds: int = 3600
    email_verification_ttl_seconds: int = 86400
    # Optional portal pages; "{token}" is replaced. Without them the bare token is emailed.
    password_reset_url: str | None = None
    email_verification_url: str | None = None
    # Kept as the enum's plain string: `crm applications settings` checks a value's type
    # against the default's.
    email_password_registration: str = EmailPasswordRegistration.PROOF_FIRST.value

    def failure_delay(self, failures: int) -> int:
        """Seconds a new code must wait after the last failure, given the consecutive failures."""
        if failures < self.failure_delay_threshold:
            return 0
        exponent = min(failures - self.failure_delay_threshold, 20)
        return int(
            min(self.failure_base_delay_seconds * 2**exponent, self.failure_max_delay_seconds)
        )


def _int(raw: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = raw.get(name, default)
    # A bad value in the JSON (typed by an operator) falls back to the default rather than
    # breaking every sign-in of the application; bool is not an int here.
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return max(low, min(high, value))


def _url(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if isinstance(value, str) and value.startswith(("https://", "http://")) and "{token}" in value:
        return value
    return None


def from_settings(raw: Mapping[str, Any] | None, mode: str) -> Policy:
    """Build the policy from an application's settings JSON; out-of-range values are clamped."""
    raw = raw or {}
    defaults = Policy()
    # A zero cooldown is only for test keys (automated tests of an integration); live codes
    # always wait at least a second between sends.
    cooldown_floor = 0 if mode == "test" else 1
    strict = raw.get("strict_phone_validation", False)
    return Policy(
        otp_ttl_seconds=_int(
            raw, "otp_ttl_seconds", defaults.otp_ttl_seconds, 30, MAX_OTP_TTL_SECONDS
        ),
        otp_max_attempts=_int(raw, "otp_max_attempts", defaults.otp_max_attempts, 1, 10),
        otp_resend_cooldown_seconds=_int(
            raw,
            "otp_resend_cooldown_seconds",
            defaults.otp_resend_cooldown_seconds,
            cooldown_floor,
            3600,
        ),
        otp_hourly_send_limit=_int(
            raw, "otp_hourly_send_limit", defaults.otp_hourly_send_limit, 1, 100
        ),
        failure_delay_threshold=_int(
            raw, "failure_delay_threshold", defaults.failure_delay_threshold, 1, 1000
        ),
        failure_base_delay_seconds=_int(
            raw, "failure_base_delay_seconds", defaults.failure_base_delay_seconds, 1, 3600
        ),
        failure_max_delay_seconds=_int(
            raw, "failure_max_delay_seconds", defaults.failure_max_delay_seconds, 1, 86400
        ),
        failure_lock_threshold=_int(
            raw, "failure_lock_threshold", defaults.failure_lock_threshold, 2, 10000
        ),
        strict_phone_validation=strict if isinstance(strict, bool) else False,
        password_reset_ttl_seconds=_int(
            raw, "password_reset_ttl_seconds", defaults.password_reset_ttl_seconds, 300, 86400
        ),
        email_verification_ttl_seconds=_int(
            raw,
            "email_verification_ttl_seconds",
            defaults.email_verification_ttl_seconds,
            300,
            7 * 86400,
        ),
        password_reset_url=_url(raw, "password_reset_url"),
        email_verification_url=_url(raw, "email_verification_url"),
        email_password_registration=_registration(raw),
    )


def _registration(raw: Mapping[str, Any]) -> str:
    value = raw.get("email_password_registration")
    try:
        return EmailPasswordRegistration(str(value)).value
    except ValueError:
        # Anything else is the safe default: an unproven address gives no power.
        return EmailPasswordRegistration.PROOF_FIRST.value


async def load(session: AsyncSession, application_id: str | None, mode: str) -> Policy:
    """The policy of `application_id` (defaults when it has none or no application is known)."""
    if application_id is None:
        return from_settings(None, mode)
    application = await session.get(Application, application_id)
    return from_settings(application.settings if application is not None else None, mode)
