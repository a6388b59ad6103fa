"""Unit tests of the message templates: wording, lifetimes, escaping, languages and SMS length."""

from __future__ import annotations

import pytest

from crm.messaging import templates
from crm.messaging.templates import (
    ENGLISH,
    EmailWords,
    Language,
    render,
    resolve_language,
    sms_segments,
)


def test_otp_sms_names_code_tenant_and_lifetime_in_one_gsm7_segment() -> None:
    rendered = render("OTP", "SMS", language="en", tenant_name="Acme", code="123456", ttl_minutes=5)

    assert rendered.body_text == (
        "123456 is your Acme code. It expires in 5 minutes. Don't share it."
    )
    assert rendered.subject is None
    assert rendered.body_html is None
    assert sms_segments(rendered.body_text) == 1


def test_otp_sms_shortens_a_long_tenant_name_to_stay_in_one_segment() -> None:
    rendered = render(
        "OTP",
        "SMS",
        language="en",
        tenant_name="The Extremely Long Name Of A Business " * 6,
        code="654321",
        ttl_minutes=10,
    )

    assert sms_segments(rendered.body_text) == 1
    assert rendered.body_text.startswith("654321 is your The Extremely")
    assert rendered.body_text.endswith("code. It expires in 10 minutes. Don't share it.")


def test_otp_email_has_subject_text_and_html_naming_code_tenant_and_lifetime() -> None:
    rendered = render(
        "OTP", "EMAIL", language="en", tenant_name="Acme", code="123456", ttl_minutes=5
    )

    assert rendered.subject == "Your Acme sign-in code"
    assert "123456" in rendered.body_text
    assert "Acme" in rendered.body_text
    assert "5 minutes" in rendered.body_text
    assert rendered.body_html is not None
    assert "<strong>123456</strong>" in rendered.body_html
    assert "5 minutes" in rendered.body_html


def test_otp_email_subject_does_not_carry_the_code() -> None:
    rendered = render(
        "OTP", "EMAIL", language="en", tenant_name="Acme", code="987654", ttl_minutes=5
    )

    assert rendered.subject is not None
    assert "987654" not in rendered.subject


def test_email_html_escapes_the_tenant_name() -> None:
    rendered = render(
        "OTP",
        "EMAIL",
        language="en",
        tenant_name='<script>alert("x")</script> & Co',
        code="123456",
        ttl_minutes=5,
    )

    assert rendered.body_html is not None
    assert "<script>" not in rendered.body_html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in rendered.body_html
    # The plain part is not HTML and keeps the name as written.
    assert '<script>alert("x")</script> & Co' in rendered.body_text


def test_tenant_name_line_breaks_cannot_reach_the_subject() -> None:
    rendered = render(
        "PASSWORD_RESET",
        "EMAIL",
        language="en",
        tenant_name="Acme\r\nBcc: victim@example.com",
        link_or_token="tok",
    )

    assert rendered.subject == "Reset your Acme Bcc: victim@example.com password"
    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject


def test_email_verification_link_is_a_clickable_escaped_anchor() -> None:
    link = 'https://acme.example/verify?token=abc&next="/x"'
    rendered = render(
        "EMAIL_VERIFICATION",
        "EMAIL",
        language="en",
        tenant_name="Acme",
        link_or_token=link,
        ttl_minutes=60 * 24,
    )

    assert rendered.subject == "Verify your email address for Acme"
    assert link in rendered.body_text
    assert "24 hours" in rendered.body_text
    escaped = "https://acme.example/verify?token=abc&amp;next=&quot;/x&quot;"
    assert rendered.body_html is not None
    assert f'<a href="{escaped}">{escaped}</a>' in rendered.body_html


def test_email_verification_token_is_shown_as_code() -> None:
    rendered = render(
        "EMAIL_VERIFICATION",
        "EMAIL",
        language="en",
        tenant_name="Acme",
        link_or_token="vt_abc123",
        ttl_minutes=30,
    )

    assert "Use this token" in rendered.body_text
    assert "vt_abc123" in rendered.body_text
    assert rendered.body_html is not None
    assert "<code>vt_abc123</code>" in rendered.body_html


