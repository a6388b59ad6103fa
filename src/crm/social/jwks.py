"""Discovery documents and signing keys of identity providers, fetched and cached with bounds.

Keys are refetched when they grow old, or when a token names a key id the cached set lacks
(the provider rotated), but at most once per REFETCH_INTERVAL per issuer: a token with a made-up
`kid` costs the attacker a 401, never this server a fetch.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from crm.messaging.providers.netguard import AddressNotAllowed, HostUnresolvable, guarded_client
from crm.social.errors import OidcProviderUnavailable

DISCOVERY_TTL = 3600.0
KEYS_TTL = 3600.0
# The least time between two fetches of one issuer's keys, whatever tokens arrive.
REFETCH_INTERVAL = 60.0
MAX_ISSUERS = 200
MAX_KEYS = 50
MAX_DOCUMENT_BYTES = 256 * 1024
TIMEOUT_SECONDS = 5.0
_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=0)


@dataclass(frozen=True, slots=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(slots=True)
class _Entry:
    discovery: Discovery | None = None
    discovery_at: float = 0.0
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys_at: float = 0.0
    attempt_at: float | None = None
    fetches: int = 0


class ProviderHttp:
    """GET and POST to a provider, bounded in time and size; to public addresses only unless
    private addresses are allowed (development, tests), and never following redirects."""

    def __init__(self, *, private_allowed: bool) -> None:
        self.private_allowed = private_allowed

    def _client(self) -> httpx.AsyncClient:
        if self.private_allowed:
            return httpx.AsyncClient(limits=_LIMITS, trust_env=False, follow_redirects=False)
        return guarded_client(_LIMITS)

    async def request(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, JSON document); OidcProviderUnavailable when there is no JSON answer."""
        scheme = urlsplit(url).scheme
        if scheme not in ("https", "http") or (scheme == "http" and not self.private_allowed):
            raise OidcProviderUnavailable(
                "The identity provider gave an address that is not https."
            )
        try:
            async with self._client() as client:
                async with client.stream(
                    method,
                    url,
                    timeout=TIMEOUT_SECONDS,
                    headers={"Accept": "application/json"},
                    **kwargs,
                ) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > MAX_DOCUMENT_BYTES:
                            raise OidcProviderUnavailable(
                                "The identity provider's answer is too large."
                            )
                    status = response.status_code
        except (httpx.HTTPError, AddressNotAllowed, HostUnresolvable, OSError):
            raise OidcProviderUnavailable() from None
        try:
            return status, json.loads(bytes(body))
        except ValueError:
            if status != 200:
                return status, None  # an error or redirect page: the status says enough
            raise OidcProviderUnavailable("The identity provider did not answer JSON.") from None


def _discovery(issuer: str, document: Any) -> Discovery:
    if not isinstance(document, dict):
        raise OidcProviderUnavailable("The provider's discovery document is not an object.")
    # OpenID Connect Discovery 4.3: the document's issuer must be the one asked about, or a
    # document served elsewhere could name another provider's endpoints.
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise OidcProviderUnavailable("The provider's discovery document names another issuer.")
    values = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        values[name] = value if isinstance(value, str) and len(value) <= 2000 else ""
    if not values["jwks_uri"]:
        raise OidcProviderUnavailable("The provider's discovery document has no jwks_uri.")
    return Discovery(issuer=issuer, **values)


def _key_set(document: Any) -> dict[str, dict[str, Any]]:
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise OidcProviderUnavailable("The provider's key set has no keys.")
    found: dict[str, dict[str, Any]] = {}
    for key in keys[:MAX_KEYS]:
        if isinstance(key, dict) and key.get("use", "sig") == "sig":
            kid = key.get("kid")
            found[kid if isinstance(kid, str) else ""] = key
    return found


class KeyCache:
    """Per-process cache of discovery documents and key sets, by issuer (least recently used
    issuers dropped beyond MAX_ISSUERS). Times are monotonic: moving the wall clock (or a test's
    frozen clock) neither empties nor refills it."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _entry(self, issuer: str) -> _Entry:
        entry = self._entries.get(issuer)
        if entry is None:
            entry = self._entries[issuer] = _Entry()
            while len(self._entries) > MAX_ISSUERS:
                self._entries.popitem(last=False)
        self._entries.move_to_end(issuer)
        return entry

    def fetches(self, issuer: str) -> int:
        """Key-set fetches made for `issuer` (what the refetch limit bounds)."""
        entry = self._entries.get(issuer)
        return 0 if entry is None else entry.fetches

    def forget(self, issuer: str | None = None) -> None:
        if issuer is None:
            self._entries.clear()
        else:
            self._entries.pop(issuer, None)

    async def discovery(self, http: ProviderHttp, issuer: str) -> Discovery:
        entry = self._entry(issuer)
        now = time.monotonic()
        if entry.discovery is not None and now - entry.discovery_at < DISCOVERY_TTL:
            return entry.discovery
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        status, document = await http.request("GET", url)
        if status in (301, 302, 307, 308):
            # Facebook serves its document at the path with a trailing slash, behind a redirect
            # (not followed: redirects are where SSRF hides); that one spelling is asked directly.
            status, document = await http.request("GET", url + "/")
        if status != 200:
            raise OidcProviderUnavailable()
        entry.discovery, entry.discovery_at = _discovery(issuer, document), now
        return entry.discovery

    async def key(self, http: ProviderHttp, issuer: str, kid: str | None) -> dict[str, Any] | None:
        """The JWK `kid` names (or the only key, for a token without kid); None if unknown."""
        entry = self._entry(issuer)
        now = time.monotonic()
        fresh = entry.keys_at and now - entry.keys_at < KEYS_TTL
        found = self._pick(entry.keys, kid)
        if found is not None and fresh:
            return found
        if entry.attempt_at is not None and now - entry.attempt_at < REFETCH_INTERVAL:
            if not entry.keys:
                raise OidcProviderUnavailable()  # the last fetch failed moments ago
            return found
        # Counted before the fetch: a failing provider is not asked again at every request.
        entry.attempt_at = now
        entry.fetches += 1
        discovery = await self.discovery(http, issuer)
        status, document = await http.request("GET", discovery.jwks_uri)
        if status != 200:
            raise OidcProviderUnavailable()
        entry.keys, entry.keys_at = _key_set(document), now
        return self._pick(entry.keys, kid)

    @staticmethod
    def _pick(keys: dict[str, dict[str, Any]], kid: str | None) -> dict[str, Any] | None:
        if kid is not None:
            return keys.get(kid)
        return next(iter(keys.values())) if len(keys) == 1 else None


# One per process: keys are public, and sharing them across tenants of one issuer saves fetches.
CACHE = KeyCache()
