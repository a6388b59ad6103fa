"""The contract between the delivery worker and every SMS or email provider, and shared helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit

import httpx
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
    """Worth retrying later: 5xx, 408, 429, refused connections, names that did not resolve."""


class AmbiguousDeliveryError(TransientDeliveryError):
    """The request left, but no answer came (timeout, dropped connection): the provider may have
    sent the message. A retry is safe only where repeats are dropped (see `repeats_dropped`)."""


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
    """A URL as an API may show it. One that can carry a secret (userinfo, a query string or a
    fragment, where receivers put tokens) is masked whole, since no part of it can be told safe;
    the masked form never matches a real URL, so sending it back means "keep the stored one"."""
    try:
        parts = urlsplit(url)
        has_userinfo = "@" in parts.netloc
    except ValueError:
        return MASKED_URL
    if has_userinfo or parts.query or parts.fragment or "?" in url or "#" in url:
        return MASKED_URL
    return url


# Not even a tail is shown: the end of a URL is where a token in its query string sits.
MASKED_URL = "****"


class ProviderConfig(BaseModel):
    """Settings of one provider: strict (unknown keys are typos), immutable, secrets SecretStr."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    # Fields holding URLs, which may carry secrets (userinfo, query strings): shown masked.
    url_fields: ClassVar[frozenset[str]] = frozenset()
    # Fields that decide where the secrets go (address, port, account): changing one requires
    # the secrets again rather than reusing the stored ones.
    destination_fields: ClassVar[frozenset[str]] = frozenset()

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


def http_failure(exc: Exception, who: str) -> DeliveryError:
    """Map an httpx failure to the worker's decision by whether the request may have left.

    Before sending (no connection, name not resolved, no free connection): nothing reached the
    provider, a retry is safe. After (a read or write broke off, the answer did not come in
    time): the provider may have the message. `from None` at the caller: httpx texts can quote
    the URL, and the URL may carry credentials.
    """
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return TransientDeliveryError(f"{who} could not be reached in time")
    if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol):
        return TransientDeliveryError(f"{who} connection failed ({type(exc).__name__})")
    if isinstance(exc, httpx.TimeoutException):
        return AmbiguousDeliveryError(f"{who} timed out after the request was sent")
    return AmbiguousDeliveryError(f"{who} request broke off ({type(exc).__name__})")
