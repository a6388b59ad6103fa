"""Unit tests for crm.security.passwords: argon2id hashing off the loop, and the NIST policy."""

from __future__ import annotations

import asyncio
import threading
import unicodedata
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.low_level import Type

import crm
from crm.errors import (
    AppError,
    PasswordRepetitive,
    PasswordSequential,
    PasswordTooLong,
    PasswordTooShort,
    PasswordWhitespaceOnly,
    WeakPassword,
)
from crm.security import passwords
from crm.security.passwords import (
    check_password_policy,
    common_passwords,
    hash_password,
    needs_rehash,
    verify_against_dummy,
    verify_password,
)

GOOD = "correct horse battery staple"


async def test_hash_is_argon2id_with_owasp_parameters_and_verifies() -> None:
    hashed = await hash_password(GOOD)
    assert hashed.startswith("$argon2id$v=19$m=47104,t=1,p=1$")
    assert GOOD not in hashed
    assert await verify_password(hashed, GOOD)


async def test_two_hashes_of_one_password_differ_by_salt() -> None:
    assert await hash_password(GOOD) != await hash_password(GOOD)


async def test_wrong_password_does_not_verify() -> None:
    hashed = await hash_password(GOOD)
    assert not await verify_password(hashed, GOOD + "!")
    assert not await verify_password(hashed, GOOD.upper())
    assert not await verify_password(hashed, "")


async def test_corrupt_or_foreign_stored_hash_verifies_false_without_raising() -> None:
    assert not await verify_password("not-a-hash", GOOD)
    assert not await verify_password("", GOOD)
    assert not await verify_password("$2b$12$abcdefghijklmnopqrstuv", GOOD)


async def test_passwords_are_nfkc_normalised_so_composed_and_decomposed_match() -> None:
    composed = "café-au-lait-1999"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    hashed = await hash_password(composed)
    assert await verify_password(hashed, decomposed)
    assert await verify_password(await hash_password("ｐａｓｓ ｗｏｒｄ ９"), "pass word 9")


async def test_hashing_and_verifying_run_off_the_event_loop_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real_hash, real_verify = passwords._hash_sync, passwords._verify_sync

    def spy_hash(password: str) -> str:
        seen.append(threading.get_ident())
        return real_hash(password)

    def spy_verify(password_hash: str, password: str) -> bool:
        seen.append(threading.get_ident())
        return real_verify(password_hash, password)

    monkeypatch.setattr(passwords, "_hash_sync", spy_hash)
    monkeypatch.setattr(passwords, "_verify_sync", spy_verify)
    hashed = await hash_password(GOOD)
    assert await verify_password(hashed, GOOD)
    assert len(seen) == 2
    assert loop_thread not in seen


async def test_event_loop_keeps_running_while_a_hash_is_computed() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await hash_password(GOOD)
    finally:
        task.cancel()
    assert ticks > 1


async def test_absurdly_long_input_is_refused_before_hashing() -> None:
    with pytest.raises(PasswordTooLong):
        await hash_password("a" * 5000)
    assert not await verify_password(await hash_password(GOOD), "a" * 5000)


async def test_verify_against_dummy_is_always_false_and_does_the_work() -> None:
    assert await verify_against_dummy(GOOD) is False
    assert await verify_against_dummy("") is False


async def test_needs_rehash_false_for_current_parameters_true_for_weaker_or_garbage() -> None:
    assert not needs_rehash(await hash_password(GOOD))
    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    assert needs_rehash(weaker.hash(GOOD))
    assert needs_rehash("garbage")
    # an older hash still verifies, so the caller can re-hash it after a successful sign-in
    assert await verify_password(weaker.hash(GOOD), GOOD)


def test_policy_refuses_7_characters_and_accepts_8() -> None:
    with pytest.raises(PasswordTooShort) as caught:
        check_password_policy("Tr0ub4d")
    assert caught.value.code == "PASSWORD_TOO_SHORT"
    check_password_policy("Tr0ub4d!")


def test_policy_accepts_128_characters_and_refuses_129() -> None:
    check_password_policy("x7Q" + "z" * 125)
    with pytest.raises(PasswordTooLong) as caught:
        check_password_policy("x7Q" + "z" * 126)
    assert caught.value.code == "PASSWORD_TOO_LONG"


def test_policy_counts_code_points_not_bytes() -> None:
    # 8 emoji are 32 UTF-8 bytes but 8 code points: allowed; 7 are too short.
    check_password_policy("🔑🐙🌵🎲🚲🍋🧭🦉")
    with pytest.raises(PasswordTooShort):
        check_password_policy("🔑🐙🌵🎲🚲🍋🧭")


