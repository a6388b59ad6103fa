"""Unit tests for crm.security.jwt: keys, signing, and verification against forged tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crm.errors import InvalidToken, TokenExpired
from crm.security.jwt import (
    decode_unverified_header,
    generate_signing_key,
    jwks,
    peek_claims,
    sign_access_token,
    verify_access_token,
)

ISSUER = "https://crm.example.test"
TENANT = "tenant-a"
NOW = 1_767_225_000.0
KID, PRIVATE_PEM, PUBLIC_JWK = generate_signing_key()
KEYS = {KID: PUBLIC_JWK}


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": TENANT,
        "sub": "contact-1",
        "sid": "session-1",
        "app": "app-1",
        "mode": "test",
        "iat": int(NOW),
        "exp": int(NOW) + 900,
        "jti": "jti-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _verify(token: str, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": TENANT, "now": NOW}
    options.update(kwargs)
    keys = options.pop("keys", KEYS)
    return verify_access_token(token, keys, **options)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _forge_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _sign_with(key: Ed25519PrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


# --- keys and signing ---


def test_generated_key_is_ed25519_with_rfc7638_thumbprint_kid() -> None:
    kid, pem, jwk = generate_signing_key()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
    assert jwk["kid"] == kid
    assert "d" not in jwk
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"))
    assert kid == _b64(hashlib.sha256(canonical.encode()).digest())
    raw_public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert jwk["x"] == _b64(raw_public)


def test_each_generated_key_is_new() -> None:
    assert generate_signing_key()[0] != generate_signing_key()[0]


def test_signed_token_has_the_at_jwt_header() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    header = decode_unverified_header(token)
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": KID}


def test_sign_refuses_claims_that_verification_would_reject() -> None:
    with pytest.raises(ValueError, match="sid"):
        sign_access_token(PRIVATE_PEM, KID, _claims(sid=None))


def test_sign_refuses_a_non_ed25519_key() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError):
        sign_access_token(ec_pem, KID, _claims())


# --- verification: the happy paths ---


def test_valid_token_verifies_and_returns_all_claims() -> None:
    claims = _verify(sign_access_token(PRIVATE_PEM, KID, _claims()))
    assert claims == _claims()


def test_verification_accepts_a_key_object_as_well_as_a_jwk() -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    assert _verify(token, keys={KID: key.public_key()})["sub"] == "contact-1"


def test_audience_none_skips_only_the_comparison() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims(aud="tenant-z"))
    assert _verify(token, audience=None)["aud"] == "tenant-z"
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    without_aud = _sign_with(key, {"alg": "EdDSA", "typ": "at+jwt", "kid": KID}, _claims(aud=None))
    with pytest.raises(InvalidToken):
        _verify(without_aud, audience=None)


def test_typ_is_compared_case_insensitively_and_full_media_type_is_accepted() -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    for typ in ("AT+JWT", "application/at+jwt"):
        token = _sign_with(key, {"alg": "EdDSA", "typ": typ, "kid": KID}, _claims())
        assert _verify(token)["jti"] == "jti-1"


def test_token_verifies_within_leeway_after_expiry_and_not_beyond() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    assert _verify(token, now=NOW + 900 + 29)
    with pytest.raises(TokenExpired):
        _verify(token, now=NOW + 900 + 30)
    with pytest.raises(TokenExpired):
        _verify(token, now=NOW + 900, leeway=0)


# --- verification: attacks and mistakes ---


def test_expired_token_raises_token_expired_with_its_code() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims(iat=int(NOW) - 2000, exp=int(NOW) - 100))
    with pytest.raises(TokenExpired) as caught:
        _verify(token)
    assert caught.value.code == "TOKEN_EXPIRED"
    assert caught.value.status_code == 401
    assert isinstance(caught.value, InvalidToken)


def test_alg_none_is_refused() -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": KID}
    token = f"{_segment(header)}.{_segment(_claims())}."
    with pytest.raises(InvalidToken) as caught:
        _verify(token)
    assert caught.value.code == "TOKEN_INVALID"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_spelled_any_way_is_refused(alg: str) -> None:
    token = f"{_segment({'alg': alg, 'typ': 'at+jwt', 'kid': KID})}.{_segment(_claims())}."
    with pytest.raises(InvalidToken):
        _verify(token)


def test_hs256_signed_with_the_public_key_pem_is_refused() -> None:
    public_pem = (
        serialization.load_pem_private_key(PRIVATE_PEM, password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": KID}
    for secret in (public_pem, PUBLIC_JWK["x"].encode(), json.dumps(PUBLIC_JWK).encode()):
        with pytest.raises(InvalidToken):
            _verify(_forge_hs256(header, _claims(), secret))


def test_token_signed_by_another_key_under_our_kid_is_refused() -> None:
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64(
            attacker.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        ),
    }
    # an embedded jwk header must never be trusted as the verification key
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": KID, "jwk": attacker_jwk}
    with pytest.raises(InvalidToken):
        _verify(_sign_with(attacker, header, _claims()))


def test_unknown_kid_is_refused() -> None:
    other_kid, other_pem, _ = generate_signing_key()
    with pytest.raises(InvalidToken):
        _verify(sign_access_token(other_pem, other_kid, _claims()))


def test_missing_or_non_string_kid_is_refused() -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    for header in ({"alg": "EdDSA", "typ": "at+jwt"}, {"alg": "EdDSA", "typ": "at+jwt", "kid": 1}):
        with pytest.raises(InvalidToken):
            _verify(_sign_with(key, header, _claims()))


def test_token_from_tenant_a_is_refused_with_tenant_b_keys() -> None:
    b_kid, _, b_jwk = generate_signing_key()
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    with pytest.raises(InvalidToken):
        _verify(token, keys={b_kid: b_jwk}, audience="tenant-b")


def test_tampered_payload_is_refused() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    header, _, signature = token.split(".")
    forged = f"{header}.{_segment(_claims(sub='contact-2'))}.{signature}"
    with pytest.raises(InvalidToken):
        _verify(forged)


def test_tampered_signature_is_refused() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    header, payload, signature = token.split(".")
    flipped = "A" if signature[0] != "A" else "B"
    with pytest.raises(InvalidToken):
        _verify(f"{header}.{payload}.{flipped}{signature[1:]}")


def test_tampered_header_is_refused() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    _, payload, signature = token.split(".")
    header = _segment({"alg": "EdDSA", "typ": "at+jwt", "kid": KID, "x": 1})
    with pytest.raises(InvalidToken):
        _verify(f"{header}.{payload}.{signature}")


def test_wrong_audience_is_refused() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    with pytest.raises(InvalidToken):
        _verify(token, audience="tenant-b")


def test_audience_as_a_list_is_refused() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims(aud=[TENANT, "tenant-b"]))
    with pytest.raises(InvalidToken):
        _verify(token)


def test_wrong_issuer_is_refused() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims(iss="https://evil.example"))
    with pytest.raises(InvalidToken):
        _verify(token)


@pytest.mark.parametrize("typ", [None, "JWT", "id+jwt", "at+jwt2", 7])
def test_wrong_or_missing_typ_is_refused(typ: Any) -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    header: dict[str, Any] = {"alg": "EdDSA", "kid": KID}
    if typ is not None:
        header["typ"] = typ
    with pytest.raises(InvalidToken):
        _verify(_sign_with(key, header, _claims()))


def test_crit_header_is_refused() -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": KID, "crit": ["exp"], "exp": 1}
    with pytest.raises(InvalidToken):
        _verify(_sign_with(key, header, _claims()))


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "sub", "sid", "jti"])
def test_each_required_claim_missing_is_refused(claim: str) -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    token = _sign_with(key, {"alg": "EdDSA", "typ": "at+jwt", "kid": KID}, _claims(**{claim: None}))
    with pytest.raises(InvalidToken):
        _verify(token, audience=None if claim == "aud" else TENANT)


@pytest.mark.parametrize(
    "overrides",
    [{"exp": "never"}, {"exp": True}, {"iat": "now"}, {"sub": ""}, {"sid": 5}, {"jti": None}],
)
def test_malformed_claim_values_are_refused(overrides: dict[str, Any]) -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    token = _sign_with(key, {"alg": "EdDSA", "typ": "at+jwt", "kid": KID}, _claims(**overrides))
    with pytest.raises(InvalidToken):
        _verify(token)


def test_token_issued_in_the_future_beyond_leeway_is_refused() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims(iat=int(NOW) + 60, exp=int(NOW) + 960))
    with pytest.raises(InvalidToken):
        _verify(token)
    assert _verify(token, now=NOW + 31)


def test_not_before_in_the_future_is_refused() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims(nbf=int(NOW) + 120))
    with pytest.raises(InvalidToken):
        _verify(token)
    assert _verify(token, now=NOW + 120)


def test_key_set_entry_of_another_type_is_not_used() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    for bad in (
        {"kty": "oct", "k": PUBLIC_JWK["x"]},
        {**PUBLIC_JWK, "crv": "X25519"},
        {**PUBLIC_JWK, "alg": "HS256"},
        {**PUBLIC_JWK, "x": "!!!"},
        {**PUBLIC_JWK, "x": _b64(b"short")},
    ):
        with pytest.raises(InvalidToken):
            _verify(token, keys={KID: bad})


@pytest.mark.parametrize(
    "garbage", ["", "abc", "a.b", "a.b.c.d", "....", "x" * 9000, "eyJhbGciOiJFZERTQSJ9.e30.!!"]
)
def test_garbage_tokens_raise_invalid_token(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        _verify(garbage)
    with pytest.raises(InvalidToken):
        peek_claims(garbage)


def _parts() -> tuple[str, str, str]:
    header, payload, signature = sign_access_token(PRIVATE_PEM, KID, _claims()).split(".")
    return header, payload, signature


def test_the_genuine_token_verifies_so_the_variants_below_fail_for_their_change() -> None:
    assert _verify(".".join(_parts()))["sub"] == "contact-1"


@pytest.mark.parametrize(
    "variant",
    [
        lambda h, p, s: f"{h}=.{p}.{s}",  # padding is not part of the encoding
        lambda h, p, s: f"{h}.{p}.{s}==",
        lambda h, p, s: f"{h}.{p.replace('-', '+').replace('_', '/')}x.{s}",  # standard alphabet
        lambda h, p, s: f"{h}.{p} .{s}",  # whitespace
        lambda h, p, s: f"{h}.{p}é.{s}",  # not ASCII
        lambda h, p, s: f"{h}.{p}.{s[:-4]}",  # a signature too short for Ed25519
        lambda h, p, s: f"{h}.{p}.{s}AAAA",  # and too long
        lambda h, p, s: f"{h}.{p}A.{s}",  # a length no byte string encodes to
        lambda h, p, s: f"{_b64(b'not json')}.{p}.{s}",
        lambda h, p, s: f"{_b64(b'[1]')}.{p}.{s}",  # a header that is not an object
        lambda h, p, s: f"{_b64(bytes([0xFF, 0xFE]))}.{p}.{s}",  # not UTF-8
    ],
)
def test_segments_are_decoded_strictly(variant: Any) -> None:
    with pytest.raises(InvalidToken):
        _verify(variant(*_parts()))


def test_a_signed_payload_that_is_not_a_json_object_is_refused() -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    header = _segment({"alg": "EdDSA", "typ": "at+jwt", "kid": KID})
    for payload in (_b64(b"[1, 2]"), _b64(b"not json"), _b64(b'"text"')):
        signing_input = f"{header}.{payload}"
        token = f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"
        with pytest.raises(InvalidToken):
            _verify(token)


def test_non_string_token_raises_invalid_token() -> None:
    with pytest.raises(InvalidToken):
        decode_unverified_header(None)  # type: ignore[arg-type]


# --- unverified helpers and the JWKS ---


def test_peek_claims_reads_claims_without_any_key() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims(aud="tenant-q"))
    assert peek_claims(token)["aud"] == "tenant-q"


def test_peek_claims_does_not_verify_so_its_result_must_not_be_trusted() -> None:
    forged = f"{_segment({'alg': 'none', 'typ': 'at+jwt'})}.{_segment({'aud': 'victim'})}."
    assert peek_claims(forged) == {"aud": "victim"}


def test_jwks_lists_public_members_only_even_when_given_a_private_jwk() -> None:
    key = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    private_jwk = json.loads(pyjwt.algorithms.OKPAlgorithm.to_jwk(key))
    assert "d" in private_jwk
    document = jwks([PUBLIC_JWK, {**private_jwk, "kid": "k2", "extra": "x"}])
    assert document["keys"][0] == PUBLIC_JWK
    assert document["keys"][1] == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": PUBLIC_JWK["x"],
        "kid": "k2",
    }
    assert all("d" not in key for key in document["keys"])
    assert private_jwk["d"] not in json.dumps(document)


def test_jwks_entries_verify_tokens_through_pyjwt() -> None:
    token = sign_access_token(PRIVATE_PEM, KID, _claims())
    key = pyjwt.PyJWK(jwks([PUBLIC_JWK])["keys"][0])
    assert isinstance(key.key, Ed25519PublicKey)
    decoded = pyjwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience=TENANT,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded["sub"] == "contact-1"
