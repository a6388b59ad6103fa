"""The SMTP email provider: builds a multipart message and hands it to a relay with aiosmtplib."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import ClassVar

import aiosmtplib
from pydantic import Field, SecretStr, field_validator, model_validator

from crm.messaging.providers.base import (
    AmbiguousDeliveryError,
    DeliveryError,
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderConfig,
    TransientDeliveryError,
)
from crm.messaging.providers.netguard import connect_public

# Deliberately simple: the relay is the judge of deliverability; this only catches typos and
# header injection (CR/LF) before a message is ever built.
_ADDRESS = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
# Message-ID ids are dot-atoms (RFC 5322 3.6.4); outbox ids are UUIDs, anything else is replaced.
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9.\-_]")


def _address_of(value: str) -> str | None:
    """The bare address in `addr` or `Name <addr>`, or None when it is not one."""
    if "\r" in value or "\n" in value:
        return None
    _, address = parseaddr(value)
    return address if _ADDRESS.match(address) else None


class SmtpConfig(ProviderConfig):
    host: str = Field(min_length=1, max_length=253, pattern=r"^[^\s/]+$")
    port: int = Field(default=587, ge=1, le=65535)
    from_address: str = Field(min_length=3, max_length=320)
    username: str | None = Field(default=None, min_length=1, max_length=320)
    password: SecretStr | None = None
    starttls: bool = True
    # Implicit TLS (port 465). When set, STARTTLS is moot and ignored.
    use_tls: bool = False
    timeout: float = Field(default=10, gt=0, le=120)

    # TLS too: turning it off would hand the stored password to anyone on the path.
    destination_fields: ClassVar[frozenset[str]] = frozenset(
        {"host", "port", "username", "use_tls", "starttls"}
    )

    @field_validator("from_address")
    @classmethod
    def _check_from(cls, value: str) -> str:
        if _address_of(value) is None:
            raise ValueError("must be an email address, optionally as 'Name <address>'")
        return value

    @model_validator(mode="after")
    def _check_credentials(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        return self


def _is_permanent_code(code: int) -> bool:
    # SMTP reply classes (RFC 5321 4.2.1): 5yz is a permanent negative reply, 4yz transient.
    return 500 <= code < 600


def _response_error(what: str, code: int) -> DeliveryError:
    kind = PermanentDeliveryError if _is_permanent_code(code) else TransientDeliveryError
    return kind(f"SMTP server {what} ({code})")


def _classify(exc: Exception, *, handed_over: bool = False) -> DeliveryError:
    """Map an aiosmtplib failure to the worker's retry decision; server texts are dropped as they
    may echo the recipient address. A timeout or a dropped connection once the message was being
    handed over is ambiguous: the relay may have queued it before the reply was lost."""
    if handed_over and isinstance(
        exc,
        aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPServerDisconnected | TimeoutError | OSError,
    ):
        return AmbiguousDeliveryError("SMTP server gave no answer after the message was sent")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients] or [550]
        # One recipient per message, so the first code is the answer.
        return _response_error("refused the recipient", codes[0])
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _response_error("refused the recipient", exc.code)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # 535 is "credentials invalid": permanent; 454 is a temporary authentication failure.
        return _response_error("rejected the credentials", exc.code)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return _response_error("refused the sender", exc.code)
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _response_error("refused the message", exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if exc.code < 400:
            return TransientDeliveryError(f"SMTP server sent an unexpected reply ({exc.code})")
        return _response_error("refused the session", exc.code)
    if isinstance(exc, ssl.SSLCertVerificationError):
        # A certificate that does not verify will not start verifying by itself: a settings issue.
        return PermanentDeliveryError("SMTP server certificate could not be verified")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransientDeliveryError("SMTP server timed out")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return TransientDeliveryError("SMTP server connection failed")
    if isinstance(exc, aiosmtplib.SMTPException):
        # What is left is a capability mismatch (no STARTTLS, no AUTH, no SMTPUTF8): the
        # settings do not fit this server, so retrying the same way cannot succeed.
        return PermanentDeliveryError("SMTP server does not support what the settings require")
    if isinstance(exc, OSError):
        return TransientDeliveryError("SMTP server connection failed")
    return TransientDeliveryError(f"SMTP send failed ({type(exc).__name__})")


class SmtpProvider:
    """Sends email through one SMTP relay; a new connection per message keeps failures isolated."""

    config_model = SmtpConfig

    def __init__(self, config: SmtpConfig, *, guarded: bool = False) -> None:
        self.config = config
        # Guarded: connect only to a checked public address of the host (netguard).
        self.guarded = guarded
        from_address = _address_of(config.from_address) or "localhost@localhost"
        self._domain = _ascii_domain(from_address.rsplit("@", 1)[1])

    def message_id(self, message: OutgoingMessage) -> str:
        """Derived from the outbox id, so a retried message can be recognised by the receiver."""
        local = _UNSAFE_ID_CHARS.sub("-", message.id)[:128] or "message"
        return f"<{local}@{self._domain}>"

    def build(self, message: OutgoingMessage) -> EmailMessage:
        """The MIME message: text/plain, plus text/html as the preferred alternative when given."""
        if _address_of(message.recipient) is None:
            raise PermanentDeliveryError("recipient is not a valid email address")
        email = EmailMessage()
        try:
            email["From"] = self.config.from_address
            email["To"] = message.recipient
            email["Subject"] = message.subject or ""
            email["Date"] = formatdate(usegmt=True)
            email["Message-ID"] = self.message_id(message)
            # RFC 3834: tells vacation responders not to answer a sign-in code.
            email["Auto-Submitted"] = "auto-generated"
            email.set_content(message.body_text)
            if message.body_html is not None:
                email.add_alternative(message.body_html, subtype="html")
        except ValueError as exc:
            # The email package refuses header values with line breaks (header injection).
            raise PermanentDeliveryError("message headers are not valid") from exc
        return email

    async def send(self, message: OutgoingMessage) -> str | None:
        email = self.build(message)
        config = self.config
        password = config.password.get_secret_value() if config.password is not None else None
        sock: socket.socket | None = None
        if self.guarded:
            try:
                sock = await connect_public(config.host, config.port, config.timeout)
            except DeliveryError:
                raise
            except OSError:
                raise TransientDeliveryError("SMTP server connection failed") from None
        client = aiosmtplib.SMTP(
            # With a socket given, aiosmtplib still uses `hostname` for TLS (SNI and the
            # certificate check); the socket's ownership passes to it.
            hostname=config.host,
            port=None if sock is not None else config.port,
            sock=sock,
            username=config.username,
            password=password,
            use_tls=config.use_tls,
            start_tls=False if config.use_tls else config.starttls,
            timeout=config.timeout,
        )
        # Set once the envelope and text start to go out: a failure without a reply after that
        # leaves open whether the relay took the message.
        handed_over = False
        try:
            # aiosmtplib's timeout bounds each step; this bounds a server that answers slowly
            # at every step so one message cannot hold a worker for long.
            async with asyncio.timeout(config.timeout * 3):
                await client.connect()
                handed_over = True
                await client.send_message(email)
        except DeliveryError:
            raise
        except Exception as exc:
            raise _classify(exc, handed_over=handed_over) from exc
        finally:
            client.close()
        return str(email["Message-ID"])


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"
