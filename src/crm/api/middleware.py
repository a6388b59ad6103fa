"""The outermost ASGI layer: request ids, the client address, the body size limit, CORS and the
headers every answer carries, the access log and last-resort errors."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm.api.browsers import (
    ALLOW_HEADERS,
    ALLOW_METHOD_NAMES,
    ALLOW_METHODS,
    EXPOSE_HEADERS,
    MAX_AGE,
    PREFIX,
    AllowedOrigins,
    OriginNotAllowed,
)
from crm.api.clientaddress import TrustedProxies
from crm.api.health import HEALTHZ_BODY, HEALTHZ_PATH, HEALTHZ_ROUTE, HEALTHZ_START
from crm.api.responses import error_body
from crm.metrics import REGISTRY as METRICS
from crm.metrics import route_template

log = logging.getLogger("crm.access")
errors_log = logging.getLogger("crm.errors")

# An incoming id is echoed in logs and headers, so only a short, inert alphabet is honoured.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

# On every answer: browsers must not guess a type from the content (a JSON body holding
# customer-typed text must never run as HTML or script).
_NOSNIFF = (b"x-content-type-options", b"nosniff")
# Unless a route says otherwise (the public JWKS): answers hold tokens and personal data, which
# no browser or intermediary cache may keep (RFC 6749 section 5.1 for the token responses).
_NO_STORE = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))
_VARY_ORIGIN = (b"vary", b"Origin")
# The request headers this layer reads (ASGI request header names are lower case).
_READ_HEADERS = frozenset({b"x-request-id", b"origin", b"content-length", b"transfer-encoding"})


class RequestContextMiddleware:
    """Gives every request an id, enforces the body limit, logs one line, and never leaks a trace.

    The body is read here, up to the limit, before any handler runs: a body over the limit is
    answered 413 without being parsed, whether or not it declared its length.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        proxies: TrustedProxies | None = None,
        origins: AllowedOrigins | None = None,
        upload_max_bytes: int | None = None,
        large_bodies: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.upload_max_bytes = upload_max_bytes or max_body_bytes
        # (method, path) -> its own limit: a route that takes whole files (contact imports).
        self.large_bodies = large_bodies or {}
        self.proxies = proxies if proxies is not None and proxies.enabled else None
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # One pass over the request headers for the few this layer reads.
        raw_headers = scope.get("headers", [])
        incoming = origin_raw = declared = None
        has_body = False
        for key, value in raw_headers:
            if key in _READ_HEADERS:
                if key == b"x-request-id":
                    incoming = incoming if incoming is not None else value
                elif key == b"origin":
                    origin_raw = origin_raw if origin_raw is not None else value
                elif key == b"content-length":
                    declared = declared if declared is not None else value
                    has_body = True
                else:  # transfer-encoding
                    has_body = True
        incoming_id = incoming.decode("latin-1") if incoming is not None else None
        if incoming_id and _SANE_REQUEST_ID.match(incoming_id):
            request_id = incoming_id
        else:
            request_id = _new_id()
        request_id_header = (b"x-request-id", request_id.encode())
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status_holder = {"status": 0}
        if self.proxies is not None and scope.get("client"):
            # Every later reader (per-client limits, session records) sees the resolved client.
            client = self.proxies.resolve(scope["client"][0], raw_headers)
            scope["client"] = (client, 0)
        cors = scope["path"].startswith(PREFIX)
        origin = (
            origin_raw.decode("latin-1")
            if cors and self.origins is not None and origin_raw is not None
            else None
        )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", ()))
                # ASGI response header names are lower case.
                if any(name == b"cache-control" for name, _ in headers):
                    headers += (request_id_header, _NOSNIFF)
                else:
                    headers += (request_id_header, _NOSNIFF, *_NO_STORE)
                if cors:
                    _cors_headers(headers, self.origins, origin, state)
                message = {**message, "headers": headers}
            await send(message)

        try:
            if origin is not None and self.origins is not None:
                await self.origins.refresh(scope["app"].state.runtime.engine)
            if origin is not None and scope["method"] == "OPTIONS":
                requested = _header(scope, b"access-control-request-method")
                if requested is not None:
                    await self._preflight(send_with_id, origin, requested, request_id)
                    return
            # A request that declares no body (no Content-Length, no Transfer-Encoding) has none
            # in HTTP/1.1: nothing to read or replay, and the receive channel is passed as is.
            upload = scope["method"] == "PUT" and _UPLOAD_PATH.match(scope["path"]) is not None
            limit = self.upload_max_bytes if upload else self.max_body_bytes
            limit = self.large_bodies.get((scope["method"], scope["path"]), limit)
            body = await self._read_body(declared, receive, limit) if has_body else b""
            if body is None:
                await _send_error(
                    send_with_id,
                    413,
                    "PAYLOAD_TOO_LARGE",
                    f"The request body is larger than {limit} bytes.",
                    request_id,
                )
                return
            # A picture is binary: NUL bytes are its content there, not an attack on a text column.
            if _has_nul(scope, b"" if upload else body):
                await _send_error(
                    send_with_id,
                    400,
                    "INVALID_REQUEST",
                    "The request contains a NUL character, which no field accepts.",
                    request_id,
                )
                return
            if not has_body and scope["path"] == HEALTHZ_PATH and scope["method"] == "GET":
                scope["route"] = HEALTHZ_ROUTE  # for the metrics' route label
                await send_with_id(HEALTHZ_START)
                await send_with_id(HEALTHZ_BODY)
                return
            await self.app(scope, _replay(body, receive) if has_body else receive, send_with_id)
        except Exception:
            errors_log.exception("unhandled error", extra={"request_id": request_id})
            if status_holder["status"] == 0:
                await _send_error(
                    send_with_id,
                    500,
                    "INTERNAL_ERROR",
                    "An unexpected error occurred. Quote the request id when reporting it.",
                    request_id,
                )
        finally:
            elapsed = time.perf_counter() - started
            METRICS.observe_request(scope, status_holder["status"], elapsed)
            # The line's fields (the route template above all) are only built when it is written.
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": route_template(scope),
                        "status": status_holder["status"],
                        "duration_ms": round(elapsed * 1000, 2),
                        "tenant_id": state.get("tenant_id"),
                        "request_id": request_id,
                    },
                )

    async def _preflight(self, send: Send, origin: str, method: str, request_id: str) -> None:
        """Answer a CORS preflight here: the routes have no OPTIONS, and it carries no key."""
        assert self.origins is not None
        allowed = self.origins.preflight(origin)
        if allowed is None or method not in ALLOW_METHOD_NAMES:
            error = OriginNotAllowed()
            await _send_error(send, error.status_code, error.code, error.message, request_id)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", allowed),
                    (b"access-control-allow-methods", ALLOW_METHODS),
                    (b"access-control-allow-headers", ALLOW_HEADERS),
                    (b"access-control-max-age", MAX_AGE),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _read_body(
        self, declared: bytes | None, receive: Receive, limit: int
    ) -> bytes | None:
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


