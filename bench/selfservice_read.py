"""The signed-in read (GET /contacts/{id} with a JWT) against a bare Starlette+asyncpg baseline.

Usage (PostgreSQL on loopback):

    python bench/selfservice_read.py --duration 10 --connections 32

It creates its own database (`crm_bench_<random>`), migrates it, starts the crm server (one
uvicorn worker, uvloop + httptools, as `crm serve` runs it) on a loopback port, registers one
contact through the API (code read from the test outbox) and signs it in. It then starts a
baseline app on another loopback port: Starlette + asyncpg, one worker, that verifies the same
JWT with the same public key (PyJWT, EdDSA) and runs one SELECT of the contact. Both are loaded
in turn, in the same run, by `wrk` (or, without wrk, an httpx client in a separate process),
bounded in time and in requests, and the script prints requests/second and the ratio
crm / baseline. Servers and database are removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import asyncpg
import httpx
from processes import free_port, start, stop, wait_for

from crm.messaging.outbox import open_body
from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.settings import Settings
from crm.tenants import service as tenants

PG_ADMIN = os.environ.get("CRM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-" + "y" * 40

BASELINE_APP = textwrap.dedent(
    '''
    """Baseline: JWT verify (EdDSA, PyJWT) + one asyncpg SELECT, nothing else."""
    import json, os
    import asyncpg, jwt
    from jwt.algorithms import OKPAlgorithm
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    KEYS = {k["kid"]: OKPAlgorithm.from_jwk(json.dumps(k)) for k in json.loads(os.environ["JWKS"])["keys"]}
    ISSUER = os.environ["ISSUER"]
    from contextlib import asynccontextmanager
    pool = None

    @asynccontextmanager
    async def lifespan(app):
        global pool
        pool = await asyncpg.create_pool(os.environ["DSN"], min_size=4, max_size=10)
        yield
        await pool.close()

    async def contact(request):
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else auth
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, KEYS[header["kid"]], algorithms=["EdDSA"], issuer=ISSUER,
                                options={"verify_aud": False})
        except Exception:
            return JSONResponse({"code": "TOKEN_INVALID"}, status_code=401)
        row = await pool.fetchrow(
            "SELECT id, code, contact_type, first_name, last_name, email_address "
            "FROM contacts WHERE id = $1 AND tenant_id = $2", claims["sub"], claims["aud"])
        if row is None or row["id"] != request.path_params["id"]:
            return JSONResponse({"code": "NOT_FOUND"}, status_code=404)
        return JSONResponse({k: v for k, v in dict(row).items() if v is not None})

    app = Starlette(routes=[Route("/contacts/{id}", contact)], lifespan=lifespan)
    '''
)


UVICORN_FLAGS = ["--host", "127.0.0.1", "--workers", "1", "--loop", "uvloop", "--http", "httptools"]
UVICORN_FLAGS += ["--no-access-log", "--log-level", "warning"]

# The framework floor for /healthz: a bare FastAPI route returning the same JSON, one worker.
BARE_HEALTHZ_APP = textwrap.dedent(
    """
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}
    """
)


async def prepare(db_url: str, base_url: str) -> tuple[str, str, str]:
    """Create a tenant, register and sign in one contact; return (contact id, token, jwks)."""
    runtime = Runtime.build(Settings(database_url=db_url, secret_key=SECRET, _env_file=None))
    try:
        async with runtime.sessions() as session:
            tenant = await tenants.create_tenant(session, runtime.clock, "Bench")
            await session.commit()
    finally:
        await runtime.close()
    key = {"api_key": tenant.keys["public_test"]}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        body = {
            "first_name": "Ahmed",
            "last_name": "Samir",
            "identity": {"provider": "PHONE", "phone_number": "99478231", "country_code": "CYP"},
            "service_acceptance": "true",
        }
        sent = (
            await client.post("/self-service/v1/contacts/register", json=body, headers=key)
        ).json()
        conn = await asyncpg.connect(db_url)
        try:
            text = None
            for _ in range(50):  # the answer can arrive a moment before the commit is visible
                text = await conn.fetchval(
                    "SELECT body_text FROM outbox_messages WHERE purpose = 'OTP' "
                    "ORDER BY created_at DESC LIMIT 1"
                )
                if text is not None:
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        if text is None:
            raise RuntimeError(f"no OTP in the outbox; register answered {sent}")
        # Message bodies are sealed at rest with the secret key.
        match = re.search(r"\b(\d{6})\b", open_body(SECRET, text))
        assert match is not None
        tokens = (
            await client.post(
                "/self-service/v2/contacts/validate_otp",
                json={"auth_otp": sent["auth_otp"], "code": match.group(1)},
                headers=key,
            )
        ).json()
        jwks = (await client.get("/.well-known/jwks.json")).text
    return tokens["contact"]["id"], tokens["access_token"], jwks


HTTPX_CLIENT = textwrap.dedent(
    """
    import asyncio, sys, time, httpx
    url, token, conns, duration, max_requests = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    async def main():
        done = errors = 0
        deadline = time.monotonic() + duration
        limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
        async with httpx.AsyncClient(limits=limits, headers={"Authorization": "Bearer " + token}) as c:
            async def worker():
                nonlocal done, errors
                while time.monotonic() < deadline and done < max_requests:
                    r = await c.get(url)
                    done += 1
                    errors += r.status_code != 200
            start = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(conns)))
            print(f"{done / (time.monotonic() - start):.1f} {errors}")
    asyncio.run(main())
    """
)


def load(
    url: str, token: str, args: argparse.Namespace, pid: int | None = None, label: str = ""
) -> tuple[float, int]:
    """Requests per second and non-2xx count, from wrk or the httpx fallback (separate process).

    With `--profile DIR` and a `pid`, py-spy samples that process for the whole load."""
    spy = None
    if args.profile and pid is not None:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(args.duration),
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "-o",
                f"{args.profile}/{label}.txt",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        return _load(url, token, args)
    finally:
        if spy is not None:
            spy.wait(timeout=args.duration + 30)


def _load(url: str, token: str, args: argparse.Namespace) -> tuple[float, int]:
    if shutil.which("wrk") and not args.httpx:
        script = Path(tempfile.mkdtemp()) / "auth.lua"
        script.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        result = subprocess.run(
            [
                "wrk",
                "-t",
                str(args.threads),
                "-c",
                str(args.connections),
                "-d",
                f"{args.duration}s",
                "--timeout",
                "5s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=args.duration + 30,
            check=True,
        )
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
        return rps, int(bad.group(1)) if bad else 0
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            HTTPX_CLIENT,
            url,
            token,
            str(args.connections),
            str(args.duration),
            str(args.max_requests),
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
        check=True,
    )
    rps_text, errors = result.stdout.split()
    return float(rps_text), int(errors)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per target (max 120)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--app-factory", default="crm.app:app_from_env", help="uvicorn factory of the crm app"
    )
    parser.add_argument(
        "--no-verify-cache",
        action="store_true",
        help="make crm verify the JWT signature on every call, as the baseline does",
    )
    parser.add_argument("--max-requests", type=int, default=200_000, help="httpx fallback cap")
    parser.add_argument(
        "--probe", action="store_true", help="also load /healthz and /readyz (framework floor)"
    )
    parser.add_argument(
        "--httpx", action="store_true", help="use the httpx client even if wrk exists"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record a py-spy flame graph of the crm server during each crm load into DIR",
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="crm's CRM_LOG_LEVEL (INFO logs every request)"
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

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(Settings(database_url=db_url, secret_key=SECRET, _env_file=None))
        crm_port, base_port = free_port(), free_port()
        env = {
            **os.environ,
            "CRM_DATABASE_URL": db_url,
            "CRM_SECRET_KEY": SECRET,
            "CRM_PUBLIC_URL": f"http://127.0.0.1:{crm_port}",
            "CRM_LOG_LEVEL": args.log_level,
            "CRM_WORKER_ENABLED": "false",
            "CRM_ACCESS_TOKEN_VERIFY_CACHE": "0" if args.no_verify_cache else "10000",
        }
        processes.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    args.app_factory,
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(crm_port),
                    "--workers",
                    "1",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env,
            )
        )
        wait_for(f"http://127.0.0.1:{crm_port}/healthz")
        contact_id, token, jwks = asyncio.run(prepare(db_url, f"http://127.0.0.1:{crm_port}"))

        folder = tempfile.mkdtemp()
        Path(folder, "baseline_app.py").write_text(BASELINE_APP)
        base_env = {
            **os.environ,
            "DSN": db_url,
            "JWKS": jwks,
            "ISSUER": f"http://127.0.0.1:{crm_port}",
        }
        processes.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "baseline_app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(base_port),
                    "--workers",
                    "1",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                base_env,
                cwd=folder,
            )
        )
        wait_for(f"http://127.0.0.1:{base_port}/contacts/x")

        crm_url = f"http://127.0.0.1:{crm_port}/self-service/v2/contacts/{contact_id}"
        base_url = f"http://127.0.0.1:{base_port}/contacts/{contact_id}"
        for url in (crm_url, base_url):  # warm-up: caches, pools, JIT-free but page cache
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as c:
                for _ in range(200):
                    assert c.get(url).status_code == 200
        crm_pid = processes[0].pid
        probe: dict[str, object] = {}
        if args.probe:
            bare_port = free_port()
            Path(folder, "bare_healthz_app.py").write_text(BARE_HEALTHZ_APP)
            processes.append(
                start(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "bare_healthz_app:app",
                        *UVICORN_FLAGS,
                        "--port",
                        str(bare_port),
                    ],
                    dict(os.environ),
                    cwd=folder,
                )
            )
            wait_for(f"http://127.0.0.1:{bare_port}/healthz")
            healthz_rps, healthz_bad = load(
                f"http://127.0.0.1:{crm_port}/healthz", token, args, crm_pid, "healthz"
            )
            bare_healthz_rps, _ = load(f"http://127.0.0.1:{bare_port}/healthz", token, args)
            readyz_rps, _ = load(f"http://127.0.0.1:{crm_port}/readyz", token, args)
            probe = {
                "crm_healthz_rps": round(healthz_rps, 1),
                "crm_healthz_non_2xx": healthz_bad,
                "bare_fastapi_healthz_rps": round(bare_healthz_rps, 1),
                "healthz_ratio": round(healthz_rps / bare_healthz_rps, 3),
                "crm_readyz_rps": round(readyz_rps, 1),
            }
        crm_rps, crm_bad = load(crm_url, token, args, crm_pid, "read")
        base_rps, base_bad = load(base_url, token, args)
        tool = "wrk" if shutil.which("wrk") and not args.httpx else "httpx"
        print(
            json.dumps(
                {
                    "tool": tool,
                    "duration_s": args.duration,
                    "connections": args.connections,
                    "crm_rps": round(crm_rps, 1),
                    "crm_non_2xx": crm_bad,
                    "baseline_rps": round(base_rps, 1),
                    "baseline_non_2xx": base_bad,
                    "ratio": round(crm_rps / base_rps, 3) if base_rps else None,
                    **probe,
                }
            )
        )
        if probe:
            print(
                f"/healthz: crm {probe['crm_healthz_rps']:.0f} req/s, bare FastAPI "
                f"{probe['bare_fastapi_healthz_rps']:.0f} req/s, ratio {probe['healthz_ratio']:.2f}"
            )
        print(
            f"crm {crm_rps:.0f} req/s, baseline {base_rps:.0f} req/s, ratio {crm_rps / base_rps:.2f}"
        )
    finally:
        for process in processes:
            stop(process)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
