"""Example: an SMS webhook receiver that checks crm's X-CRM-Signature before trusting a message.

With the `webhook` SMS provider, crm POSTs each SMS as compact JSON
`{"to": "+357...", "text": "...", "message_id": "...", "tenant_id": "..."}` with the header

    X-CRM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed by the secret>

This receiver recomputes the HMAC over the raw bytes, compares in constant time, refuses
timestamps more than 5 minutes away (replays), and ignores a `message_id` it has already seen
(delivery is at least once). A verified message is printed to stdout and answered 200 with
`{"id": message_id}`; a bad or missing signature is answered 401. Replace `deliver()` with the
call to your SMS gateway. Standard library only: copy it freely.

    CRM_SMS_WEBHOOK_SECRET=whsec-... python examples/webhook_receiver.py --port 8025
    # and run crm with CRM_SMS_PROVIDER=webhook CRM_SMS_WEBHOOK_URL=http://127.0.0.1:8025/sms
    # and the same CRM_SMS_WEBHOOK_SECRET.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_HEADER = "X-CRM-Signature"
TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024
REMEMBERED_IDS = 100_000  # message ids kept for deduplication (oldest forgotten first)


def verify_signature(
    secret: bytes, header: str | None, body: bytes, *, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """True when `header` is `t=<unix>,v1=<hex>` and one v1 is the HMAC-SHA256 of
    `<t>.<body>` under `secret`, with t within `tolerance` seconds of now (either way).

    Several v1 entries may be present while the sender rotates its secret; each is compared
    in constant time, and the loop does not stop at the first match."""
    if not header or len(header) > 4096:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(",")[:32]:
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


class Seen:
    """The message ids already delivered (bounded, thread-safe)."""

    def __init__(self, limit: int = REMEMBERED_IDS) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def first_time(self, message_id: str) -> bool:
        """Remember `message_id`; False when it was already there."""
        with self._lock:
            if message_id in self._ids:
                return False
            self._ids[message_id] = None
            if len(self._ids) > self._limit:
                self._ids.popitem(last=False)
            return True


def deliver(message: dict[str, Any]) -> None:
    """Hand the SMS to your gateway. Here: print it."""
    print(
        f"verified SMS to={message['to']} message_id={message['message_id']} "
        f"tenant_id={message.get('tenant_id')} text={message['text']!r}",
        flush=True,
    )


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], secret: bytes, tolerance: int) -> None:
        super().__init__(address, Handler)
        self.secret = secret
        self.tolerance = tolerance
        self.seen = Seen()


class Handler(BaseHTTPRequestHandler):
    server: Receiver
    server_version = "crm-webhook-receiver-example"
    sys_version = ""

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.answer(411, {"error": "Content-Length required"})
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.answer(413, {"error": "body too large"})
            return
        body = self.rfile.read(length)  # the raw bytes: verify before parsing
        if not verify_signature(
            self.server.secret,
            self.headers.get(SIGNATURE_HEADER),
            body,
            tolerance=self.server.tolerance,
        ):
            print(f"refused: bad or missing {SIGNATURE_HEADER} -> 401", file=sys.stderr, flush=True)
            self.answer(401, {"error": "invalid signature"})
            return
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not {"to", "text", "message_id"} <= message.keys():
            self.answer(400, {"error": "expected JSON with to, text and message_id"})
            return
        message_id = str(message["message_id"])
        if self.server.seen.first_time(message_id):
            deliver(message)
        else:
            print(f"duplicate message_id={message_id} ignored", flush=True)
        # 2xx tells crm the message is delivered; any other answer makes it try again later.
        self.answer(200, {"id": message_id})

    def answer(self, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # Keep stdout for messages; one access line per request on stderr.
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument(
        "--tolerance", type=int, default=TOLERANCE_SECONDS, help="seconds of clock skew allowed"
    )
    args = parser.parse_args(argv)
    secret = os.environ.get("CRM_SMS_WEBHOOK_SECRET", "")
    if not secret:
        print(
            "usage error: set CRM_SMS_WEBHOOK_SECRET (the secret crm signs with)", file=sys.stderr
        )
        return 2
    server = Receiver((args.host, args.port), secret.encode("utf-8"), args.tolerance)
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