# The picture uploads (PUT .../contacts/{id}/image on both APIs): a larger, binary body.
_UPLOAD_PATH = re.compile(r"^/(?:self-service/v[12]|backoffice/v1)/contacts/[^/]+/image$")


# A JSON "\u0000" escape: preceded by an even number of backslashes (an odd one would make it
# the literal text "\u0000" after an escaped backslash).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _has_nul(scope: Scope, body: bytes) -> bool:
    """Whether the path, query or body carries U+0000.

    PostgreSQL text cannot hold it: any such value that reached a query (an id in the path, a
    search term, a name) failed there with a 500. No field of either API has a use for it.
    """
    query = scope.get("query_string", b"")
    return (
        "\x00" in scope.get("path", "")
        or b"%00" in query
        or b"\x00" in query
        or b"\x00" in body
        or _JSON_NUL.search(body) is not None
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _cors_headers(
    headers: list[tuple[bytes, bytes]],
    origins: AllowedOrigins | None,
    origin: str | None,
    state: dict[str, Any],
) -> None:
    """A Self-Service answer depends on the Origin it was asked from (Vary), and tells an
    allowed origin so. A preflight's answer already carries its own allow header."""
    headers.append(_VARY_ORIGIN)
    if origin is None or origins is None:
        return
    if any(name == b"access-control-allow-origin" for name, _ in headers):
        return
    allowed = origins.answer(origin, state)
    if allowed is not None:
        headers.append((b"access-control-allow-origin", allowed))
        headers.append((b"access-control-expose-headers", EXPOSE_HEADERS))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None


def _new_id() -> str:
    return secrets.token_hex(12)


async def _send_error(send: Send, status: int, code: str, message: str, request_id: str) -> None:
    body: Any = orjson.dumps(error_body(code, message, request_id))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
