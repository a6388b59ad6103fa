"""Example: a receiver of crm's events (webhooks) that checks the signature before trusting one.

crm POSTs each event as compact JSON `{"id", "type", "created", "mode", "data": {...}}` with

    X-CRM-Event-Id: <the event id>
    X-CRM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed by the secret>

(two v1= entries for a day after the secret was rotated). This receiver recomputes the HMAC over
the raw bytes, compares in constant time, refuses timestamps more than 5 minutes away (replays),
and ignores an event id it has already seen: delivery is at-least-once and unordered. A verified
event is printed to stdout and answered 200; a bad or missing signature is answered 401 (crm
then retries, for up to 3 days). Replace `handle()` with your own work. Standard library only.

    CRM_WEBHOOK_SECRET=whsec_... python examples/event_receiver.py --port 8026
    # then: crm webhooks create --tenant T --url http://127.0.0.1:8026/events  (prints the secret)
    # or, while developing: crm events listen --tenant T --forward-to http://127.0.0.1:8026/events
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
EVENT_ID_HEADER = "X-CRM-Event-Id"
TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 256 * 1024
REMEMBERED_IDS = 100_000  # event ids kept for deduplication (oldest forgotten first)


def verify_signature(
    secret: bytes, header: str | None, body: bytes, *, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """True when one v1 of `header` is the HMAC-SHA256 of `<t>.<body>` under `secret` and t is
    within `tolerance` seconds of now (either way). Every candidate is compared in constant
    time, and the loop does not stop at the first match."""
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
    """The event ids already handled (bounded, thread-safe)."""

    def __init__(self, limit: int = REMEMBERED_IDS) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._ids:
                return False
            self._ids[event_id] = None
            if len(self._ids) > self._limit:
                self._ids.popitem(last=False)
            return True


def handle(event: dict[str, Any]) -> None:
    """Your work for one event. Here: print it (ids only; events carry no secrets anyway)."""
    contact = (event.get("data") or {}).get("contact") or {}
    print(
        f"event {event['type']} id={event['id']} mode={event.get('mode')} "
        f"contact={contact.get('id')}",
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
    server_version = "crm-event-receiver-example"
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
            print(f"refused: bad, stale or missing {SIGNATURE_HEADER} -> 401", flush=True)
            self.answer(401, {"error": "invalid signature"})
            return
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not {"id", "type"} <= event.keys():
            self.answer(400, {"error": "expected an event with id and type"})
            return
        event_id = str(event["id"])
        if self.server.seen.first_time(event_id):
            handle(event)
        else:
            print(f"duplicate event id={event_id} ignored", flush=True)
        self.answer(200, {"received": event_id})

    def answer(self, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8026)
    parser.add_argument(
        "--tolerance", type=int, default=TOLERANCE_SECONDS, help="seconds of clock skew allowed"
    )
    args = parser.parse_args(argv)
    secret = os.environ.get("CRM_WEBHOOK_SECRET", "")
    if not secret:
        print(
            "usage error: set CRM_WEBHOOK_SECRET (the endpoint's signing secret)", file=sys.stderr
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
