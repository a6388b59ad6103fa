"""The words of every message the server sends (codes, verification, reset), per language."""

from __future__ import annotations

import html
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

PURPOSES = ("OTP", "EMAIL_VERIFICATION", "PASSWORD_RESET")
CHANNELS = ("SMS", "EMAIL")
DEFAULT_LANGUAGE = "en"

# One SMS segment holds 160 GSM-7 septets; a single character outside GSM-7 switches the whole
# message to UCS-2, where a segment holds 70 characters (3GPP TS 23.038).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # each costs an escape septet as well
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


@dataclass(frozen=True, slots=True)
class RenderInputs:
    """What a message was rendered from, so a tenant's own words can be put in its place
    (messaging.tenant_templates) with the same values."""

    purpose: str
    channel: str
    language: str
    tenant: str
    code: str | None
    token: str | None
    duration: str | None

    def values(self) -> dict[str, str]:
        return {
            "tenant": self.tenant,
            "code": self.code or "",
            "token": self.token or "",
            "duration": self.duration or "",
        }


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str | None
    body_text: str
    body_html: str | None
    inputs: RenderInputs | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class EmailWords:
    """One email: a subject and paragraphs. Placeholders: {tenant}, {code}, {token}, {duration}.

    `expiry` is a separate paragraph so it can be left out when no lifetime is known.
    """

    subject: str
    greeting: str
    paragraphs: tuple[str, ...]
    expiry: str
    closing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Language:
    """Everything one language needs. Adding a language is adding one `LANGUAGES` entry."""

    otp_sms: str
    otp_email: EmailWords
    verification_link_email: EmailWords
    verification_token_email: EmailWords
    reset_link_email: EmailWords
    reset_token_email: EmailWords
    duration: Callable[[int], str]
    # Other spellings clients send for this language (CRM.COM apps may send ISO 639-2 codes).
    aliases: tuple[str, ...] = field(default=())


def _english_duration(minutes: int) -> str:
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return "1 hour" if hours == 1 else f"{hours} hours"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


_EN_CLOSING = ("If you did not ask for this, you can ignore this email.",)

ENGLISH = Language(
    otp_sms="{code} is your {tenant} code. It expires in {duration}. Don't share it.",
    otp_email=EmailWords(
        # No code in the subject: subjects end up in mail logs and lock-screen previews.
        subject="Your {tenant} sign-in code",
        greeting="Hello,",
        paragraphs=("Your {tenant} sign-in code is {code}.",),
        expiry="It expires in {duration}. Don't share it with anyone.",
        closing=_EN_CLOSING,
    ),
    verification_link_email=EmailWords(
        subject="Verify your email address for {tenant}",
        greeting="Hello,",
        paragraphs=("Open this link to verify your email address for {tenant}:", "{token}"),
        expiry="The link expires in {duration}.",
        closing=_EN_CLOSING,
    ),
    verification_token_email=EmailWords(
        subject="Verify your email address for {tenant}",
        greeting="Hello,",
        paragraphs=("Use this token to verify your email address for {tenant}:", "{token}"),
        expiry="The token expires in {duration}.",
        closing=_EN_CLOSING,
    ),
    reset_link_email=EmailWords(
        subject="Reset your {tenant} password",
        greeting="Hello,",
        paragraphs=("Open this link to choose a new {tenant} password:", "{token}"),
        expiry="The link expires in {duration}.",
        closing=_EN_CLOSING,
    ),
    reset_token_email=EmailWords(
        subject="Reset your {tenant} password",
        greeting="Hello,",
        paragraphs=("Use this token to choose a new {tenant} password:", "{token}"),
        expiry="The token expires in {duration}.",
        closing=_EN_CLOSING,
    ),
    duration=_english_duration,
    aliases=("eng",),
)

LANGUAGES: dict[str, Language] = {"en": ENGLISH}


