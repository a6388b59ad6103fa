"""The contract between the delivery worker and every SMS or email provider, and shared helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, SecretStr

Channel = Literal["SMS", "EMAIL"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message leaving the outbox; `id` doubles as the idempotency key towards providers."""

    id: str
    tenant_id: str
    channel: Channel
    recipient: str
    subject: str | None
    body_text: str
    body_html: str | None


class DeliveryError(Exception):
    """A send failed. The message is short and safe to log: never the body, code or a secret."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying later: 5xx, 408, 429, timeouts, refused or dropped connections."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: invalid recipient, rejected credentials, other 4xx."""


class SmsProvider(Protocol):
    async def send(self, message: OutgoingMessage) -> str | None:
        """Send one SMS and return the provider's message id when it gives one."""
        ...


class EmailProvider(Protocol):
    async def send(self, message: OutgoingMessage) -> str | None:
        """Send one email and return the provider's message id when it gives one."""
        ...


def mask_secret(value: str) -> str:
    """Show a secret as `****abcd`; the tail only for long secrets, where 4 chars tell little."""
    return f"****{value[-4:]}" if len(value) >= 12 else "****"


def mask_url(url: str) -> str:
    """Hide a password in a URL's userinfo, which some webhook receivers use for basic auth."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{mask_secret(parts.password)}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class ProviderConfig(BaseModel):
    """Settings of one provider: strict (unknown keys are typos), immutable, secrets SecretStr."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    # Fields holding URLs whose userinfo may carry a password.
    url_fields: ClassVar[frozenset[str]] = frozenset()

    def redacted(self) -> dict[str, Any]:
        """The settings as an API may show them: non-secret fields as they are, secrets masked."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown[name] = mask_secret(value.get_secret_value())
            elif name in self.url_fields and isinstance(value, str):
                shown[name] = mask_url(value)
            else:
                shown[name] = value
        return shown


def is_transient_status(status: int) -> bool:
    """HTTP statuses worth retrying: server faults (5xx), request timeouts and rate limiting."""
    return status >= 500 or status in (408, 429)


_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


def require_e164(recipient: str) -> None:
    """Refuse an SMS recipient that is not an E.164 number before any request is made."""
    if not _E164.match(recipient):
        raise PermanentDeliveryError("recipient is not an E.164 phone number")
