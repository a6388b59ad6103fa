"""The Twilio SMS provider: creates a Message resource through Twilio's 2010-04-01 REST API."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import (
    Field,
    HttpUrl,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from crm.messaging.providers.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderConfig,
    TransientDeliveryError,
    http_failure,
    is_transient_status,
    require_e164,
)

_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


class TwilioConfig(ProviderConfig):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr = Field(min_length=16, max_length=256)
    # An E.164 number, a short code or an alphanumeric sender id.
    from_number: str | None = Field(
        default=None, pattern=r"^(\+[1-9][0-9]{1,14}|[0-9]{3,8}|[A-Za-z0-9 ]{1,11})$"
    )
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    # Overridable for regional edges (api.dublin.ie1.twilio.com) and for tests.
    base_url: str = Field(default="https://api.twilio.com", max_length=2048)
    timeout: float = Field(default=10, gt=0, le=120)

    url_fields: ClassVar[frozenset[str]] = frozenset({"base_url"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"base_url", "account_sid"})

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        try:
            _HTTP_URL.validate_python(value)
        except ValidationError:
            raise ValueError("must be an http:// or https:// URL") from None
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_sender(self) -> TwilioConfig:
        if self.from_number is None and self.messaging_service_sid is None:
            raise ValueError("from_number or messaging_service_sid is required")
        return self


class TwilioSmsProvider:
    """Sends SMS through Twilio. Twilio's Messages API takes no idempotency key, so a retry after
    a lost response can send twice: the worker does not repeat a code after such an outcome."""

    config_model = TwilioConfig

    def __init__(self, config: TwilioConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client
        self._owns_client = client is None

    @property
    def messages_url(self) -> str:
        return f"{self.config.base_url}/2010-04-01/Accounts/{self.config.account_sid}/Messages.json"

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client if this provider created it; a shared one belongs to its owner."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def form(self, message: OutgoingMessage) -> dict[str, str]:
        fields = {"To": message.recipient, "Body": message.body_text}
        # With both set, Twilio sends from the number within the service; either alone works too.
        if self.config.messaging_service_sid is not None:
            fields["MessagingServiceSid"] = self.config.messaging_service_sid
        if self.config.from_number is not None:
            fields["From"] = self.config.from_number
        return fields

    async def send(self, message: OutgoingMessage) -> str | None:
        require_e164(message.recipient)
        auth = httpx.BasicAuth(self.config.account_sid, self.config.auth_token.get_secret_value())
        try:
            response = await self._get_client().post(
                self.messages_url,
                data=self.form(message),
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=self.config.timeout,
            )
        except httpx.HTTPError as exc:
            raise http_failure(exc, "Twilio") from None
        document = _json_object(response)
        status = response.status_code
        if 200 <= status < 300:
            sid = document.get("sid")
            return sid if isinstance(sid, str) and sid else None
        # Twilio's error body is {"code", "message", "more_info", "status"}; only the numeric code
        # is kept, as the message can quote the recipient's number.
        code = document.get("code")
        detail = f" (Twilio error {code})" if isinstance(code, int) else ""
        if is_transient_status(status):
            raise TransientDeliveryError(f"Twilio answered {status}{detail}")
        raise PermanentDeliveryError(f"Twilio answered {status}{detail}")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        document: Any = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
