"""Sign-up under load (register, code from the SMS webhook, validate, refresh) against a bare program.

Usage (PostgreSQL on loopback):

    python bench/signup.py --duration 20 --customers 32

It creates its own database (`crm_bench_<random>`), migrates it and starts crm (one uvicorn
worker, uvloop + httptools, as `crm serve` runs it, with its delivery worker) in live mode with
the `webhook` SMS provider pointed at a sink inside this script. Each of `--customers` concurrent
customers then loops: register a new phone, wait for the SMS at the sink, validate the code and
refresh the tokens once. The same load then runs against a bare program on another port:
Starlette + asyncpg doing the same writes (contact, identity, HMAC'd code and outbox row in one
transaction; the SMS posted to the sink after commit; then lock the challenge, spend it, open a
session, sign an EdDSA token; then rotate the refresh token). It prints completed sign-ups per
second for each and the ratio crm / bare. Loops are bounded by `--duration` and `--max-signups`;
servers and the database are removed at the end, also on failure or Ctrl-C. Only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from processes import cpu_seconds, cpu_spent, free_port, postgres_cpu, start, stop, wait_for

from crm.events import webhooks
from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.settings import Settings
from crm.tenants import service as tenants
from crm.tenants.schemas import CallerKey

PG_ADMIN = os.environ.get("CRM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-" + "z" * 40
WEBHOOK_SECRET = "bench-webhook-" + "w" * 20

BARE_APP = textwrap.dedent(
    '''
    """Bare sign-up: the same writes as crm's with asyncpg, nothing else."""
    import asyncio, base64, hashlib, hmac, json, os, secrets, time, uuid
    from contextlib import asynccontextmanager
    import asyncpg, httpx, jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    KEY = Ed25519PrivateKey.generate()
    SECRET = b"bare-secret"
    SINK = os.environ["SINK"]
    state = {}

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS bare_contacts (id text PRIMARY KEY, first_name text, last_name text,
        created_at timestamptz NOT NULL);
    CREATE TABLE IF NOT EXISTS bare_identities (id text PRIMARY KEY,
        contact_id text NOT NULL REFERENCES bare_contacts(id), value text UNIQUE NOT NULL,
        verified boolean NOT NULL DEFAULT false);
    CREATE TABLE IF NOT EXISTS bare_challenges (id text PRIMARY KEY,
        identity_id text NOT NULL REFERENCES bare_identities(id), code_hmac text NOT NULL,
        attempts int NOT NULL DEFAULT 0, spent boolean NOT NULL DEFAULT false,
        expires_at timestamptz NOT NULL);
    CREATE TABLE IF NOT EXISTS bare_outbox (id text PRIMARY KEY, recipient text NOT NULL,
        body text NOT NULL, status text NOT NULL);
    CREATE TABLE IF NOT EXISTS bare_sessions (id text PRIMARY KEY,
        contact_id text NOT NULL REFERENCES bare_contacts(id), refresh_hash text UNIQUE NOT NULL,
        created_at timestamptz NOT NULL);
    """

    @asynccontextmanager
    async def lifespan(app):
        state["pool"] = await asyncpg.create_pool(os.environ["DSN"], min_size=4, max_size=10)
        async with state["pool"].acquire() as conn:
            await conn.execute(SCHEMA)
        state["http"] = httpx.AsyncClient(timeout=10)
        state["tasks"] = set()
        yield
        await state["http"].aclose()
        await state["pool"].close()

    def mac(challenge, code):
        return hmac.new(SECRET, f"{challenge}:{code}".encode(), hashlib.sha256).hexdigest()

    def tokens(contact_id, session_id):
        now = int(time.time())
        access = jwt.encode({"sub": contact_id, "sid": session_id, "iat": now, "exp": now + 900},
                            KEY, algorithm="EdDSA")
        return access, secrets.token_urlsafe(32)

    async def deliver(message_id, recipient, body):
        await state["http"].post(SINK, json={"to": recipient, "text": body, "message_id": message_id})
        async with state["pool"].acquire() as conn:
            await conn.execute("UPDATE bare_outbox SET status = 'sent' WHERE id = $1", message_id)

    async def register(request):
        body = json.loads(await request.body())
        phone = "+357" + body["identity"]["phone_number"]
        contact, identity, challenge, message = (str(uuid.uuid4()) for _ in range(4))
        code = f"{secrets.randbelow(10**6):06d}"
        text = f"{code} is your code"
        async with state["pool"].acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO bare_contacts VALUES ($1, $2, $3, now())",
                               contact, body["first_name"], body["last_name"])
            await conn.execute("INSERT INTO bare_identities (id, contact_id, value) VALUES ($1, $2, $3)",
                               identity, contact, phone)
            await conn.execute("INSERT INTO bare_challenges (id, identity_id, code_hmac, expires_at) "
                               "VALUES ($1, $2, $3, now() + interval '5 minutes')",
                               challenge, identity, mac(challenge, code))
            await conn.execute("INSERT INTO bare_outbox VALUES ($1, $2, $3, 'queued')",
                               message, phone, text)
        task = asyncio.create_task(deliver(message, phone, text))
        state["tasks"].add(task)
        task.add_done_callback(state["tasks"].discard)
        return JSONResponse({"auth_otp": challenge}, status_code=201)

    async def validate(request):
        body = json.loads(await request.body())
        async with state["pool"].acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT c.id, c.code_hmac, c.spent, c.attempts, i.id AS identity, i.contact_id "
                "FROM bare_challenges c JOIN bare_identities i ON i.id = c.identity_id "
                "WHERE c.id = $1 AND c.expires_at > now() FOR UPDATE OF c", body["auth_otp"])
            if row is None or row["spent"] or row["attempts"] >= 5:
                return JSONResponse({"code": "OTP_INVALID"}, status_code=400)
            if not hmac.compare_digest(row["code_hmac"], mac(row["id"], body["code"])):
                await conn.execute("UPDATE bare_challenges SET attempts = attempts + 1 WHERE id = $1", row["id"])
                return JSONResponse({"code": "OTP_INVALID"}, status_code=400)
            await conn.execute("UPDATE bare_challenges SET spent = true WHERE id = $1", row["id"])
            await conn.execute("UPDATE bare_identities SET verified = true WHERE id = $1", row["identity"])
            session = str(uuid.uuid4())
            access, refresh = tokens(row["contact_id"], session)
            await conn.execute("INSERT INTO bare_sessions VALUES ($1, $2, $3, now())", session,
                               row["contact_id"], hashlib.sha256(refresh.encode()).hexdigest())
        return JSONResponse({"access_token": access, "refresh_token": refresh,
                             "contact": {"id": row["contact_id"]}})

    async def refresh(request):
        presented = request.headers.get("authorization", "")
        async with state["pool"].acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, contact_id FROM bare_sessions WHERE refresh_hash = $1 FOR UPDATE",
                hashlib.sha256(presented.encode()).hexdigest())
            if row is None:
                return JSONResponse({"code": "TOKEN_INVALID"}, status_code=401)
            access, new_refresh = tokens(row["contact_id"], row["id"])
            await conn.execute("UPDATE bare_sessions SET refresh_hash = $1 WHERE id = $2",
                               hashlib.sha256(new_refresh.encode()).hexdigest(), row["id"])
        return JSONResponse({"access_token": access, "refresh_token": new_refresh})

    app = Starlette(routes=[
        Route("/self-service/v1/contacts/register", register, methods=["POST"]),
        Route("/self-service/v2/contacts/validate_otp", validate, methods=["POST"]),
        Route("/self-service/v1/contacts/refresh", refresh, methods=["POST"]),
        Route("/healthz", lambda request: JSONResponse({"status": "ok"})),
    ], lifespan=lifespan)
    '''
)


@dataclass
class Sink:
    """An HTTP sink for SMS webhooks: hands each text to whoever waits for that number."""

    waiting: dict[str, asyncio.Future[str]] = field(default_factory=dict)
    early: dict[str, str] = field(default_factory=dict)
    events: int = 0  # event deliveries received (with --webhook)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                payload = json.loads(await reader.readexactly(length)) if length else {}
                if "type" in payload:
                    self.events += 1
                else:
                    self.deliver(str(payload.get("to", "")), str(payload.get("text", "")))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client closed its connection, or the bench is over
        finally:
            writer.close()

    def deliver(self, to: str, text: str) -> None:
        future = self.waiting.pop(to, None)
        if future is not None and not future.done():
            future.set_result(text)
        else:
            self.early[to] = text

    async def code_for(self, phone: str, timeout: float) -> str:
        if phone in self.early:
            text = self.early.pop(phone)
        else:
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self.waiting[phone] = future
            text = await asyncio.wait_for(future, timeout)
        match = re.search(r"\b(\d{6})\b", text)
        if match is None:
            raise RuntimeError(f"no code in {text!r}")
        return match.group(1)


@dataclass
class Tally:
    done: int = 0
    failed: dict[str, int] = field(default_factory=dict)

    def fail(self, step: str) -> None:
        self.failed[step] = self.failed.get(step, 0) + 1


def serve(
    target: str, port: int, env: dict[str, str], cwd: str | None = None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    command += ["--log-level", "warning"]
    if target.startswith("crm."):
        command.append("--factory")
    return start(command, env, cwd)


async def create_tenant(db_url: str, events_url: str | None) -> str:
    """A tenant whose live public key the customers use (with a webhook endpoint taking every
    event when `events_url` is given); returns that key."""
    runtime = Runtime.build(Settings(database_url=db_url, secret_key=SECRET, _env_file=None))
    try:
        async with runtime.sessions() as session:
            tenant = await tenants.create_tenant(session, runtime.clock, "Bench")
            if events_url is not None:
                caller = CallerKey(None, tenant.id, tenant.name, None, "secret", "live")
                await webhooks.create(
                    session,
                    settings=runtime.settings,
                    server_secret=runtime.secret,
                    clock=runtime.clock,
                    caller=caller,
                    url=events_url,
                    events=["*"],
                    description="bench",
                )
            await session.commit()
    finally:
        await runtime.close()
    return str(tenant.keys["public_live"])


async def run_load(
    base_url: str,
    api_key: str,
    sink: Sink,
    numbers: Callable[[], str],
    args: argparse.Namespace,
) -> tuple[float, Tally]:
    """Sign-ups per second completed by `args.customers` concurrent customers, and the failures."""
    tally = Tally()
    headers = {"api_key": api_key}
    limits = httpx.Limits(max_connections=args.customers * 2)
    deadline = time.monotonic() + args.duration

    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def step(
            name: str, call: Awaitable[httpx.Response], ok: int
        ) -> httpx.Response | None:
            response = await call
            if response.status_code != ok:
                tally.fail(f"{name} {response.status_code}")
                return None
            return response

        async def customer() -> None:
            while time.monotonic() < deadline and tally.done < args.max_signups:
                national = numbers()
                body = {
                    "first_name": "Ahmed",
                    "last_name": "Samir",
                    "identity": {
                        "provider": "PHONE",
                        "phone_number": national,
                        "country_code": "CYP",
                    },
                    "service_acceptance": "true",
                }
                path = "/self-service/v1/contacts/register"
                registered = await step(
                    "register", client.post(path, json=body, headers=headers), 201
                )
                if registered is None:
                    continue
                try:
                    code = await sink.code_for("+357" + national, timeout=30)
                except TimeoutError:
                    tally.fail("sms timeout")
                    continue
                check = {"auth_otp": registered.json()["auth_otp"], "code": code}
                path = "/self-service/v2/contacts/validate_otp"
                signed = await step("validate", client.post(path, json=check, headers=headers), 200)
                if signed is None:
                    continue
                auth = {"Authorization": signed.json()["refresh_token"]}
                path = "/self-service/v1/contacts/refresh"
                if await step("refresh", client.post(path, headers=auth), 200) is not None:
                    tally.done += 1

        started = time.monotonic()
        await asyncio.gather(*(customer() for _ in range(args.customers)))
        elapsed = time.monotonic() - started
    return tally.done / elapsed, tally


def number_source(prefix: str) -> Callable[[], str]:
    """Distinct valid Cypriot mobile numbers (99xxxxxx / 96xxxxxx), spread over the range."""
    counter = iter(range(1, 999_999))

    def take() -> str:
        # A stride spreads the numbers across leading digits, as real customers are.
        return f"{prefix}{(next(counter) * 7919) % 1_000_000:06d}"

    return take


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds per target (max 120)")
    parser.add_argument("--customers", type=int, default=32, help="concurrent customers")
    parser.add_argument("--max-signups", type=int, default=20_000, help="cap per target")
    parser.add_argument("--log-level", default="WARNING", help="crm's CRM_LOG_LEVEL")
    parser.add_argument(
        "--profile", metavar="FILE", help="record py-spy samples of crm's load (raw) into FILE"
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="give the tenant a webhook endpoint taking every event (at the sink)",
    )
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="run crm on a SQLite file (the bare program stays on PostgreSQL: its rate is the "
        "reference, and the SQLite target is an absolute rate)",
    )
    args = parser.parse_args()
    args.duration = max(1, min(args.duration, 120))

    name = f"crm_bench_{secrets.token_hex(5)}"
    db_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    processes: list[subprocess.Popen[bytes]] = []

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def both(
        crm_port: int, bare_port: int, sink_port: int, api_key: str
    ) -> dict[str, object]:
        sink = Sink()
        server = await asyncio.start_server(sink.handle, "127.0.0.1", sink_port)
        try:
            crm_rate, crm_tally, crm_cpu, crm_opened = await measured(
                processes[0].pid,
                f"http://127.0.0.1:{crm_port}",
                api_key,
                sink,
                "99",
                on_postgres=not args.sqlite,
                deferred_in=crm_db_url,
            )
            bare_rate, bare_tally, bare_cpu, bare_opened = await measured(
                processes[1].pid,
                f"http://127.0.0.1:{bare_port}",
                api_key,
                sink,
                "96",
                on_postgres=True,
            )
        finally:
            server.close()
        return {
            "customers": args.customers,
            "duration_s": args.duration,
            "crm_signups_per_s": round(crm_rate, 1),
            "crm_failed": crm_tally.failed,
            "bare_signups_per_s": round(bare_rate, 1),
            "bare_failed": bare_tally.failed,
            "ratio": round(crm_rate / bare_rate, 3) if bare_rate else None,
            "webhook": args.webhook,
            "crm_database": "sqlite" if args.sqlite else "postgresql",
            "events_delivered": sink.events,
            # CPU milliseconds per completed sign-up: the server process, and PostgreSQL.
            "crm_cpu_ms": crm_cpu,
            "bare_cpu_ms": bare_cpu,
            "cpu_ratio": round(bare_cpu["server"] / crm_cpu["server"], 3)
            if crm_cpu["server"]
            else None,
            "crm_connections_opened": crm_opened,
            # Seconds crm took after the load to finish its deferred work (counted in its rate).
            "crm_drain_s": drains[0] if drains else None,
            "bare_connections_opened": bare_opened,
        }

    async def sessions_opened() -> int:
        """Connections opened to the benchmark's database so far (PostgreSQL 14 and later)."""
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            found = await conn.fetchval(
                "SELECT sessions FROM pg_stat_database WHERE datname = $1", name
            )
        finally:
            await conn.close()
        return int(found or 0)

    drains: list[float] = []

    async def pending(database_url: str) -> int:
        """Events crm has not fanned out and messages it has not sent yet."""
        query = (
            "SELECT (SELECT count(*) FROM events WHERE fanout_pending)"
            " + (SELECT count(*) FROM outbox_messages WHERE status IN ('queued', 'sending'))"
        )
        if database_url.startswith("sqlite"):
            path = database_url.split(":///", 1)[1]

            def read() -> int:
                with sqlite3.connect(path, timeout=30) as connection:
                    return int(connection.execute(query).fetchone()[0])

            return await asyncio.to_thread(read)
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval(query))
        finally:
            await conn.close()

    async def drained(database_url: str) -> float:
        """Seconds until crm has done the deferred work of the sign-ups it completed (fan-out
        of their events, their messages): work left behind would run during the bare
        program's load and slow it, flattering the ratio. Bounded: at most 60 s."""
        started = time.monotonic()
        while time.monotonic() - started < 60 and await pending(database_url):
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def measured(
        pid: int,
        base_url: str,
        api_key: str,
        sink: Sink,
        prefix: str,
        on_postgres: bool,
        deferred_in: str | None = None,
    ) -> tuple[float, Tally, dict[str, float], int | None]:
        """One load, with the CPU the server and PostgreSQL spent per completed sign-up, and
        the connections the server opened to the database meanwhile (a pool that closes and
        reopens connections under load pays a connection set-up and a statement preparation
        each time)."""
        server_before, db_before = cpu_seconds(pid), postgres_cpu(name)
        opened_before = await sessions_opened()
        rate, tally = await run_load(base_url, api_key, sink, number_source(prefix), args)
        if deferred_in is not None and tally.done:
            # The time to finish the deferred work counts as the load's: the rate is what the
            # server sustains with nothing piling up.
            drain = await drained(deferred_in)
            drains.append(round(drain, 2))
            rate = tally.done / (tally.done / rate + drain)
        server = cpu_seconds(pid) - server_before
        db = cpu_spent(db_before, postgres_cpu(name))
        # Less this one's own reading connection; none to count for crm on SQLite.
        opened = await sessions_opened() - opened_before - 1 if on_postgres else None
        per = 1000 / tally.done if tally.done else 0.0
        return rate, tally, {"server": round(server * per, 2), "db": round(db * per, 2)}, opened

    crm_db_url = db_url
    if args.sqlite:
        crm_db_url = f"sqlite:///{Path(tempfile.mkdtemp(), 'crm.db')}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(Settings(database_url=crm_db_url, secret_key=SECRET, _env_file=None))
        crm_port, bare_port, sink_port = free_port(), free_port(), free_port()
        sink_url = f"http://127.0.0.1:{sink_port}/sms"
        events_url = f"http://127.0.0.1:{sink_port}/events" if args.webhook else None
        api_key = asyncio.run(create_tenant(crm_db_url, events_url))
        env = {
            **os.environ,
            "CRM_DATABASE_URL": crm_db_url,
            "CRM_SECRET_KEY": SECRET,
            "CRM_PUBLIC_URL": f"http://127.0.0.1:{crm_port}",
            "CRM_LOG_LEVEL": args.log_level,
            "CRM_SMS_PROVIDER": "webhook",
            "CRM_SMS_WEBHOOK_URL": sink_url,
            "CRM_SMS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CRM_ALLOW_PRIVATE_PROVIDER_URLS": "true",
            # One load generator on one address stands for many customers here.
            # The deployment settings that lift the per-client limits and the SMS defences
            # (number-range and conversion checks, the daily cap) for this load.
            "CRM_REGISTER_LIMIT_PER_CLIENT_HOUR": "100000",
            "CRM_OTP_VALIDATE_LIMIT_PER_CLIENT_MINUTE": "100000",
            "CRM_SIGNIN_LIMIT_PER_CLIENT_MINUTE": "100000",
            "CRM_OTP_REQUEST_LIMIT_PER_CLIENT_MINUTE": "100000",
            "CRM_SMS_RANGE_MODE": "off",
            "CRM_SMS_CONVERSION_MODE": "off",
            "CRM_SMS_DAILY_LIMIT": "10000000",
        }
        processes.append(serve("crm.app:app_from_env", crm_port, env))
        folder = tempfile.mkdtemp()
        Path(folder, "bare_app.py").write_text(BARE_APP)
        bare_env = {**os.environ, "DSN": db_url, "SINK": sink_url}
        processes.append(serve("bare_app:app", bare_port, bare_env, cwd=folder))
        wait_for(f"http://127.0.0.1:{crm_port}/healthz")
        wait_for(f"http://127.0.0.1:{bare_port}/healthz")
        if args.profile:
            # crm is loaded first, for args.duration seconds: py-spy samples that stretch.
            spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking"]
            spy += ["--pid", str(processes[0].pid), "--duration", str(args.duration)]
            spy += ["--rate", "200", "--format", "raw", "-o", args.profile]
            processes.append(
                subprocess.Popen(
                    spy,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        result = asyncio.run(both(crm_port, bare_port, sink_port, api_key))
        print(json.dumps(result))
        print(
            f"crm {result['crm_signups_per_s']} sign-ups/s, bare {result['bare_signups_per_s']} "
            f"sign-ups/s, ratio {result['ratio']}; server CPU per sign-up crm "
            f"{result['crm_cpu_ms']['server']} ms, bare {result['bare_cpu_ms']['server']} ms "
            f"(ratio {result['cpu_ratio']}); PostgreSQL {result['crm_cpu_ms']['db']} ms, "
            f"{result['bare_cpu_ms']['db']} ms; connections opened during the load: crm "
            f"{result['crm_connections_opened']}, bare {result['bare_connections_opened']}"
        )
    finally:
        for process in processes:
            stop(process)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
