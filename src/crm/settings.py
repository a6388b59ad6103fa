"""The deployment's configuration: one pydantic-settings tree read from CRM_* environment variables."""

from __future__ import annotations

import logging
import os
import secrets
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("crm.settings")

# Values that show a secret was copied from an example instead of generated.
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "changethis", "please-change"}


class Settings(BaseSettings):
    """Every setting has a safe development default; production refuses the unsafe ones."""

    model_config = SettingsConfigDict(
        env_prefix="CRM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production"] = Field(
        "development", description="`production` refuses development-only defaults."
    )
    database_url: str = Field(
        "sqlite:///./var/crm.db",
        description="`sqlite:///path/file.db` or `postgresql://user:pass@host:port/db`.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Server secret for HMACs and encryption at rest (32+ characters). "
        "Generated into a 0600 file beside the database when unset in development.",
    )
    secret_key_file: Path | None = Field(
        None, description="Where the generated development secret is kept (default: beside the DB)."
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL clients reach; the JWT issuer."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`auto`: JSON when stderr is not a terminal."
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest accepted request body.")
    api_key_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="How long a resolved api_key (and an application's policy) is cached in-process.",
    )
    db_pool_size: int = Field(
        20,
        ge=2,
        description="Connections per process for transactions (PostgreSQL), kept open once "
        "opened; single statements outside a transaction use a pool of half as many.",
    )
    db_ping_idle_seconds: float = Field(
        5.0,
        ge=0,
        description="Check a pooled PostgreSQL connection before use when it sat idle this long "
        "(0: before every use).",
    )
    db_statement_timeout_ms: int = Field(
        5000, ge=0, description="PostgreSQL statement timeout; 0 disables."
    )
    access_token_ttl_seconds: int = Field(900, ge=60, le=86400)
    refresh_idle_ttl_seconds: int = Field(30 * 86400, ge=300)
    refresh_absolute_ttl_seconds: int = Field(90 * 86400, ge=300)
    refresh_grace_seconds: int = Field(10, ge=0, le=60)
    worker_enabled: bool = Field(
        True, description="Run the message delivery worker inside `crm serve`."
    )
    import_max_bytes: int = Field(
        50 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest file `POST /backoffice/v1/contacts/imports` accepts.",
    )
    import_lease_seconds: float = Field(
        120, ge=5, le=3600, description="An import job a silent worker holds is resumed after this."
    )
    import_poll_seconds: float = Field(
        2, gt=0, le=60, description="How often an idle worker looks for queued import jobs."
    )
    sms_provider: Literal["console", "webhook", "twilio"] = "console"
    email_provider: Literal["console", "smtp"] = "console"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_from: str | None = None
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    sms_webhook_url: str | None = None
    sms_webhook_secret: SecretStr | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    # --- self-service ---
    access_token_verify_cache: int = Field(
        10_000,
        ge=0,
        le=1_000_000,
        description="Access tokens whose signature check is remembered per process (0: verify "
        "every call). Sign-out still takes effect at once: the session is checked every call.",
    )
    register_limit_per_client_hour: int = Field(
        30,
        ge=1,
        le=100_000,
        description="Registrations one client address may make per public key and hour "
        "(each sends an SMS or email to an unproven identifier).",
    )
    # Deployment defaults of the other per-client limits; each application may override them.
    signin_limit_per_client_minute: int = Field(
        60, ge=1, le=100_000, description="Password sign-ins per client address, key and minute."
    )
    otp_request_limit_per_client_minute: int = Field(
        60,
        ge=1,
        le=100_000,
        description="Sign-in code requests per client address, key and minute.",
    )
    otp_validate_limit_per_client_minute: int = Field(
        60, ge=1, le=100_000, description="Code validations per client address, key and minute."
    )
    password_reset_limit_per_client_minute: int = Field(
        60,
        ge=1,
        le=100_000,
        description="Password reset requests per client address, key and minute.",
    )
    contact_exists_limit_per_client_minute: int = Field(
        30,
        ge=1,
        le=100_000,
        description="`GET /contacts` lookups per client address, key and minute.",
    )
    email_verification_limit_per_client_hour: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Verification emails one client address may ask for per key and hour "
        "(each goes to an address the caller names).",
    )
    unproven_identity_hours: int = Field(
        24,
        ge=1,
        le=24 * 30,
        description="Unproven Self-Service claims on an email or phone are deleted after this.",
    )
    reauth_max_age_seconds: int = Field(
        300,
        ge=30,
        le=86400,
        description="Adding an identity, changing a password or the email needs a sign-in this "
        "recent, or the current password.",
    )
    # --- end self-service ---
    # --- contact pictures ---
    media_dir: Path = Field(
        Path("var/media"),
        description="Where contact pictures are stored (the local storage backend).",
    )
    media_public_url: str | None = Field(
        None,
        description="Base URL of served pictures (default: `CRM_PUBLIC_URL` + `/media`); set it "
        "when a CDN or proxy serves the media directory.",
    )
    avatar_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        le=20 * 1024 * 1024,
        description="Largest contact picture (PNG, JPEG or WEBP); larger is 413.",
    )
    media_backend: Literal["local", "s3"] = Field(
        "local", description="`local`: CRM_MEDIA_DIR; `s3`: an S3-compatible bucket."
    )
    media_s3_endpoint: str | None = Field(
        None, description="The bucket's server, e.g. `https://s3.eu-west-1.amazonaws.com`."
    )
    media_s3_bucket: str | None = Field(None, description="The bucket (path-style addressing).")
    media_s3_region: str = Field("us-east-1", description="The region requests are signed for.")
    media_s3_access_key_id: str | None = None
    media_s3_secret_access_key: SecretStr | None = None
    # --- end contact pictures ---
    # --- SMS pumping defence ---
    sms_daily_limit: int = Field(
        5000,
        ge=0,
        le=10_000_000,
        description="SMS one tenant may send per UTC day and mode (a tenant may set its own with "
        "`crm tenants settings`). Past it SMS requests answer 429 SMS_DAILY_LIMIT_REACHED; at 80% "
        "a warning is logged.",
    )
    sms_range_tail_digits: int = Field(
        3,
        ge=1,
        le=8,
        description="Numbers of one country that differ only in their last N digits form one "
        "number range (pumping runs walk through a range of premium numbers).",
    )
    sms_range_limit_per_hour: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Codes one tenant may send per hour to one number range (live keys).",
    )
    sms_range_mode: Literal["enforce", "record", "off"] = Field(
        "enforce", description="`record` only logs and counts what the range cap would refuse."
    )
    sms_conversion_min_sends: int = Field(
        40,
        ge=1,
        le=1_000_000,
        description="Codes sent to a country within the current and previous hour before its "
        "proof rate is judged (live keys).",
    )
    sms_conversion_min_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Below this share of codes proven, further SMS to the country are refused.",
    )
    sms_conversion_mode: Literal["enforce", "record", "off"] = Field(
        "enforce",
        description="`record` only logs and counts what the conversion watch would refuse.",
    )
    # --- end SMS pumping defence ---
    # --- messaging ---
    outbox_max_attempts: int = Field(
        8, ge=1, le=50, description="Tries per message before it is marked failed."
    )
    outbox_backoff_base_seconds: float = Field(
        7.0,
        gt=0,
        description="First retry delay; doubled per try with +/-20% jitter (8 tries: ~15 minutes).",
    )
    outbox_backoff_max_seconds: float = Field(600.0, gt=0, description="Longest retry delay.")
    outbox_poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often a worker looks for due messages queued by other processes.",
    )
    outbox_lease_seconds: float = Field(
        60.0,
        gt=0,
        description="A claimed message not finished within this is sent again (crash recovery); "
        "each send is cut off at half of it.",
    )
    outbox_batch_size: int = Field(20, ge=1, le=500, description="Messages claimed per query.")
    outbox_concurrency: int = Field(
        10, ge=1, le=200, description="Messages sent at once per worker process."
    )
    allow_private_provider_urls: bool | None = Field(
        None,
        description="Let tenants point webhook/Twilio/SMTP settings at private, loopback or "
        "link-local addresses. Default: allowed in development, refused in production (SSRF).",
    )

    @property
    def private_provider_urls_allowed(self) -> bool:
        if self.allow_private_provider_urls is not None:
            return self.allow_private_provider_urls
        return self.env != "production"

    outbox_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Sent and cancelled messages are deleted this many days after creation "
        "(failed ones are kept for inspection).",
    )
    # --- end messaging ---
    # --- events ---
    event_retention_days: int = Field(
        30, ge=1, le=3650, description="Events (and webhook attempts) are deleted after this."
    )
    webhook_backoff_base_seconds: float = Field(
        30.0, gt=0, description="First webhook retry delay; doubled per try with +/-20% jitter."
    )
    webhook_backoff_max_seconds: float = Field(
        3600.0, gt=0, description="Longest delay between two tries of one webhook delivery."
    )
    webhook_retry_seconds: int = Field(
        259200, ge=1, description="A webhook delivery is retried for this long, then failed."
    )
    webhook_disable_after_seconds: int = Field(
        259200,
        ge=1,
        description="An endpoint whose deliveries all failed for this long is disabled.",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=60, description="How long one webhook POST may take."
    )
    # --- end events ---
    # --- web ---
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDR ranges of reverse proxies whose "
        "forwarding header is believed; empty: the socket's peer is the client.",
    )
    trusted_proxy_header: Literal["x-forwarded-for", "forwarded"] = Field(
        "x-forwarded-for",
        description="The header the trusted proxies append the client's address to.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token /metrics requires; without one, production serves no /metrics.",
    )
    docs_enabled: bool = Field(True, description="Serve /docs and /openapi.json.")
    # --- console ---
    console_enabled: bool = Field(True, description="Serve the back-office console at /console/.")
    console_session_idle_seconds: int = Field(
        1800, ge=60, le=86400, description="A console session ends after this long unused."
    )
    console_session_absolute_seconds: int = Field(
        12 * 3600,
        ge=300,
        le=30 * 86400,
        description="A console session ends this long after sign-in.",
    )
    console_lock_threshold: int = Field(
        10, ge=2, le=1000, description="Failed console sign-ins that lock an operator."
    )
    console_lock_seconds: int = Field(
        900, ge=60, le=86400, description="How long a locked operator waits."
    )
    console_owner_totp_required: bool = Field(
        False, description="Owners must set up an authenticator app before using the console."
    )
    operator_activity_retention_days: int = Field(
        365,
        ge=1,
        le=3650,
        description="Entries of the operators' activity log (sign-ins, failed ones, operators, "
        "providers, keys) are deleted this many days after they were written.",
    )
    # --- end console ---

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        parse_networks(value)  # a typo must stop the server, not silently trust nobody
        return value

    # --- end web ---

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("CRM_DATABASE_URL must start with sqlite:// or postgresql://")
        return value

    @model_validator(mode="after")
    def _media_s3_is_complete(self) -> Settings:
        if self.media_backend == "s3":
            missing = [
                f"CRM_MEDIA_S3_{name.upper()}"
                for name in ("endpoint", "bucket", "access_key_id", "secret_access_key")
                if not getattr(self, f"media_s3_{name}")
            ]
            if missing:
                raise ValueError(f"CRM_MEDIA_BACKEND=s3 needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _production_is_strict(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if self.secret_key is None:
            problems.append("CRM_SECRET_KEY must be set in production")
        if self.sms_provider == "console" or self.email_provider == "console":
            problems.append("the console message providers are for development only")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        raw = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        return None if raw in {"", ":memory:"} else Path(raw)

    def secret_key_path(self) -> Path:
        """Where the development secret is kept when CRM_SECRET_KEY is unset."""
        return self.secret_key_file or _default_secret_path(self)

    def resolved_secret(self) -> str:
        """The server secret, generating and persisting one in development when unset."""
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if len(value) < 32 or value.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError("CRM_SECRET_KEY must be at least 32 random characters")
            return value
        path = self.secret_key_file or _default_secret_path(self)
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        # O_EXCL: two processes starting at once must not overwrite each other's secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        log.warning("CRM_SECRET_KEY is not set: generated one into %s (mode 0600)", path)
        return value


def parse_networks(raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """`10.0.0.0/8, 192.0.2.7, ::1` -> networks; raises ValueError naming a bad entry."""
    networks: list[IPv4Network | IPv6Network] = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"CRM_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR range"
            ) from exc
    return tuple(networks)


def _default_secret_path(settings: Settings) -> Path:
    db = settings.sqlite_path()
    folder = db.parent if db is not None else Path("var")
    return folder / "secret_key"
