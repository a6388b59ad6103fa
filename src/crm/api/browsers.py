"""What browsers are told: which origins may call the Self-Service API (CORS), per application.

An application lists its origins in its settings (`allowed_origins`). A preflight (OPTIONS)
carries no api_key and no token, so it cannot say which application it is for: it is answered
from the union of every application's origins. That union only lets the browser send the real
request; the real request's answer then carries CORS headers only if its own application (the
api_key's, or the access token's) allows the origin, so a portal allowed by one application
cannot read the answers of another. Requests that name no application (a refresh without
api_key, an unknown key, an unknown route) are judged by the union as well: their answers hold
nothing an origin could not already read with the token it sent.

The API takes no cookies: its credentials are headers the page sets itself, so
`Access-Control-Allow-Credentials` is never sent, and `*` (an application open to every origin)
is answered as `*`, which browsers never combine with credentials. `null` is never allowed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from crm.errors import Forbidden
from crm.identities import policy

log = logging.getLogger("crm.cors")

PREFIX = "/self-service/"
ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE"
ALLOW_METHOD_NAMES = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Every request header either Self-Service surface reads.
ALLOW_HEADERS = (
    b"api_key, authorization, content-type, idempotency-key, refresh_token, x-request-id"
)
# A portal needs the request id to report a problem, Retry-After to back off after a 429.
EXPOSE_HEADERS = b"x-request-id, retry-after, idempotent-replayed"
# Browsers cache a preflight this long (and cap it at 2 h); 10 minutes keeps a removed origin's
# preflights short-lived while sparing most calls a second round trip.
MAX_AGE = b"600"
ANY = "*"
_EMPTY: frozenset[str] = frozenset()


class OriginNotAllowed(Forbidden):
    """A preflight from an origin no application allows (or for a method no route has)."""

    code = "ORIGIN_NOT_ALLOWED"
    message = (
        "This origin may not call the Self-Service API: add it to an application's allowed_origins."
    )


class AllowedOrigins:
    """Every application's allowed origins, read from the database at most once per `ttl`.

    Read only when a request carries an Origin header, so servers and mobile apps (no Origin)
    never cause a read; a change made with `crm applications settings` holds everywhere within
    `ttl` seconds.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._by_application: Mapping[str, frozenset[str]] = {}
        self._by_tenant: Mapping[str, frozenset[str]] = {}
        self._union: frozenset[str] = _EMPTY

    async def refresh(self, engine: AsyncEngine) -> None:
        if time.monotonic() < self._expires:
            return
        async with self._lock:
            if time.monotonic() < self._expires:
                return  # another request loaded them while this one waited
            try:
                await self._load(engine)
            except Exception as exc:
                # The previous origins keep serving; a database outage must not fail requests.
                log.warning("allowed origins unavailable", extra={"error": type(exc).__name__})
            self._expires = time.monotonic() + self.ttl

    async def _load(self, engine: AsyncEngine) -> None:
        by_application: dict[str, frozenset[str]] = {}
        by_tenant: dict[str, set[str]] = {}
        for application_id, tenant_id, origins in await policy.allowed_origins(engine):
            by_application[application_id] = origins
            by_tenant.setdefault(tenant_id, set()).update(origins)
        self._by_application = by_application
        self._by_tenant = {tenant: frozenset(found) for tenant, found in by_tenant.items()}
        self._union = frozenset().union(*by_application.values())

    def preflight(self, origin: str) -> bytes | None:
        """The Access-Control-Allow-Origin of a preflight from `origin`, or None to refuse."""
        return _allow(self._union, origin)

    def answer(self, origin: str, state: Mapping[str, Any]) -> bytes | None:
        """The Access-Control-Allow-Origin of a real request's answer, or None for no CORS.

        `state` is the request's: the api_key's dependency names the application, the access
        token's names it (and the tenant) too.
        """
        application_id = state.get("application_id")
        if application_id is not None:
            return _allow(self._by_application.get(application_id, _EMPTY), origin)
        tenant_id = state.get("tenant_id")
        if tenant_id is not None:
            return _allow(self._by_tenant.get(tenant_id, _EMPTY), origin)
        return _allow(self._union, origin)


def _allow(origins: frozenset[str], origin: str) -> bytes | None:
    if origin == "null" or not origin:
        return None
    if origin in origins:
        return origin.encode("latin-1")
    if ANY in origins:
        return b"*"
    return None
