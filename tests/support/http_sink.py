"""A loopback HTTP server for tests: records every request and answers as the test scripts it.

Usable as ``async with HttpSink() as sink`` inside a test, or ``sink.start()`` / ``sink.stop()``
(or ``with HttpSink() as sink``) when another process, such as the real server under test, is
the one sending. The server always runs in its own thread, so a slow scripted answer never
blocks the test's event loop, and it only ever binds a loopback address.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_BODY_BYTES = 10 * 1024 * 1024
# Every wait is bounded: a test that never receives its request fails instead of hanging.
DEFAULT_WAIT_SECONDS = 5.0
_MAX_CHUNKS = 100_000


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str  # with the query string, as sent
    headers: Mapping[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    received_at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def route(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (last value wins for repeated keys)."""
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    # Seconds to wait before answering; cut short when the sink stops.
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, dict | list):
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode("utf-8"), headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode("utf-8"), headers
        return self.body, headers


Responder = Callable[[RecordedRequest], ScriptedResponse | None]


class HttpSink:
    """Records requests; answers from the script queue first, then `responder`, then `default`."""

    def __init__(
        self,
        *,
        default: ScriptedResponse | None = None,
        responder: Responder | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        address = ipaddress.ip_address(host)
        if not address.is_loopback or address.version != 4:
            raise ValueError("the sink only binds an IPv4 loopback address")
        self.host = host
        self.default = default or ScriptedResponse(200, {})
        self.responder = responder
        self._requests: list[RecordedRequest] = []
        self._script: collections.deque[ScriptedResponse] = collections.deque()
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> HttpSink:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, 0), _Handler)
        server.sink = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        with self._lock:
            self._received.notify_all()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> HttpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> HttpSink:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # shutdown() waits up to one poll interval; keep that off the event loop.
        await asyncio.to_thread(self.stop)

    # -- addressing ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sink is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"

    # -- scripting -----------------------------------------------------------------------

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue answers for the next requests, in order; afterwards responder/default apply."""
        with self._lock:
            self._script.extend(responses)

    def script_statuses(
        self, statuses: Iterable[int], *, body: Any = b"", delay: float = 0.0
    ) -> None:
        self.script(*(ScriptedResponse(status, body, delay=delay) for status in statuses))

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._script.clear()

    # -- observing -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests_sync(
        self, count: int = 1, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._received:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    raise TimeoutError(
                        f"expected {count} request(s), got {len(self._requests)} in {timeout}s"
                    )
                self._received.wait(remaining)
            return list(self._requests)

    async def wait_for_requests(
        self, count: int = 1, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> list[RecordedRequest]:
        return await asyncio.to_thread(self.wait_for_requests_sync, count, timeout)

    # -- called from handler threads ---------------------------------------------------

    def _record(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            self._requests.append(request)
            self._received.notify_all()
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted
        if self.responder is not None:
            answer = self.responder(request)
            if answer is not None:
                return answer
        return self.default

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    # Handler threads may be sleeping on a scripted delay; they must not keep the process alive.
    daemon_threads = True
    sink: HttpSink

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is what some tests are about: not worth a traceback.
        return


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    # HTTP/1.0: one request per connection, so a closed or timed-out client never leaves a
    # half-read keep-alive connection behind.
    protocol_version = "HTTP/1.0"
    server_version = "crm-test-sink/1"

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        return  # tests read the recorded requests; stderr noise helps nobody

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            for _ in range(_MAX_CHUNKS):
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        sink = self.server.sink
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(413)
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = RecordedRequest(self.command, self.path, headers, body, time.time())
        answer = sink._record(request)
        sink._sleep(answer.delay)
        payload, answer_headers = answer.encoded()
        try:
            self.send_response(answer.status)
            for name, value in answer_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nobody listens on right now (for "connection refused" tests and servers
    that cannot bind port 0 themselves), kept from every other caller until the test binds it.

    Binding port 0 and closing would leave a window in which another test worker (or another
    test run on the machine) binds port 0 and is handed the same port. So the port is parked in
    TIME_WAIT instead: a connection to it is accepted and closed from the accepting side. For
    about a minute the kernel then hands it to no bind(0) and no outgoing connection, while a
    server binding it by number with SO_REUSEADDR (uvicorn, asyncio's create_server, aiosmtpd,
    http.server) gets it at once, and a client connecting to it meanwhile is refused.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        address = listener.getsockname()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(5.0)
            client.connect(address)
            accepted, _ = listener.accept()
            # Closed first, the accepted end is the one left in TIME_WAIT on this port.
            accepted.close()
        return int(address[1])
