"""Per-application self-service policy (OTP limits, phone strictness) read from Application.settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm.db import read_connection
from crm.errors import InvalidCountry
from crm.identifiers.core import normalize_country
from crm.tenants.models import Application

# API.md section 3: codes live 5 minutes by default and never more than 10.
MAX_OTP_TTL_SECONDS = 600
# A host name or IPv4 address in an origin, as browsers serialise it (lower case, ASCII).
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")


class ClientOperation(StrEnum):
    """What a per-client limit counts; the value prefixes the counter's bucket."""

    REGISTER = "register"
    SIGN_IN = "authenticate"
    OTP_REQUEST = "otp-request"
    OTP_VALIDATE = "otp-validate"
    PASSWORD_RESET = "forgot-password"
    CONTACT_EXISTS = "contact-exists"
    EMAIL_VERIFICATION = "email-verification"


# The limit of each operation per client address and public key: the Policy field (and CRM_*
# setting of the same name) and its window. One carrier NAT or office address can stand for
# thousands of customers, so these only stop one address sweeping across many identities;
# the per-identity limits (tries per code, sends per hour, the failure counter) are what stop
# guessing at one person, whatever address it comes from.
CLIENT_LIMITS: dict[ClientOperation, tuple[str, int]] = {
    ClientOperation.REGISTER: ("register_limit_per_client_hour", 3600),
    ClientOperation.SIGN_IN: ("signin_limit_per_client_minute", 60),
    ClientOperation.OTP_REQUEST: ("otp_request_limit_per_client_minute", 60),
    ClientOperation.OTP_VALIDATE: ("otp_validate_limit_per_client_minute", 60),
    ClientOperation.PASSWORD_RESET: ("password_reset_limit_per_client_minute", 60),
    ClientOperation.CONTACT_EXISTS: ("contact_exists_limit_per_client_minute", 60),
    ClientOperation.EMAIL_VERIFICATION: ("email_verification_limit_per_client_hour", 3600),
}
MAX_CLIENT_LIMIT = 100_000


