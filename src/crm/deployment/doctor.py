"""`crm doctor`'s checks: settings, database and schema, secret, providers, trusted proxies.

Each check says what holds or what to fix, and never shows a secret: URLs are shown with their
passwords masked, secrets only as set or not set.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from crm.clock import Clock
from crm.db import create_engine
from crm.deployment.preflight import secret_source
from crm.deployment.providers import provider_problems
from crm.deployment.secret import SecretState, check_secret
from crm.errors import AppError
from crm.messaging.integrations import deployment_provider, provider_hosts
from crm.messaging.providers import (
    DeliveryError,
    OutgoingMessage,
    build_email_provider,
    build_sms_provider,
)
from crm.migrate import current_revision, head_revision
from crm.settings import Settings

_SELECTOR = {"SMS": "CRM_SMS_PROVIDER", "EMAIL": "CRM_EMAIL_PROVIDER"}
_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, whether it holds, and what to do if not."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def failed(checks: Iterable[Check]) -> bool:
    return any(check.status is Status.FAIL for check in checks)


def database_label(url: str) -> str:
    """The database URL with its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://…"


async def run_checks(
    settings: Settings, *, send_sms_to: str | None = None, send_email_to: str | None = None
) -> list[Check]:
    """Every check, in the order an operator fixes things."""
    checks = [
        Check(
            "settings",
            Status.OK,
            f"CRM_ENV={settings.env}, database {database_label(settings.database_url)}",
        )
    ]
    secret_check, secret = _secret(settings)
    checks.append(secret_check)
    checks += await _database(settings, secret)
    for channel in ("SMS", "EMAIL"):
        checks.append(_provider(settings, channel))
    if send_sms_to is not None:
        checks.append(await send_test(settings, "SMS", send_sms_to))
    if send_email_to is not None:
        checks.append(await send_test(settings, "EMAIL", send_email_to))
    proxies = trusted_proxies(settings)
    if proxies is not None:
        checks.append(proxies)
    if settings.env == "production" and not settings.public_url.startswith("https://"):
        checks.append(
            Check(
                "public url",
                Status.WARN,
                "CRM_PUBLIC_URL is not https: it is the token issuer and the base of links "
                "in emails",
                "set CRM_PUBLIC_URL to the https:// address clients use",
            )
        )
    return checks


def _secret(settings: Settings) -> tuple[Check, str | None]:
    """The secret's own check, and the secret when there is one (never generated here)."""
    if settings.secret_key is None and not settings.secret_key_path().exists():
        return (
            Check(
                "secret key",
                Status.WARN,
                f"CRM_SECRET_KEY is not set and {settings.secret_key_path()} does not exist yet",
                "set CRM_SECRET_KEY (all processes of a deployment share it); in development "
                "the first `crm serve` generates the file",
            ),
            None,
        )
    try:
        secret = settings.resolved_secret()
    except (ValueError, OSError) as exc:
        return (
            Check(
                "secret key",
                Status.FAIL,
                f"{secret_source(settings)} is not usable: {type(exc).__name__}"
                if isinstance(exc, OSError)
                else str(exc),
                "set CRM_SECRET_KEY to 32 or more random characters",
            ),
            None,
        )
    if settings.secret_key is not None:
        return Check("secret key", Status.OK, "CRM_SECRET_KEY is set"), secret
    path = settings.secret_key_path()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return (
            Check(
                "secret key",
                Status.WARN,
                f"generated secret in {path} is readable by others (mode {mode:04o})",
                f"chmod 600 {path}",
            ),
            secret,
        )
    detail = f"generated secret in {path} (mode {mode:04o})"
    if settings.env == "production":
        return Check("secret key", Status.FAIL, detail, "set CRM_SECRET_KEY"), secret
    return Check("secret key", Status.OK, detail), secret


async def _database(settings: Settings, secret: str | None) -> list[Check]:
    checks: list[Check] = []
    path = settings.sqlite_path()
    if path is not None and not path.exists():
        # Connecting would create an empty file: say so instead.
        return [
            Check(
                "database",
                Status.FAIL,
                f"{path} does not exist",
                "run `crm db upgrade` (or fix CRM_DATABASE_URL)",
            )
        ]
    engine = create_engine(settings)
    try:
        try:
            current = await current_revision(engine)
        except Exception as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
            return [
                Check(
                    "database",
                    Status.FAIL,
                    f"cannot connect: {type(exc).__name__}: {reason}",
                    "check CRM_DATABASE_URL and that the database server answers",
                )
            ]
        checks.append(Check("database", Status.OK, f"connected ({engine.dialect.name})"))
        head = head_revision()
        if current != head:
            checks.append(
                Check(
                    "schema",
                    Status.FAIL,
                    f"at revision {current or 'none'}, this version needs {head}",
                    "run `crm db upgrade`",
                )
            )
            return checks + _file_mode(settings)
        checks.append(Check("schema", Status.OK, f"at revision {head}"))
        if secret is not None:
            checks.append(await _secret_check(engine, settings, secret))
    finally:
        await engine.dispose()
    return checks + _file_mode(settings)