def resolve_language(language: str | None) -> Language:
    """The best match for `language` ("en", "en-GB", "en_US", "ENG"), else English."""
    tag = (language or "").strip().lower().replace("_", "-")
    for candidate in (tag, tag.split("-", 1)[0]):
        if candidate in LANGUAGES:
            return LANGUAGES[candidate]
        for entry in LANGUAGES.values():
            if candidate in entry.aliases:
                return entry
    return LANGUAGES[DEFAULT_LANGUAGE]


def sms_segments(text: str) -> int:
    """How many SMS segments `text` costs (GSM-7 when every character allows it, else UCS-2)."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in text):
        septets = sum(2 if c in _GSM7_EXTENDED else 1 for c in text)
        return 1 if septets <= 160 else -(-septets // 153)
    # UCS-2 counts UTF-16 code units: characters beyond the BMP (emoji) take two.
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _clean(value: str) -> str:
    """Collapse line breaks and control characters: a tenant name is one line of display text."""
    return " ".join(_CONTROL.sub(" ", value).split())


def _is_link(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def render(
    purpose: str,
    channel: str,
    *,
    language: str,
    tenant_name: str,
    code: str | None = None,
    link_or_token: str | None = None,
    ttl_minutes: int | None = None,
) -> RenderedMessage:
    """The subject and bodies of one message. Raises ValueError for a combination that does not
    exist or a missing value (a programming error, never a client's)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown message purpose {purpose!r}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if ttl_minutes is not None and ttl_minutes <= 0:
        raise ValueError("ttl_minutes must be positive")
    words = resolve_language(language)
    tenant = _clean(tenant_name)
    if not tenant:
        raise ValueError("tenant_name is required")
    duration = words.duration(ttl_minutes) if ttl_minutes is not None else None

    inputs = RenderInputs(
        purpose=purpose,
        channel=channel,
        language=language_tag(language),
        tenant=tenant,
        code=code if purpose == "OTP" else None,
        token=link_or_token if purpose != "OTP" else None,
        duration=duration,
    )
    message = _builtin(words, inputs)
    return RenderedMessage(message.subject, message.body_text, message.body_html, inputs)


def _builtin(words: Language, inputs: RenderInputs) -> RenderedMessage:
    purpose, channel, tenant = inputs.purpose, inputs.channel, inputs.tenant
    code, link_or_token, duration = inputs.code, inputs.token, inputs.duration
    if purpose == "OTP":
        if not code:
            raise ValueError("an OTP message needs the code")
        if duration is None:
            raise ValueError("an OTP message needs its lifetime")
        if channel == "SMS":
            return RenderedMessage(None, _otp_sms(words.otp_sms, tenant, code, duration), None)
        return _email(words.otp_email, tenant=tenant, code=code, token=None, duration=duration)

    if channel != "EMAIL":
        raise ValueError(f"{purpose} messages are sent by email only")
    if not link_or_token:
        raise ValueError(f"a {purpose} message needs the link or token")
    link = _is_link(link_or_token)
    if purpose == "EMAIL_VERIFICATION":
        email_words = words.verification_link_email if link else words.verification_token_email
    else:
        email_words = words.reset_link_email if link else words.reset_token_email
    return _email(email_words, tenant=tenant, code=None, token=link_or_token, duration=duration)


def _otp_sms(template: str, tenant: str, code: str, duration: str | None) -> str:
    return sms_text(template, {"tenant": tenant, "code": code, "duration": duration or ""})


def sms_text(template: str, values: Mapping[str, str]) -> str:
    """An SMS from `template`. A long tenant name is shortened until the text fits one segment;
    the code and its lifetime matter more than the full name. Bounded by the name's length."""
    shortened = values["tenant"]
    text = fill(template, values)
    while sms_segments(text) > 1 and len(shortened) > 8:
        shortened = shortened[: len(shortened) - max(1, (len(shortened) // 8))].rstrip()
        text = fill(template, {**values, "tenant": shortened})
    return text


def fill(template: str, values: Mapping[str, str]) -> str:
    """str.format for named placeholders only: no attribute, index, conversion or format spec
    is ever evaluated, whoever wrote the template."""
    out: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(values[name])
    return "".join(out)


def language_tag(language: str | None) -> str:
    """A language as stored and looked up: lower case, hyphenated ("en_US" -> "en-us")."""
    return (language or "").strip().lower().replace("_", "-")


def builtin_language_code(language: str | None) -> str:
    """The key of the built-in language `language` falls back to ("en" for unknown ones)."""
    resolved = resolve_language(language)
    return next(code for code, entry in LANGUAGES.items() if entry is resolved)


def email_from_text(subject: str, text: str, values: Mapping[str, str]) -> RenderedMessage:
    """An email from a subject and a plain text (paragraphs split by blank lines), with the HTML
    made from the text as for the built-in words."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    rich = _rich(values)
    filled_subject = fill(subject, values)
    body_html = _layout(
        html.escape(filled_subject),
        [_format_html(p, rich).replace("\n", "<br>\n") for p in paragraphs],
        values["tenant"],
    )
    return RenderedMessage(filled_subject, fill(text, values).rstrip("\n") + "\n", body_html)


def html_values(values: Mapping[str, str]) -> dict[str, str]:
    """Values for a tenant's own HTML: escaped (quotes too, so a link may sit in href="{token}")."""
    return {name: html.escape(value, quote=True) for name, value in values.items()}


def _rich(values: Mapping[str, str]) -> dict[str, str]:
    return {
        "tenant": html.escape(values["tenant"]),
        "code": f"<strong>{html.escape(values['code'])}</strong>",
        "token": _html_token(values["token"]),
        "duration": html.escape(values["duration"]),
    }


def _email(
    words: EmailWords,
    *,
    tenant: str,
    code: str | None,
    token: str | None,
    duration: str | None,
) -> RenderedMessage:
    paragraphs = [words.greeting, *words.paragraphs]
    if duration is not None:
        paragraphs.append(words.expiry)
    paragraphs.extend(words.closing)

    plain = {"tenant": tenant, "code": code or "", "token": token or "", "duration": duration or ""}
    # Every value is escaped before it meets the HTML: the tenant name is chosen by whoever
    # signs up a tenant and must not be able to inject markup into other people's mail.
    rich = _rich(plain)
    subject = words.subject.format(**plain)
    body_text = "\n\n".join(p.format(**plain) for p in paragraphs) + "\n"
    body_html = _layout(html.escape(subject), [_format_html(p, rich) for p in paragraphs], tenant)
    return RenderedMessage(subject, body_text, body_html)


def _format_html(template: str, values: Mapping[str, str]) -> str:
    """Like str.format, but the template's own text is escaped too (a translation may hold `&`).

    The values arrive already escaped (and possibly wrapped in markup), so they go in as they are.
    """
    out: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        out.append(html.escape(literal, quote=False))
        if name is not None:
            out.append(values[name])
    return "".join(out)


def _html_token(token: str) -> str:
    escaped = html.escape(token, quote=True)
    if _is_link(token):
        return f'<a href="{escaped}">{escaped}</a>'
    return f"<code>{escaped}</code>"


def _layout(title: str, paragraphs: list[str], tenant: str) -> str:
    body = "\n".join(f"    <p>{p}</p>" for p in paragraphs)
    return (
        "<!DOCTYPE html>\n"
        '<html>\n<head>\n  <meta charset="utf-8">\n'
        f"  <title>{title}</title>\n</head>\n"
        '<body style="font-family: sans-serif; line-height: 1.5; color: #222;">\n'
        '  <div style="max-width: 560px; margin: 0 auto; padding: 24px;">\n'
        f"{body}\n"
        f'    <p style="color: #777; font-size: 12px;">{html.escape(tenant)}</p>\n'
        "  </div>\n</body>\n</html>\n"
    )
