"""Email addresses as identities: syntax, the matching key, mixed-script domains, test domains."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Final

import idna
from email_validator import EmailNotValidError, validate_email

from crm.errors import InvalidEmail, MixedScriptDomain

# RFC 5321 limits a forward path to 256 octets including the angle brackets.
MAX_EMAIL_LENGTH: Final = 254
# Unicode general categories never legitimate in an address: controls, format characters (zero
# width space and joiners, bidi overrides and isolates, BOM, soft hyphen), surrogates,
# private use, unassigned, and line/paragraph separators. They make two addresses look the
# same on screen while being different strings.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Special-use top-level names reserved for testing and documentation (RFC 2606, RFC 6761): no
# mail can ever be delivered there. A test key sends nothing, so test mode accepts them; live
# mode refuses them like the other special-use names (.local, .onion, .arpa) always are.
TEST_MODE_TLDS: Final = frozenset({"test", "example", "invalid", "localhost"})
SPECIAL_USE_MESSAGE: Final = (
    "The part after the @-sign is a special-use or reserved name that cannot be used with email."
)
# UTS #39 "Highly Restrictive": one script per label, or Latin with the scripts a Japanese,
# Chinese or Korean name is written in.
_ALLOWED_SCRIPT_MIXES: Final = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Character-name prefixes that name no script of their own, or not by their first word.
_SCRIPT_BY_NAME_PREFIX: Final = {
    "CJK": "HAN",
    "IDEOGRAPHIC": "HAN",
    "KATAKANA-HIRAGANA": "KATAKANA",
    "HALFWIDTH": None,
    "FULLWIDTH": None,
    "MODIFIER": None,
}


@dataclass(frozen=True, slots=True)
class Email:
    """An email address as written (to display and send to) and its matching key."""

    canonical: str  # the lookup key: unique per tenant and mode, compared exactly
    display: str  # as the person wrote it (trimmed, NFC): messages are sent here


def _reject_invisible(value: str) -> None:
    for ch in value:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES or ch.isspace():
            raise InvalidEmail(f"The email address contains a forbidden character U+{ord(ch):04X}.")


def _script(ch: str) -> str | None:
    """The script a letter is written in, from its Unicode name; None for common characters.

    The standard library has no Script property; a letter's name starts with its script
    ("CYRILLIC SMALL LETTER A"), which is all a same-script comparison needs. Digits, the
    hyphen and combining marks (which inherit their base letter's script) count as common.
    """
    if not unicodedata.category(ch).startswith("L"):
        return None
    first = unicodedata.name(ch, "").split(" ", 1)[0]
    return _SCRIPT_BY_NAME_PREFIX.get(first, first) if first else None


def _check_scripts(unicode_domain: str) -> None:
    for label in unicode_domain.split("."):
        scripts = {s for s in map(_script, label) if s is not None}
        if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_SCRIPT_MIXES):
            raise MixedScriptDomain(
                f"The domain label {label!r} mixes scripts ({', '.join(sorted(scripts))})."
            )


def ascii_domain(domain: str) -> str:
    """The domain's A-label form by IDNA 2008 with UTS #46 non-transitional processing.

    Non-transitional keeps "ß" and final sigma as themselves, so "faß.de" and "fass.de", which
    are different registrable domains, stay different; IDNA 2003 and transitional processing
    would turn the first into the second.
    """
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidEmail(f"The domain is not a valid internationalised name: {exc}") from exc


def _validate_syntax(display: str, domain: str, *, test_mode: bool) -> str:
    """Check syntax (no DNS) and special-use names; return the validated local part."""
    tld = domain.rsplit(".", 1)[-1].lower() if "." in domain else ""
    if tld in TEST_MODE_TLDS:
        if not test_mode:
            raise InvalidEmail(SPECIAL_USE_MESSAGE)
        # email-validator lets only ".test" through (its test_environment), so the other
        # reserved names are checked as the same address under ".test".
        display = display[: len(display) - len(tld)] + "test"
    try:
        validated = validate_email(display, check_deliverability=False, test_environment=test_mode)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    return str(validated.local_part)


def normalize_email(email: str, *, test_mode: bool = False) -> Email:
    """Check an email's syntax (no DNS) and return its display form and matching key.

    The key is `local@domain` where:

    - the domain is compared by IDNA 2008 / UTS #46 non-transitional processing, kept in its
      Unicode form ("xn--bcher-kva.example" and "Bücher.example" give "bücher.example"; "faß.de"
      and "fass.de" stay apart). A label that mixes scripts (a Cyrillic "а" in "exаmple") is
      refused, as UTS #39 advises for identifiers.
    - the local part is NFKC-normalised (fullwidth and other compatibility forms fold into
      their plain twins), lower-cased with Unicode's toLowerCase and NFC-normalised: RFC 8265's
      UsernameCaseMapped rule. Lower-casing, not case folding, so "ß" and "ss" stay different
      here too. Dots and "+tags" are NOT removed: that equivalence holds only at some providers
      (Gmail); elsewhere "a.b@" and "ab@" are different mailboxes, and merging them would let
      one person block or claim another's identity.

    Because the key can merge addresses that differ in case, messages must always go to the
    stored `display`, never to an address a caller typed. `test_mode` accepts the reserved test
    domains (.test, .example, .invalid, .localhost), which live mode refuses.
    """
    if not isinstance(email, str):
        raise InvalidEmail()
    display = unicodedata.normalize("NFC", email.strip())
    if not display:
        raise InvalidEmail("The email address is empty.")
    if len(display) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"The email address is longer than {MAX_EMAIL_LENGTH} characters.")
    # email-validator refuses most of these too; checking first gives one clear rule that does
    # not depend on the library's version.
    _reject_invisible(display)
    _, _, domain = display.rpartition("@")
    local = _validate_syntax(display, domain, test_mode=test_mode)
    unicode_domain = _unicode_domain(domain)
    return Email(canonical=f"{local_key(local)}@{unicode_domain}", display=display)


@functools.lru_cache(maxsize=4096)
def _unicode_domain(domain: str) -> str:
    """The checked Unicode form of a domain; cached, as a bulk import meets few domains.

    A refused domain raises, and exceptions are not cached: it is checked again each time.
    """
    unicode_domain = idna.decode(ascii_domain(domain))
    _check_scripts(unicode_domain)
    return unicode_domain


def local_key(local: str) -> str:
    """The matching form of a local part (RFC 8265 UsernameCaseMapped: width, lower, NFC)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFKC", local).lower())


def obfuscate_email(email: str) -> str:
    """Mask the local part of an address: "ahmed.samir@example.com" -> "ah***@example.com".

    The domain stays whole so a person can tell which mailbox to look in, in its A-label
    (punycode) form when it is not ASCII, so that a lookalike such as "exаmple.com" with a
    Cyrillic "а" cannot pass for the real one; of the local part at most two leading
    characters, and never more than half of it, are shown.
    """
    local, sep, domain = email.rpartition("@")
    if not sep or not local:
        raise InvalidEmail()
    if not domain.isascii():
        try:
            domain = ascii_domain(domain)
        except InvalidEmail:
            domain = domain.encode("ascii", "backslashreplace").decode("ascii")
    shown = min(2, len(local) // 2)
    return f"{local[:shown]}***@{domain}"
