"""A tenant's own words for its messages: validated on save, previewed, and put in place of the
built-in words when a message is queued."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import driver
from crm.clock import Clock
from crm.ids import uuid7
from crm.messaging import templates
from crm.messaging.errors import (
    TemplateInvalid,
    TemplateLanguageInvalid,
    TemplateNotFound,
    TemplatePurposeUnknown,
    TemplateSecretInSubject,
    TemplateSecretMissing,
    TemplateSmsTooLong,
    TemplateSyntaxInvalid,
    TemplateUnknownPlaceholder,
)
from crm.messaging.models import MessageTemplate
from crm.messaging.templates import RenderedMessage, RenderInputs
from crm.tenants.errors import TenantNotFound
from crm.tenants.models import Tenant

# The values each purpose's words may use, exactly those the built-in words use; the second
# is the secret the message exists to carry and must appear in every body.
PLACEHOLDERS: dict[str, tuple[frozenset[str], str]] = {
    "OTP": (frozenset({"tenant", "code", "duration"}), "code"),
    "EMAIL_VERIFICATION": (frozenset({"tenant", "token", "duration"}), "token"),
    "PASSWORD_RESET": (frozenset({"tenant", "token", "duration"}), "token"),
}
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8}){0,2}$")
_LIMITS = {"sms": 500, "subject": 200, "text": 10_000, "html": 50_000}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# The longest lifetime a code can have (10 minutes at most) in the built-in words: an SMS must
# fit one segment with it.
_LONGEST_CODE_DURATION = "10 minutes"
SAMPLE_CODE = "123456"
SAMPLE_LINK = "https://example.com/verify?token=SAMPLE-TOKEN"


@dataclass(frozen=True, slots=True)
class TemplateWords:
    """The parts of a template; None leaves that part to the built-in words."""

    sms: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None

    def is_empty(self) -> bool:
        return self.sms is None and self.subject is None and self.text is None


@dataclass(frozen=True, slots=True)
class Preview:
    sms: str | None
    sms_segments: int | None
    subject: str | None
    text: str | None
    html: str | None


def check_purpose(purpose: str) -> str:
    if purpose not in PLACEHOLDERS:
        raise TemplatePurposeUnknown()
    return purpose


def check_language(language: str) -> str:
    tag = templates.language_tag(language)
    if len(tag) > 20 or not _LANGUAGE.match(tag):
        raise TemplateLanguageInvalid()
    return tag


def _names(part: str, text: str) -> set[str]:
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateSyntaxInvalid(details=[{"field": part, "reason": str(exc)}]) from exc
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateSyntaxInvalid(details=[{"field": part, "placeholder": name}])
        names.add(name)
    return names


def validate(purpose: str, words: TemplateWords, tenant_name: str) -> None:
    """Refuse, with a stable code, words that could not be sent as they are."""
    allowed, secret = PLACEHOLDERS[check_purpose(purpose)]
    if words.is_empty():
        raise TemplateInvalid("Give the SMS text, or the email's subject and text, or both.")
    if words.sms is not None and purpose != "OTP":
        raise TemplateInvalid(f"{purpose} messages are sent by email only: no SMS text.")
    if (words.subject is None) != (words.text is None):
        raise TemplateInvalid("An email needs both its subject and its text.")
    if words.html is not None and words.text is None:
        raise TemplateInvalid("An email's HTML needs its subject and text too.")
    parts = {
        "sms": words.sms,
        "subject": words.subject,
        "text": words.text,
        "html": words.html,
    }
    for part, text in parts.items():
        if text is None:
            continue
        if not text.strip():
            raise TemplateInvalid(f"The {part} is empty.", details=[{"field": part}])
        if len(text) > _LIMITS[part]:
            raise TemplateInvalid(
                f"The {part} is longer than {_LIMITS[part]} characters.",
                details=[{"field": part, "limit": _LIMITS[part]}],
            )
        names = _names(part, text)
        unknown = sorted(names - allowed)
        if unknown:
            raise TemplateUnknownPlaceholder(
                f"Unknown placeholder {{{unknown[0]}}} in the {part}; this message has "
                + ", ".join(f"{{{n}}}" for n in sorted(allowed))
                + ".",
                details=[{"field": part, "placeholders": unknown}],
            )
        if part == "subject":
            if _CONTROL.search(text):
                raise TemplateInvalid("The subject is one line.", details=[{"field": part}])
            if secret in names:
                raise TemplateSecretInSubject(details=[{"field": part}])
        elif secret not in names:
            raise TemplateSecretMissing(
                f"The {part} must contain {{{secret}}}.",
                details=[{"field": part, "placeholder": secret}],
            )
    if words.sms is not None:
        # As sent: the tenant's name shortened as far as the built-in words allow, the longest
        # lifetime, a six-digit code.
        longest = templates.sms_text(
            words.sms,
            {"tenant": tenant_name, "code": SAMPLE_CODE, "duration": _LONGEST_CODE_DURATION},
        )
        segments = templates.sms_segments(longest)
        if segments > 1:
            raise TemplateSmsTooLong(details=[{"field": "sms", "segments": segments}])


def render_with(words: TemplateWords, inputs: RenderInputs) -> RenderedMessage | None:
    """The message in the tenant's words, or None when they do not cover this channel."""
    values = inputs.values()
    if inputs.channel == "SMS":
        if words.sms is None:
            return None
        return RenderedMessage(None, templates.sms_text(words.sms, values), None, inputs)
    if words.subject is None or words.text is None:
        return None
    message = templates.email_from_text(words.subject, words.text, values)
    body_html = message.body_html
    if words.html is not None:
        body_html = templates.fill(words.html, templates.html_values(values))
    return RenderedMessage(message.subject, message.body_text, body_html, inputs)


