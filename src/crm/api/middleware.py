"""The outermost ASGI layer: request ids, the body size limit, the access log and last-resort errors."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm.api.responses import error_body
from crm.metrics import REGISTRY as METRICS
from crm.metrics import route_template

log = logging.getLogger("crm.access")
errors_log = logging.getLogger("crm.errors")

# An incoming id is echoed in logs and headers, so only a short, inert alphabet is honoured.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class RequestContextMiddleware:
    """Gives every request an id, enforces the body limit, logs one line, and never leaks a trace.

    The body is read here, up to the limit, before any handler runs: a body over the limit is
    answered 413 without being parsed, whether or not it declared its length.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SANE_REQUEST_ID.match(incoming) else _new_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status_holder = {"status": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await _send_error(
                    send_with_id,
                    413,
                    "PAYLOAD_TOO_LARGE",
                    f"The request body is larger than {self.max_body_bytes} bytes.",
                    request_id,
                )
                return
            if _has_nul(scope, body):
                await _send_error(
                    send_with_id,
                    400,
                    "INVALID_REQUEST",
                    "The request contains a NUL character, which no field accepts.",
                    request_id,
                )
                return
            await self.app(scope, _replay(body, receive), send_with_id)
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

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


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