def test_policy_counts_length_after_nfkc() -> None:
    # The ligatures U+FB01..U+FB04 are one code point each that NFKC turns into two or three.
    check_password_policy("\ufb01\ufb02\ufb03\ufb04")
    # 127 code points that NFKC expands past 128.
    with pytest.raises(PasswordTooLong):
        check_password_policy("\ufb01" * 2 + "k" * 125)


def test_policy_has_no_composition_rules() -> None:
    check_password_policy("all lower case words here")
    check_password_policy("9183746502918374")


@pytest.mark.parametrize("common", ["password", "PASSWORD", "Password", "12345678", "iloveyou"])
def test_policy_refuses_common_passwords_case_insensitively(common: str) -> None:
    with pytest.raises(WeakPassword) as caught:
        check_password_policy(common)
    assert caught.value.code == "PASSWORD_TOO_WEAK"
    assert isinstance(caught.value, AppError)
    assert caught.value.status_code == 400


def test_policy_refuses_a_common_password_typed_in_fullwidth() -> None:
    with pytest.raises(WeakPassword):
        check_password_policy("ｐａｓｓｗｏｒｄ")


def test_policy_refuses_a_password_equal_to_a_context_word() -> None:
    with pytest.raises(WeakPassword):
        check_password_policy("Ahmed.Samir@Example.com", context=["ahmed.samir@example.com"])
    check_password_policy("Ahmed.Samir@Example.com!", context=["ahmed.samir@example.com", ""])


def test_policy_refuses_non_strings() -> None:
    with pytest.raises(WeakPassword):
        check_password_policy(None)  # type: ignore[arg-type]


def test_common_password_list_is_loaded_once_and_large() -> None:
    first = common_passwords()
    assert first is common_passwords()
    assert isinstance(first, frozenset)
    assert len(first) >= 10_000
    assert "password" in first
    assert not any(entry.startswith("#") for entry in first)
    assert all(entry == entry.lower() for entry in first)


def test_common_password_file_names_its_source_on_the_first_line() -> None:
    path = Path(crm.__file__).parent / "data" / "common-passwords.txt"
    first_line = path.read_text("utf-8").splitlines()[0]
    assert first_line.startswith("# source: zxcvbn")
    assert "MIT" in first_line


# --- repetitive, sequential and blank passwords (SP 800-63B's examples of values to refuse) ---


@pytest.mark.parametrize(
    "password",
    [
        " " * 8,
        "\u3000" * 8,  # ideographic space
        "\u00a0" * 8,  # no-break space
        "\t \u2003 \u2009\u3000\n ",
        " \u200b" * 4,  # spaces and zero-width spaces
    ],
)
def test_blank_passwords_are_refused(password: str) -> None:
    with pytest.raises(PasswordWhitespaceOnly) as caught:
        check_password_policy(password)
    assert caught.value.code == "PASSWORD_WHITESPACE_ONLY"
    assert caught.value.status_code == 400
    assert isinstance(caught.value, WeakPassword)


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaa",
        "AAAAAAAAAAAA",
        "abababab",
        "abcabcab",
        "xyzxyzxyz",
        "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
        "sunflowersunflower",
        "q1w2q1w2q1w2",
    ],
)
def test_repetitive_passwords_are_refused(password: str) -> None:
    with pytest.raises(PasswordRepetitive) as caught:
        check_password_policy(password)
    assert caught.value.code == "PASSWORD_REPETITIVE"


@pytest.mark.parametrize(
    "password",
    [
        "abcdefgh",
        "ABCDEFGHIJ",
        "23456789",
        "98765432",
        "hgfedcba",
        "wertyuio",
        "oiuytrew",
        "zxcvbnm,./",
        "zertyuio",
        "2345bcde",
        "abc123xyz",
        "\u03b1\u03b2\u03b3\u03b4\u03b5\u03b6\u03b7\u03b8",  # Greek alpha to theta
    ],
)
def test_sequential_passwords_are_refused(password: str) -> None:
    with pytest.raises(PasswordSequential) as caught:
        check_password_policy(password)
    assert caught.value.code == "PASSWORD_SEQUENTIAL"


@pytest.mark.parametrize("password", ["12345678", "qwertyui", "aaaaaaaa"])
def test_the_examples_of_the_report_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword):
        check_password_policy(password)


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaab",  # not one unit repeated
        "abcdefgh xq",  # a run plus something else
        "correct horse battery staple",
        "kx9#mQ2z",
        "  spaced out  ",
        "Tr0ub4dor&3",
        "9183746502918374",
    ],
)
def test_passwords_with_runs_or_spaces_inside_are_still_allowed(password: str) -> None:
    check_password_policy(password)


def test_a_long_run_check_stays_bounded() -> None:
    # 128 characters of near-runs: the check is linear, not exponential, in the length.
    check_password_policy(("abcx" * 32)[:127] + "!")
