"""Contact import at scale: `crm contacts import` beside a bare parse-validate-COPY program.

Usage (PostgreSQL on loopback, trust or password in the URL):

    python bench/import.py --rows 100000
    python bench/import.py --rows 1000000
    python bench/import.py --rows 100000 --sqlite     # also time crm into a SQLite file
    python bench/import.py --rows 100000 --sqlite --password-hashes   # with bcrypt hashes

It writes a CSV of N generated contacts (id, code, names, an email and a mobile phone each),
creates its own database (`crm_bench_<random>`), migrates it and creates a tenant, then in the
same run times (1) a bare program that parses the same file, validates each email and phone with
the same libraries crm uses (email-validator, phonenumbers) and COPYs the rows into a plain table,
and (2) `crm contacts import` as an operator runs it (a subprocess). It prints rows/s of each and
their ratio, and the CPU each used per row: user+sys of the program (crm's subprocess and its
validator processes) and of its PostgreSQL backends (read from /proc while it runs, so the
database must run on this machine to be counted). On a machine whose cores are all busy, CPU per
row is what bounds the rate. The database is dropped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import random
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.settings import Settings
from crm.tenants import service as tenants

_SYLLABLES = ["an", "be", "ca", "do", "el", "fi", "ga", "ho", "is", "ja", "ko", "lu", "ma", "ni"]
HEADER = ["id", "code", "first_name", "last_name", "email_address", "phone", "phone_country_code"]
# --password-hashes: this many distinct bcrypt hashes (cost 4) shared by the rows (import does not
# verify them; sign-in does), and every BAD_HASH_EVERY-th row gets a hash crm must refuse.
_HASHES = 50
BAD_HASH_EVERY = 10_000
_BARE_BATCH = 10_000
# A run that takes longer than this is stopped (every step is bounded in time).
_TIMEOUT = 3600


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()


def bench_password(n: int) -> str:
    return f"bench password {n % _HASHES}"


def write_csv(path: Path, rows: int, *, hashes: bool = False) -> None:
    rng = random.Random(1)
    known: list[str] = []
    if hashes:
        import bcrypt

        known = [
            bcrypt.hashpw(bench_password(k).encode(), bcrypt.gensalt(4)).decode()
            for k in range(_HASHES)
        ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*HEADER, "password_hash"] if hashes else HEADER)
        for n in range(rows):
            first, last = _name(rng), _name(rng)
            extra = []
            if hashes:
                bad = n % BAD_HASH_EVERY == BAD_HASH_EVERY - 1
                extra = ["5f4dcc3b5aa765d61d8327deb882cf99" if bad else known[n % _HASHES]]
            writer.writerow(
                [
                    f"b-{n}",
                    f"B{n}",
                    first,
                    last,
                    f"{first.lower()}.{last.lower()}{n}@example.com",
                    f"99{n % 1_000_000:06d}",
                    "CYP",
                    *extra,
                ]
            )


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# How often the backends of the measured database are sampled (a backend's CPU after its last
# sample is not counted: the pools keep their connections until the program ends).
_SAMPLE_SECONDS = 0.05


def backend_cpu(pid: int) -> float | None:
    """User+sys CPU seconds of a local process, or None when it is gone (or not local)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / _TICK


class Backends:
    """The CPU used by the PostgreSQL backends of one database while a program runs."""

    def __init__(self, admin_url: str, database: str) -> None:
        self._admin_url = admin_url
        self._database = database
        self.seen: dict[int, float] = {}
        self._start: dict[int, float] = {}

    async def _sample(self, conn: asyncpg.Connection) -> None:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self._database,
        )
        for (pid,) in pids:
            cpu = backend_cpu(pid)
            if cpu is not None:
                self.seen[pid] = max(cpu, self.seen.get(pid, 0.0))

    async def watch(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._admin_url)
        try:
            await self._sample(conn)
            # Backends already open (this script's own) count from here on.
            self._start = dict(self.seen)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _SAMPLE_SECONDS)
                await self._sample(conn)
        finally:
            await conn.close()

    def seconds(self) -> float:
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self.seen.items())


def _cpu_line(what: str, program: float, backends: float, rows: int) -> str:
    per_row = 1e6 / max(rows, 1)
    return (
        f"{what:<26}CPU per row: program {program * per_row:6.1f} us + database "
        f"{backends * per_row:6.1f} us = {(program + backends) * per_row:6.1f} us"
    )