def test_password_reset_names_tenant_token_and_lifetime() -> None:
    rendered = render(
        "PASSWORD_RESET",
        "EMAIL",
        language="en",
        tenant_name="Acme",
        link_or_token="rt_secret_token",
        ttl_minutes=60,
    )

    assert rendered.subject == "Reset your Acme password"
    assert "rt_secret_token" in rendered.body_text
    assert "1 hour" in rendered.body_text
    assert "ignore this email" in rendered.body_text


def test_lifetime_sentence_is_left_out_when_no_lifetime_is_known() -> None:
    rendered = render(
        "PASSWORD_RESET", "EMAIL", language="en", tenant_name="Acme", link_or_token="tok"
    )

    assert "expires" not in rendered.body_text
    assert rendered.body_html is not None
    assert "expires" not in rendered.body_html


@pytest.mark.parametrize(
    ("minutes", "words"), [(1, "1 minute"), (2, "2 minutes"), (120, "2 hours")]
)
def test_english_durations_are_pluralised(minutes: int, words: str) -> None:
    rendered = render(
        "OTP", "SMS", language="en", tenant_name="Acme", code="1", ttl_minutes=minutes
    )

    assert f"expires in {words}." in rendered.body_text


@pytest.mark.parametrize("language", ["xx", "", "de-DE", "zz_ZZ"])
def test_unknown_languages_fall_back_to_english(language: str) -> None:
    rendered = render(
        "OTP", "SMS", language=language, tenant_name="Acme", code="123456", ttl_minutes=5
    )

    assert rendered.body_text.startswith("123456 is your Acme code.")


@pytest.mark.parametrize("language", ["en", "EN", "en-GB", "en_US", "eng", "ENG"])
def test_english_spellings_resolve_to_english(language: str) -> None:
    assert resolve_language(language) is ENGLISH


def test_adding_a_language_is_one_dictionary_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    words = EmailWords(
        subject="Kode {tenant}",
        greeting="Hei,",
        paragraphs=("Kode: {code}",),
        expiry="Gyldig i {duration}.",
        closing=(),
    )
    pirate = Language(
        otp_sms="{code} er koden din hos {tenant}. Gyldig i {duration}.",
        otp_email=words,
        verification_link_email=words,
        verification_token_email=words,
        reset_link_email=words,
        reset_token_email=words,
        duration=lambda minutes: f"{minutes} min",
        aliases=("nor",),
    )
    monkeypatch.setitem(templates.LANGUAGES, "no", pirate)

    sms = render("OTP", "SMS", language="no-NO", tenant_name="Acme", code="42", ttl_minutes=5)
    email = render("OTP", "EMAIL", language="nor", tenant_name="Acme", code="42", ttl_minutes=5)

    assert sms.body_text == "42 er koden din hos Acme. Gyldig i 5 min."
    assert email.subject == "Kode Acme"
    assert email.body_text == "Hei,\n\nKode: 42\n\nGyldig i 5 min.\n"


@pytest.mark.parametrize(
    ("purpose", "channel", "kwargs"),
    [
        ("WELCOME", "EMAIL", {"code": "1", "ttl_minutes": 5}),
        ("OTP", "PIGEON", {"code": "1", "ttl_minutes": 5}),
        ("OTP", "SMS", {"ttl_minutes": 5}),
        ("OTP", "SMS", {"code": "1"}),
        ("OTP", "SMS", {"code": "1", "ttl_minutes": 0}),
        ("PASSWORD_RESET", "SMS", {"link_or_token": "t"}),
        ("EMAIL_VERIFICATION", "EMAIL", {}),
    ],
)
def test_impossible_combinations_raise_value_error(
    purpose: str, channel: str, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        render(purpose, channel, language="en", tenant_name="Acme", **kwargs)  # type: ignore[arg-type]


def test_empty_tenant_name_is_refused() -> None:
    with pytest.raises(ValueError):
        render("OTP", "SMS", language="en", tenant_name=" \n ", code="1", ttl_minutes=5)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("ж" * 70, 1),  # outside GSM-7: UCS-2
        ("ж" * 71, 2),
        ("😀" * 35, 1),  # beyond the BMP: two UTF-16 units each
        ("😀" * 36, 2),
    ],
)
def test_sms_segments_follow_gsm7_and_ucs2_limits(text: str, segments: int) -> None:
    assert sms_segments(text) == segments
