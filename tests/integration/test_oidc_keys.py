"""The key cache and ID token checks against a scripted issuer on loopback: algorithms, key
rotation, the refetch limit, and discovery documents that must not be trusted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from crm.errors import AppError
from crm.social import jwks
from crm.social.verify import verify_id_token
from tests.support.http_sink import HttpSink, RecordedRequest, ScriptedResponse

AUDIENCE = "client-1"
Key = Any


class Issuer:
    """A scripted OpenID Connect issuer: a discovery document and a key set that can rotate."""

    def __init__(self, sink: HttpSink) -> None:
        self.sink = sink
        self.keys: dict[str, tuple[str, Key]] = {}
        self.discovery_path = "/.well-known/openid-configuration"
        self.document_issuer: str | None = None
        self.big = False

    @property
    def url(self) -> str:
        return self.sink.url_for("").rstrip("/")

    def add(self, kid: str, algorithm: str) -> Key:
        if algorithm == "RS256":
            key: Key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        self.keys[kid] = (algorithm, key)
        return key

    def jwk(self, kid: str) -> dict[str, Any]:
        algorithm, key = self.keys[kid]
        document: dict[str, Any] = jwt.PyJWK.from_json(
            jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(key.public_key())
        )._jwk_data
        return {**document, "kid": kid, "use": "sig"}

    def token(self, kid: str, **claims: Any) -> str:
        algorithm, key = self.keys[kid]
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300}
        body.update(claims)
        return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})

    def answer(self, request: RecordedRequest) -> ScriptedResponse | None:
        if request.route == self.discovery_path:
            return ScriptedResponse(
                200,
                {
                    "issuer": self.document_issuer or self.url,
                    "jwks_uri": self.url + "/keys",
                    "authorization_endpoint": self.url + "/auth",
                    "token_endpoint": self.url + "/token",
                },
            )
        if request.route == "/keys":
            keys = [self.jwk(kid) for kid in self.keys]
            if self.big:
                keys = keys * 2000
            return ScriptedResponse(200, {"keys": keys})
        return ScriptedResponse(404, "no")

    def fetches(self, route: str = "/keys") -> int:
        return sum(1 for r in self.sink.requests if r.route == route)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    sink = HttpSink()
    made = Issuer(sink)
    sink.responder = made.answer
    with sink:
        yield made


async def verify(issuer: Issuer, cache: jwks.KeyCache, token: str, **more: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "http": jwks.ProviderHttp(private_allowed=True),
        "cache": cache,
        "issuers": (issuer.url,),
        "audiences": (AUDIENCE,),
        "now": time.time(),
        "nonce": None,
    }
    options.update(more)
    return await verify_id_token(token, **options)


async def refused(issuer: Issuer, cache: jwks.KeyCache, token: str, **more: Any) -> str:
    with pytest.raises(AppError) as caught:
        await verify(issuer, cache, token, **more)
    return caught.value.code


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
async def test_each_allowed_algorithm_verifies(issuer: Issuer, algorithm: str) -> None:
    issuer.add("k1", algorithm)
    claims = await verify(issuer, jwks.KeyCache(), issuer.token("k1"))
    assert claims["sub"] == "user-1"


async def test_a_key_is_used_only_with_its_own_algorithm(issuer: Issuer) -> None:
    issuer.add("ec", "ES256")
    rsa_key = issuer.add("rsa", "RS256")
    # An RS256 token that names the EC key: refused before any signature check.
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "u", "iat": now, "exp": now + 60}
    mixed = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "ec"})
    assert await refused(issuer, jwks.KeyCache(), mixed) == "OIDC_SIGNATURE_INVALID"
    for algorithm in ("RS384", "PS256", "HS512"):
        header = jwt.utils.base64url_encode(f'{{"alg":"{algorithm}","kid":"rsa"}}'.encode())
        token = header.decode() + "." + issuer.token("rsa").split(".", 1)[1]
        assert await refused(issuer, jwks.KeyCache(), token) == "OIDC_TOKEN_INVALID"


async def test_claims_each_have_their_own_refusal(issuer: Issuer) -> None:
    issuer.add("k", "ES256")
    cache = jwks.KeyCache()
    now = int(time.time())
    cases = {
        "OIDC_AUDIENCE_MISMATCH": {"aud": "client-2"},
        "OIDC_TOKEN_EXPIRED": {"exp": now - 61},
        "OIDC_TOKEN_INVALID": {"sub": ""},
        "OIDC_ISSUER_MISMATCH": {"iss": issuer.url + "/other"},
    }
    for code, claims in cases.items():
        assert await refused(issuer, cache, issuer.token("k", **claims)) == code, code
    future = issuer.token("k", iat=now + 120)
    assert await refused(issuer, cache, future) == "OIDC_TOKEN_EXPIRED"
    # Several audiences: the authorized party must be ours too (OpenID Connect Core 3.1.3.7).
    shared = issuer.token("k", aud=[AUDIENCE, "client-2"], azp="client-2")
    assert await refused(issuer, cache, shared) == "OIDC_AUDIENCE_MISMATCH"
    ours = issuer.token("k", aud=[AUDIENCE, "client-2"], azp=AUDIENCE)
    assert (await verify(issuer, cache, ours))["azp"] == AUDIENCE
    # The nonce, or its SHA-256 (Apple's SDK hashes it), and nothing else.
    hashed = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"  # sha256("foo")
    assert await verify(issuer, cache, issuer.token("k", nonce=hashed), nonce="foo")
    wrong = issuer.token("k", nonce="bar")
    assert await refused(issuer, cache, wrong, nonce="foo") == "OIDC_NONCE_MISMATCH"


async def test_rotation_is_picked_up_but_unknown_kids_force_no_fetches(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer.add("old", "ES256")
    cache = jwks.KeyCache()
    clock = [1000.0]
    monkeypatch.setattr(jwks.time, "monotonic", lambda: clock[0])
    await verify(issuer, cache, issuer.token("old"))
    assert issuer.fetches() == 1 and issuer.fetches(issuer.discovery_path) == 1
    issuer.add("new", "ES256")
    for _ in range(20):
        assert await refused(issuer, cache, issuer.token("new")) == "OIDC_SIGNATURE_INVALID"
    assert issuer.fetches() == 1  # within the refetch interval: nothing fetched
    clock[0] += jwks.REFETCH_INTERVAL
    assert await verify(issuer, cache, issuer.token("new"))  # one refetch finds the new key
    for _ in range(5):
        await refused(issuer, cache, issuer.token("new", iss="x"))
    assert issuer.fetches() == 2 and issuer.fetches(issuer.discovery_path) == 1
    assert cache.fetches(issuer.url) == 2


async def test_untrusted_discovery_documents_and_key_sets(issuer: Issuer) -> None:
    issuer.add("k", "ES256")
    issuer.document_issuer = "https://accounts.google.com"
    assert await refused(issuer, jwks.KeyCache(), issuer.token("k")) == "OIDC_PROVIDER_UNAVAILABLE"
    issuer.document_issuer = None
    issuer.big = True  # over the size bound
    assert await refused(issuer, jwks.KeyCache(), issuer.token("k")) == "OIDC_PROVIDER_UNAVAILABLE"


async def test_the_trailing_slash_redirect_is_asked_directly_and_others_not_followed(
    issuer: Issuer,
) -> None:
    issuer.add("k", "RS256")
    issuer.discovery_path = "/.well-known/openid-configuration/"
    issuer.sink.script(
        ScriptedResponse(301, "moved", headers={"Location": issuer.url + issuer.discovery_path})
    )
    assert await verify(issuer, jwks.KeyCache(), issuer.token("k"))
    issuer.sink.script(ScriptedResponse(302, "", headers={"Location": "http://169.254.169.254/"}))
    issuer.sink.script(ScriptedResponse(302, "", headers={"Location": "http://169.254.169.254/"}))
    code = await refused(issuer, jwks.KeyCache(), issuer.token("k"))
    assert code == "OIDC_PROVIDER_UNAVAILABLE"
    assert all(
        r.route.startswith("/.well-known/") or r.route == "/keys" for r in issuer.sink.requests
    )


async def test_private_addresses_are_refused_where_provider_urls_are(issuer: Issuer) -> None:
    issuer.add("k", "ES256")
    guarded = jwks.ProviderHttp(private_allowed=False)
    code = await refused(issuer, jwks.KeyCache(), issuer.token("k"), http=guarded)
    assert code == "OIDC_PROVIDER_UNAVAILABLE"
    assert issuer.sink.requests == []  # http and loopback: no connection made