async def bare(dsn: str, path: Path) -> tuple[int, float]:
    """Parse, validate each email and phone, COPY: the floor an importer cannot beat by much.

    Returns the rows copied and the CPU seconds its backend used.
    """
    conn = await asyncpg.connect(dsn)
    backend = conn.get_server_pid()
    started = backend_cpu(backend) or 0.0
    try:
        await conn.execute(
            "CREATE TABLE bare_contacts (id text, code text, first_name text, last_name text,"
            " email text, phone text)"
        )
        count = 0
        batch: list[tuple[str, ...]] = []
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            for cid, code, first, last, email, phone, country, *_ in reader:
                try:
                    email = validate_email(email, check_deliverability=False).normalized
                except EmailNotValidError:
                    continue
                region = "CY" if country == "CYP" else None
                parsed = phonenumbers.parse(phone, region)
                if not phonenumbers.is_valid_number(parsed):
                    continue
                e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                batch.append((cid, code, first, last, email, e164))
                if len(batch) >= _BARE_BATCH:
                    await conn.copy_records_to_table("bare_contacts", records=batch)
                    count += len(batch)
                    batch.clear()
            if batch:
                await conn.copy_records_to_table("bare_contacts", records=batch)
                count += len(batch)
        return count, (backend_cpu(backend) or started) - started
    finally:
        await conn.close()


def _where(tenant_id: str) -> list[str]:
    return ["--tenant", tenant_id, "--mode", "live"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parents() -> dict[int, int]:
    """Every local process's parent."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
    return parents


class Descendants:
    """The CPU of a program's descendants, sampled while it runs.

    Its worker processes are forked by multiprocessing's fork server, which the program does not
    wait for, so their CPU never reaches the program's own rusage of its children. The known
    descendants are read every sample; the process table is searched for new ones once a second
    (a search of /proc costs this script more than reading a few stat files).
    """

    _SEARCH_SECONDS = 1.0

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._searched = 0.0
        self.seen: dict[int, float] = {}

    def _search(self) -> None:
        parents = _parents()
        for pid in parents:
            ancestor = parents.get(pid)
            while ancestor is not None and ancestor not in (self._pid, 0, 1):
                ancestor = parents.get(ancestor)
            if ancestor == self._pid:
                self.seen.setdefault(pid, 0.0)

    def sample(self) -> None:
        now = time.perf_counter()
        if now - self._searched >= self._SEARCH_SECONDS:
            self._search()
            self._searched = now
        for pid, before in self.seen.items():
            cpu = backend_cpu(pid)
            if cpu is not None:
                self.seen[pid] = max(cpu, before)

    def seconds(self) -> float:
        return sum(self.seen.values())


def crm_import(
    url: str,
    tenant_id: str,
    path: Path,
    cwd: Path,
    profile: Path | None = None,
    expect_rejected: int = 0,
) -> tuple[float, float, str]:
    """Run `crm contacts import`: its wall time, its CPU (with its validators) and its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATABASE_URL"] = url
    env["CRM_SECRET_KEY"] = "bench-" + "x" * 40
    command = [sys.executable, "-m", "crm", "contacts", "import", str(path), *_where(tenant_id)]
    if profile is not None:
        # py-spy's raw format (one stack per line with its count); --idle keeps the waits on the
        # database, which are what an import spends its time on when it is not validating.
        spy = Path(sys.executable).with_name("py-spy")
        command = [
            str(spy),
            "record",
            "--idle",
            "--subprocesses",  # the validator processes too
            "-r",
            "100",
            "-f",
            "raw",
            "-o",
            str(profile),
            "--",
            *command,
        ]
    began, cpu = time.perf_counter(), _children_cpu()
    # Files, not pipes: nothing reads the output until the program ends.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        with subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err) as process:
            descendants = Descendants(process.pid)
            deadline = began + _TIMEOUT
            while process.poll() is None and time.perf_counter() < deadline:
                descendants.sample()
                time.sleep(2 * _SAMPLE_SECONDS)
            if process.poll() is None:
                process.kill()
                raise SystemExit(f"crm contacts import took over {_TIMEOUT} s")
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())
    seconds = time.perf_counter() - began
    cpu = _children_cpu() - cpu + descendants.seconds()
    rejected_ok = expect_rejected and f"rejected {expect_rejected}" in result.stdout
    if result.returncode != 0 and not rejected_ok:
        raise SystemExit(f"crm contacts import failed:\n{result.stdout}\n{result.stderr[-2000:]}")
    return seconds, cpu, result.stdout.strip()