async def _secret_check(engine: Any, settings: Settings, secret: str) -> Check:
    state = await check_secret(engine, secret, Clock(), record=False)
    if state is SecretState.MISMATCH:
        return Check(
            "secret check",
            Status.FAIL,
            f"{secret_source(settings)} cannot read this database: it was written with "
            "another secret",
            "set CRM_SECRET_KEY to the one the database was written with",
        )
    if state is SecretState.ABSENT:
        return Check(
            "secret check",
            Status.WARN,
            "no check value yet (what is encrypted opens with this secret)",
            "run `crm db upgrade` or start `crm serve` once to record it",
        )
    return Check("secret check", Status.OK, "the secret reads this database")


def _file_mode(settings: Settings) -> list[Check]:
    path = settings.sqlite_path()
    if path is None:
        return []
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    open_files = [str(f) for f in files if f.exists() and stat.S_IMODE(f.stat().st_mode) & 0o077]
    if open_files:
        return [
            Check(
                "database file",
                Status.WARN,
                f"readable by others: {', '.join(open_files)}; they hold personal data",
                f"chmod 600 {' '.join(open_files)}",
            )
        ]
    return [Check("database file", Status.OK, f"{path} is private to its owner (0600)")]


def _provider(settings: Settings, channel: str) -> Check:
    name, config = deployment_provider(settings, channel)
    label = f"{channel.lower()} provider"
    problems = provider_problems(settings, channel)
    if problems:
        return Check(
            label,
            Status.FAIL,
            "; ".join(str(p) for p in problems),
            "set " + ", ".join(dict.fromkeys(p.setting for p in problems)),
        )
    if name == "console":
        status = Status.FAIL if settings.env == "production" else Status.WARN
        return Check(
            label,
            status,
            "console: messages are written to the log, none is sent (development only)",
            f"set {_SELECTOR[channel]} to a real provider before going live",
        )
    hosts = ", ".join(provider_hosts(name, config))
    return Check(label, Status.OK, f"{name} ({hosts})" if hosts else name)


async def send_test(settings: Settings, channel: str, recipient: str) -> Check:
    """Send one real message through the deployment's provider for `channel`."""
    label = f"test {channel.lower()}"
    name, config = deployment_provider(settings, channel)
    if channel == "SMS":
        recipient = _PHONE_PUNCTUATION.sub("", recipient)
        if recipient.startswith("00"):
            recipient = "+" + recipient[2:]
    message = OutgoingMessage(
        id=str(uuid.uuid4()),
        tenant_id="crm-doctor",
        channel="SMS" if channel == "SMS" else "EMAIL",
        recipient=recipient,
        subject="crm doctor: test message" if channel == "EMAIL" else None,
        body_text=f"crm doctor: a test message from {settings.public_url}. Nothing to do.",
        body_html=None,
    )
    try:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            if channel == "SMS":
                provider_id = await build_sms_provider(name, config, client=client).send(message)
            else:
                provider_id = await build_email_provider(name, config).send(message)
    except AppError:
        return Check(
            label, Status.FAIL, f"{name}: its settings are not valid", "see the provider line"
        )
    except DeliveryError as exc:
        return Check(
            label,
            Status.FAIL,
            f"{name} did not take the message: {exc}",
            "check the provider's settings, credentials and the recipient",
        )
    except Exception as exc:  # an unexpected failure is still a finding, not a crash
        return Check(
            label,
            Status.FAIL,
            f"{name} failed: {type(exc).__name__}",
            "check the provider's settings",
        )
    accepted = f" (provider id {provider_id})" if provider_id else ""
    return Check(label, Status.OK, f"{name} accepted the message{accepted}")


def trusted_proxies(settings: Settings) -> Check | None:
    """What CRM_TRUSTED_PROXIES trusts (a malformed value already fails the settings check)."""
    value = settings.trusted_proxies
    if not value.strip():
        return Check(
            "trusted proxies",
            Status.OK,
            "none: the connecting peer is the client and forwarded headers are ignored",
        )
    entries = value.split(",")
    networks = []
    for entry in entries:
        text = str(entry).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            return Check(
                "trusted proxies",
                Status.FAIL,
                f"{text!r} is not an address or CIDR range",
                "list proxy addresses or ranges, separated by commas",
            )
    if any(network.prefixlen == 0 for network in networks):
        return Check(
            "trusted proxies",
            Status.FAIL,
            "every address is trusted: any client can choose the address its limits count",
            "list only the addresses of your own proxies",
        )
    shown = ", ".join(str(n) for n in networks)
    return Check("trusted proxies", Status.OK, f"forwarded headers believed from {shown}")