def _words(row: MessageTemplate) -> TemplateWords:
    return TemplateWords(
        sms=row.sms_text, subject=row.email_subject, text=row.email_text, html=row.email_html
    )


# Built once: every message passes here (see crm.driver on why hot statements are). A message
# is looked up in at most three languages (the tag, its primary tag, the built-in fallback);
# fewer are padded by repeating the last.
_LANGUAGE_SLOTS = 3
_FOR_MESSAGE = driver.rows_of(
    MessageTemplate,
    MessageTemplate.tenant_id == bindparam("tenant_id"),
    MessageTemplate.mode == bindparam("mode"),
    MessageTemplate.purpose == bindparam("purpose"),
    or_(*(MessageTemplate.language == bindparam(f"language{n}") for n in range(_LANGUAGE_SLOTS))),
)


async def _find(
    session: AsyncSession, tenant_id: str, mode: str, purpose: str, languages: list[str]
) -> MessageTemplate | None:
    if not 0 < len(languages) <= _LANGUAGE_SLOTS:  # pragma: no cover - callers pass 1 to 3
        raise ValueError(f"1 to {_LANGUAGE_SLOTS} languages, not {len(languages)}")
    values = {"tenant_id": tenant_id, "mode": mode, "purpose": purpose}
    for n in range(_LANGUAGE_SLOTS):
        values[f"language{n}"] = languages[min(n, len(languages) - 1)]
    rows = [
        driver.adopt(session, MessageTemplate, row, refresh=False)
        for row in await driver.fetch(session, _FOR_MESSAGE, values)
    ]
    by_language = {row.language: row for row in rows}
    return next((by_language[tag] for tag in languages if tag in by_language), None)


async def apply(
    session: AsyncSession, *, tenant_id: str, mode: str, message: RenderedMessage
) -> RenderedMessage:
    """`message` in the tenant's own words when it has some for this purpose, language and
    channel; otherwise unchanged. The requested language is matched exactly, then by its
    primary tag, then as the built-in words fall back (English)."""
    inputs = message.inputs
    if inputs is None:
        return message
    tag = inputs.language
    candidates = [tag, tag.split("-", 1)[0], templates.builtin_language_code(tag)]
    languages = list(dict.fromkeys(c for c in candidates if c))
    row = await _find(session, tenant_id, mode, inputs.purpose, languages)
    if row is None:
        return message
    return render_with(_words(row), inputs) or message