async def _prepare(url: str) -> str:
    settings = Settings(database_url=url, secret_key="bench-" + "x" * 40, _env_file=None)  # type: ignore[call-arg]
    await asyncio.to_thread(upgrade, settings)
    runtime = Runtime.build(settings)
    try:
        async with runtime.sessions() as session:
            tenant = await tenants.create_tenant(session, runtime.clock, "Bench")
            await session.commit()
    finally:
        await runtime.close()
    return tenant.id


async def check_sign_in_hashes(url: str, tenant_id: str) -> None:
    """The first five imported identities verify their customer's old password."""
    from sqlalchemy import select

    from crm.identities.models import Identity
    from crm.security import passwords

    settings = Settings(database_url=url, secret_key="bench-" + "x" * 40, _env_file=None)  # type: ignore[call-arg]
    runtime = Runtime.build(settings)
    try:
        async with runtime.sessions() as session:
            found = (
                await session.execute(
                    select(Identity.display, Identity.password_hash)
                    .where(Identity.tenant_id == tenant_id)
                    .order_by(Identity.created_at)
                    .limit(5)
                )
            ).all()
    finally:
        await runtime.close()
    for display, stored in found:
        n = int(re.search(r"(\d+)@", display)[1])  # type: ignore[index]
        if not await passwords.verify_password(stored or "", bench_password(n)):
            raise SystemExit(f"imported hash of {display} does not verify")
    print(f"imported bcrypt hashes verify ({len(found)} checked)")


async def _admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sqlite", action="store_true", help="also time crm into SQLite")
    parser.add_argument(
        "--password-hashes",
        action="store_true",
        help="add a bcrypt password_hash column (and a refused hash every 10,000 rows)",
    )
    parser.add_argument(
        "--profile", type=Path, help="record py-spy samples of crm's import here (raw format)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rows <= 5_000_000:
        parser.error("--rows must be 1..5,000,000")
    host = args.admin_url.rsplit("@", 1)[-1].split("/", 1)[0].split(":")[0]
    if host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("the benchmark runs against a loopback database only")

    with tempfile.TemporaryDirectory(prefix="crm-bench-import-") as tmp:
        work = Path(tmp)
        source = work / "contacts.csv"
        write_csv(source, args.rows, hashes=args.password_hashes)
        expect = args.rows // BAD_HASH_EVERY if args.password_hashes else 0
        size = source.stat().st_size / 1e6
        print(f"{args.rows:,} contacts, {size:.1f} MB of CSV")

        name = f"crm_bench_{secrets.token_hex(4)}"
        url = args.admin_url.rsplit("/", 1)[0] + "/" + name
        await _admin(args.admin_url, f'CREATE DATABASE "{name}"')
        print(f"database {name}")
        try:
            tenant_id = await _prepare(url)
            began, cpu = time.perf_counter(), time.process_time()
            copied, bare_backend = await bare(url, source)
            bare_seconds, bare_cpu = time.perf_counter() - began, time.process_time() - cpu
            bare_rate = copied / bare_seconds
            print(f"bare parse+validate+COPY  {copied:>9,} rows {bare_seconds:7.1f} s ")
            print(f"                          {bare_rate:9,.0f} rows/s")
            print(_cpu_line("", bare_cpu, bare_backend, copied))
            backends = Backends(args.admin_url, name)
            stop = asyncio.Event()
            watching = asyncio.create_task(backends.watch(stop))
            try:
                seconds, crm_cpu, summary = await asyncio.to_thread(
                    crm_import, url, tenant_id, source, work, args.profile, expect
                )
            finally:
                stop.set()
                await watching
            if args.password_hashes:
                await check_sign_in_hashes(url, tenant_id)
            rate = args.rows / seconds
            print(f"crm contacts import       {args.rows:>9,} rows {seconds:7.1f} s  ({summary})")
            print(f"                          {rate:9,.0f} rows/s")
            print(_cpu_line("", crm_cpu, backends.seconds(), args.rows))
            print(f"ratio crm / bare          {rate / bare_rate:9.2f}x")
        finally:
            await _admin(args.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped {name}")

        if args.sqlite:
            sqlite_url = f"sqlite:///{work / 'crm.db'}"
            tenant_id = await _prepare(sqlite_url)
            seconds, crm_cpu, summary = crm_import(
                sqlite_url, tenant_id, source, work, expect_rejected=expect
            )
            if args.password_hashes:
                await check_sign_in_hashes(sqlite_url, tenant_id)
            print(
                f"crm contacts import, SQLite {args.rows:,} rows {seconds:.1f} s "
                f"({args.rows / seconds:,.0f} rows/s; {summary})"
            )
            print(_cpu_line("", crm_cpu, 0.0, args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