def client_limit_defaults(settings: Any) -> dict[str, int]:
    """The deployment's defaults of the per-client limits, from its CRM_* settings."""
    return {name: int(getattr(settings, name)) for name, _ in CLIENT_LIMITS.values()}


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
    # One client (API key and address) may use only this share of an identity's hourly sends,
    # so a stranger asking for codes cannot use up the owner's.
    otp_hourly_send_limit_per_client: int = 3
    # NIST SP 800-63B-4 throttling, counted apart for codes (per identity) and passwords (per
    # contact). From this many consecutive failures codes and passwords wait...
    failure_delay_threshold: int = 50
    # ...a delay starting here and doubling per further failure, capped below...
    failure_base_delay_seconds: int = 30
    failure_max_delay_seconds: int = 3600
    # ...and at this many the identity is locked for failure_lock_seconds (or until the back
    # office unlocks it). A count left alone for failure_reset_seconds starts again from zero.
    failure_lock_threshold: int = 1000
    failure_lock_seconds: int = 3600
    failure_reset_seconds: int = 3600
    # The guessing client (API key and address, per identity) is delayed from far fewer
    # failures; only its first failures count against the identity, so one stranger can
    # never delay or lock the owner.
    client_failure_delay_threshold: int = 5
    client_failure_base_delay_seconds: int = 5
    strict_phone_validation: bool = False
    password_reset_ttl_seconds: int = 3600
    email_verification_ttl_seconds: int = 86400
    # Optional portal pages; "{token}" is replaced. Without them the bare token is emailed.
    password_reset_url: str | None = None
    email_verification_url: str | None = None
    # ISO alpha-3 countries whose numbers may receive SMS; None: every country.
    sms_countries: tuple[str, ...] | None = None
    # The country of a phone number written without its calling code ("99773656") where no
    # country_code comes with it: code requests, sign-in, the existence check, profile phones.
    # None (tenants have no country of their own): such a number is refused as before.
    default_country: str | None = None
    # Per-client-address limits (see CLIENT_LIMITS). Unset here, the deployment's CRM_* default
    # applies; these values are those defaults' own defaults.
    register_limit_per_client_hour: int = 30
    signin_limit_per_client_minute: int = 60
    otp_request_limit_per_client_minute: int = 60
    otp_validate_limit_per_client_minute: int = 60
    password_reset_limit_per_client_minute: int = 60
    contact_exists_limit_per_client_minute: int = 30
    email_verification_limit_per_client_hour: int = 20
    # Browser origins allowed to call the Self-Service API with this application's keys and
    # tokens (CORS), comma-separated: `https://portal.example.com,http://localhost:3000` or `*`.
    allowed_origins: str | None = None
    # Where a redirect sign-in (OpenID Connect) may send the browser back to, comma-separated
    # URLs compared exactly; none: redirect sign-in is off for the application.
    oidc_redirect_urls: str | None = None

    def client_limit(self, operation: ClientOperation) -> tuple[int, int]:
        """(requests allowed, window in seconds) per client address and key for `operation`."""
        name, window = CLIENT_LIMITS[operation]
        limit: int = getattr(self, name)
        return limit, window

    @property
    def origins(self) -> frozenset[str]:
        return parse_origins(self.allowed_origins)

    # Kept as the enum's plain string: `crm applications settings` checks a value's type
    # against the default's.
    email_password_registration: str = EmailPasswordRegistration.PROOF_FIRST.value

    def failure_delay(self, failures: int) -> int:
        """Seconds a new code must wait after the last failure, given the consecutive failures."""
        return self._delay(failures, self.failure_delay_threshold, self.failure_base_delay_seconds)

    def client_failure_delay(self, failures: int) -> int:
        """Seconds one client must wait after its last failure at an identity.

        Kept under half the reset period: a client that retries whenever it may is never quiet
        long enough for its count to be forgotten, so it never earns new failures to count
        against the identity.
        """
        delay = self._delay(
            failures, self.client_failure_delay_threshold, self.client_failure_base_delay_seconds
        )
        return min(delay, max(1, self.failure_reset_seconds // 2))

    def _delay(self, failures: int, threshold: int, base: int) -> int:
        if failures < threshold:
            return 0
        exponent = min(failures - threshold, 20)
        return int(min(base * 2**exponent, self.failure_max_delay_seconds))


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


def parse_sms_countries(value: str | list[str]) -> tuple[str, ...]:
    """Read "CYP,GRC" (or a list) as alpha-3 codes; raise InvalidCountry for unknown or none."""
    parts = value.split(",") if isinstance(value, str) else value
    codes = tuple(dict.fromkeys(normalize_country(part) for part in parts if str(part).strip()))
    if not codes:
        raise InvalidCountry("Name at least one ISO 3166-1 alpha-3 country, or unset the list.")
    return codes


def _countries(raw: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = raw.get("sms_countries")
    if value is None:
        return None
    if not isinstance(value, (str, list)):
        return ()
    # An allow-list fails closed: a stored value that cannot be read allows no country at all,
    # rather than every country.
    try:
        return parse_sms_countries(value)
    except (InvalidCountry, AttributeError):
        return ()


def _default_country(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("default_country")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return normalize_country(value)
    except InvalidCountry:
        return None  # unreadable: numbers need their calling code, as without the setting


def parse_origins(raw: object) -> frozenset[str]:
    """The origins of an `allowed_origins` value that are well formed (see origin_problem)."""
    if not isinstance(raw, str):
        return frozenset()
    found = set()
    for entry in raw.split(","):
        origin = _origin(entry)
        if origin is not None:
            found.add(origin)
    return frozenset(found)


def origin_problem(raw: str) -> str | None:
    """Why an `allowed_origins` value is refused, or None when every entry is an origin."""
    for entry in raw.split(","):
        if _origin(entry) is None:
            return (
                f"{entry.strip()!r} is not an origin: give scheme://host[:port] "
                "(http or https, no path, the host in its ASCII form) or *"
            )
    return None


def _origin(entry: str) -> str | None:
    """`HTTPS://Portal.Example.com:443/` -> `https://portal.example.com`; None if not an origin.

    Browsers send the serialised origin (lower case, no default port, no path), so entries are
    brought to that form once here and compared exactly per request. `null` (sandboxed frames,
    files) is never an origin that can be allowed: any page can make itself `null`.
    """
    text = entry.strip()
    if text == "*":
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if (
        scheme not in {"http", "https"}
        or not host
        or not host.isascii()
        or parts.username is not None
        or parts.password is not None
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
    ):
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal, already checked by urlsplit
    elif _HOST.fullmatch(host) is None:
        return None  # wildcards, spaces, underscores: nothing a browser would send
    default = 443 if scheme == "https" else 80
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{scheme}://{host}{suffix}"


def from_settings(
    raw: Mapping[str, Any] | None, mode: str, client_defaults: Mapping[str, int] | None = None
) -> Policy:
    """Build the policy from an application's settings JSON; out-of-range values are clamped.

    `client_defaults` are the deployment's per-client limits (client_limit_defaults), used for
    those the application does not set.
    """
    raw = raw or {}
    defaults = Policy()
    limits = {
        name: _int(
            raw,
            name,
            (client_defaults or {}).get(name, getattr(defaults, name)),
            1,
            MAX_CLIENT_LIMIT,
        )
        for name, _ in CLIENT_LIMITS.values()
    }
    origins = parse_origins(raw.get("allowed_origins"))
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
        otp_hourly_send_limit_per_client=_int(
            raw,
            "otp_hourly_send_limit_per_client",
            defaults.otp_hourly_send_limit_per_client,
            1,
            100,
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
            raw, "failure_lock_threshold", defaults.failure_lock_threshold, 2, 100000
        ),
        failure_lock_seconds=_int(
            raw, "failure_lock_seconds", defaults.failure_lock_seconds, 60, 7 * 86400
        ),
        failure_reset_seconds=_int(
            raw, "failure_reset_seconds", defaults.failure_reset_seconds, 60, 30 * 86400
        ),
        client_failure_delay_threshold=_int(
            raw, "client_failure_delay_threshold", defaults.client_failure_delay_threshold, 1, 100
        ),
        client_failure_base_delay_seconds=_int(
            raw,
            "client_failure_base_delay_seconds",
            defaults.client_failure_base_delay_seconds,
            1,
            3600,
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
        sms_countries=_countries(raw),
        default_country=_default_country(raw),
        allowed_origins=",".join(sorted(origins)) or None,
        oidc_redirect_urls=_redirect_urls(raw),
        email_password_registration=_registration(raw),
        **limits,
    )


def _redirect_urls(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("oidc_redirect_urls")
    if not isinstance(value, str):
        return None
    urls = [u.strip() for u in value.split(",") if u.strip().startswith(("https://", "http://"))]
    return ",".join(urls) or None


def _registration(raw: Mapping[str, Any]) -> str:
    value = raw.get("email_password_registration")
    try:
        return EmailPasswordRegistration(str(value)).value
    except ValueError:
        # Anything else is the safe default: an unproven address gives no power.
        return EmailPasswordRegistration.PROOF_FIRST.value


async def load(
    session: AsyncSession,
    application_id: str | None,
    mode: str,
    client_defaults: Mapping[str, int] | None = None,
) -> Policy:
    """The policy of `application_id` (defaults when it has none or no application is known)."""
    if application_id is None:
        return from_settings(None, mode, client_defaults)
    application = await session.get(Application, application_id)
    return from_settings(
        application.settings if application is not None else None, mode, client_defaults
    )


async def allowed_origins(engine: AsyncEngine) -> list[tuple[str, str, frozenset[str]]]:
    """(application id, tenant id, origins) of every application that allows some origin."""
    query = select(Application.id, Application.tenant_id, Application.settings)
    async with read_connection(engine) as connection:
        rows = (await connection.execute(query)).all()
    found = []
    for application_id, tenant_id, raw in rows:
        origins = parse_origins((raw or {}).get("allowed_origins"))
        if origins:
            found.append((application_id, tenant_id, origins))
    return found