# --- the Back-Office's and the CLI's operations ---------------------------------------


async def _tenant_name(session: AsyncSession, tenant_id: str) -> str:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:  # only the CLI can name a tenant that does not exist
        raise TenantNotFound()
    return tenant.name


async def list_(session: AsyncSession, *, tenant_id: str, mode: str) -> list[MessageTemplate]:
    return list(
        await session.scalars(
            select(MessageTemplate)
            .where(MessageTemplate.tenant_id == tenant_id, MessageTemplate.mode == mode)
            .order_by(MessageTemplate.purpose, MessageTemplate.language)
        )
    )


async def get(
    session: AsyncSession, *, tenant_id: str, mode: str, purpose: str, language: str
) -> MessageTemplate:
    found = await _find(
        session, tenant_id, mode, check_purpose(purpose), [check_language(language)]
    )
    if found is None:
        raise TemplateNotFound()
    return found


async def put(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    mode: str,
    purpose: str,
    language: str,
    words: TemplateWords,
) -> tuple[MessageTemplate, bool]:
    """Save the tenant's words (replacing earlier ones). Returns the row and whether it is new."""
    purpose = check_purpose(purpose)
    tag = check_language(language)
    validate(purpose, words, await _tenant_name(session, tenant_id))
    now = clock.now()
    row = await _find(session, tenant_id, mode, purpose, [tag])
    created = row is None
    if row is None:
        row = MessageTemplate(
            id=uuid7(),
            tenant_id=tenant_id,
            mode=mode,
            purpose=purpose,
            language=tag,
            created_at=now,
        )
        session.add(row)
    row.sms_text = words.sms
    row.email_subject = words.subject
    row.email_text = words.text
    row.email_html = words.html
    row.updated_at = now
    await session.flush()
    return row, created


async def delete(
    session: AsyncSession, *, tenant_id: str, mode: str, purpose: str, language: str
) -> None:
    row = await get(session, tenant_id=tenant_id, mode=mode, purpose=purpose, language=language)
    await session.delete(row)
    await session.flush()


async def preview(
    session: AsyncSession,
    *,
    tenant_id: str,
    mode: str,
    purpose: str,
    language: str,
    words: TemplateWords | None = None,
) -> Preview:
    """The message as it would be sent with sample values: in `words` when given (validated
    first, not saved), else in the saved words, else in the built-in ones."""
    purpose = check_purpose(purpose)
    tag = check_language(language)
    tenant_name = await _tenant_name(session, tenant_id)
    if words is not None and not words.is_empty():
        validate(purpose, words, tenant_name)
    else:
        row = await _find(session, tenant_id, mode, purpose, [tag])
        words = _words(row) if row is not None else None
    rendered: dict[str, RenderedMessage] = {}
    channels = ("SMS", "EMAIL") if purpose == "OTP" else ("EMAIL",)
    for channel in channels:
        builtin = templates.render(
            purpose,
            channel,
            language=tag,
            tenant_name=tenant_name,
            ttl_minutes=5 if purpose == "OTP" else 60,
            code=SAMPLE_CODE if purpose == "OTP" else None,
            link_or_token=None if purpose == "OTP" else SAMPLE_LINK,
        )
        assert builtin.inputs is not None
        own = render_with(words, builtin.inputs) if words is not None else None
        rendered[channel] = own or builtin
    sms = rendered.get("SMS")
    email = rendered["EMAIL"]
    return Preview(
        sms=sms.body_text if sms else None,
        sms_segments=templates.sms_segments(sms.body_text) if sms else None,
        subject=email.subject,
        text=email.body_text,
        html=email.body_html,
    )
