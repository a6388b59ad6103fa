"""The webhook SMS provider: POSTs each SMS as signed JSON to the tenant's URL; signature checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, ClassVar

import httpx
from pydantic import Field, HttpUrl, SecretStr, TypeAdapter, ValidationError, field_validator

from crm.messaging.providers.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderConfig,
    TransientDeliveryError,
    http_failure,
    is_transient_status,
    require_e164,
)

SIGNATURE_HEADER = "X-CRM-Signature"
MESSAGE_ID_HEADER = "X-CRM-Message-Id"
USER_AGENT = "crm-webhook/1"
# A receiver's reply is only read for an `id`; anything longer is not an id.
_MAX_PROVIDER_ID = 255
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


class WebhookConfig(ProviderConfig):
    url: str = Field(max_length=2048)
    # At least 16 characters: the HMAC is only as strong as the secret behind it.
    signing_secret: SecretStr = Field(min_length=16, max_length=512)
    timeout: float = Field(default=10, gt=0, le=120)

    url_fields: ClassVar[frozenset[str]] = frozenset({"url"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"url"})

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # HttpUrl checks the scheme (http/https only) and host; the string is kept as written
        # so the receiver sees exactly the URL the tenant configured.
        try:
            _HTTP_URL.validate_python(value)
        except ValidationError:
            raise ValueError("must be an http:// or https:// URL") from None
        return value


def sign_webhook(secret: str | SecretStr, body: bytes, *, timestamp: int) -> str:
    """The `X-CRM-Signature` value: `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

    Signing the timestamp with the body (Stripe's scheme) lets a receiver refuse replays.
    """
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_webhook_signature(
    secret: str | SecretStr,
    header: str | None,
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> bool:
    """True when `header` signs exactly `body` with `secret` within `tolerance` seconds of `now`.

    Several `v1=` entries are accepted so a receiver can verify while the secret is rotated.
    """
    if not header or len(header) > 4096:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(",")[:32]:
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    # Future timestamps are refused too: clocks drift both ways, but not by more than the window.
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    # Compare against every candidate in constant time, without stopping at the first match.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def _digest(secret: str | SecretStr, timestamp: int, body: bytes) -> str:
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(key.encode("utf-8"), signed, hashlib.sha256).hexdigest()


class WebhookSmsProvider:
    """Hands SMS to the tenant's own gateway; the message id header lets it drop duplicates."""

    config_model = WebhookConfig

    def __init__(self, config: WebhookConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client
        self._owns_client = client is None

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client if this provider created it; a shared one belongs to its owner."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def payload(message: OutgoingMessage) -> bytes:
        """The exact bytes that are signed and sent: compact UTF-8 JSON."""
        document = {
            "to": message.recipient,
            "text": message.body_text,
            "message_id": message.id,
            "tenant_id": message.tenant_id,
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def send(self, message: OutgoingMessage) -> str | None:
        require_e164(message.recipient)
        body = self.payload(message)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign_webhook(
                self.config.signing_secret, body, timestamp=int(time.time())
            ),
            MESSAGE_ID_HEADER: message.id,
        }
        try:
            response = await self._get_client().post(
                self.config.url, content=body, headers=headers, timeout=self.config.timeout
            )
        except httpx.HTTPError as exc:
            raise http_failure(exc, "webhook") from None
        status = response.status_code
        if 200 <= status < 300:
            return _provider_id(response) or message.id
        if is_transient_status(status):
            raise TransientDeliveryError(f"webhook answered {status}")
        # Redirects are not followed (a redirect could leave the configured host), so they are
        # a settings problem like any other 4xx.
        raise PermanentDeliveryError(f"webhook answered {status}")


def _provider_id(response: httpx.Response) -> str | None:
    try:
        document: Any = response.json()
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    value = document.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= _MAX_PROVIDER_ID else None
