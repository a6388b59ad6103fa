"""Contact search at scale: loads N contacts into a fresh PostgreSQL database and times searches.

Usage (PostgreSQL on loopback, trust or password in the URL):

    python bench/contacts_search.py --contacts 1000000 --iterations 200

It creates its own database (`crm_bench_<random>`), migrates it, bulk-loads one tenant's live
contacts and phones with COPY (asyncpg), runs VACUUM (ANALYZE), then runs each representative search
through the same service the API uses and prints p50/p99 in milliseconds. The database is
dropped at the end, also on failure or Ctrl-C, unless --keep; --database reruns the searches
on a kept one. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from crm.contacts.service import search_form
from crm.directory import search as contact_search
from crm.migrate import upgrade
from crm.runtime import Runtime
from crm.settings import Settings
from crm.tenants import service as tenants

_SYLLABLES = [
    "an",
    "be",
    "ca",
    "do",
    "el",
    "fi",
    "ga",
    "ho",
    "is",
    "ja",
    "ko",
    "lu",
    "ma",
    "ni",
    "or",
    "pa",
    "qu",
    "ro",
    "sa",
    "ti",
    "ul",
    "va",
    "we",
    "xi",
    "yo",
    "za",
]
_BATCH = 50_000
_MAX_SECONDS_PER_CASE = 30.0
_BENCH_DB = re.compile(r"crm_bench_[0-9a-f]{8}")


def _name(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()


def _rows(tenant_id: str, count: int, seed: int, start: datetime) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    for n in range(count):
        first = _name(rng, 2)
        last = _name(rng, 3)
        email = f"{first.lower()}.{last.lower()}.{n}@example.com"
        code = f"B{n:09d}"
        created = start + timedelta(seconds=n * 30)
        yield (
            tenant_id,
            "live",
            f"c-{n:010d}",
            code,
            code.casefold(),
            "PERSON",
            first,
            last,
            search_form(first),
            search_form(last),
            email,
            email,
            "[]",
            "[]",
            "[]",
            False,
            False,
            False,
            created,
            created,
        )


_CONTACT_COLUMNS = [
    "tenant_id",
    "mode",
    "id",
    "code",
    "code_norm",
    "contact_type",
    "first_name",
    "last_name",
    "first_name_norm",
    "last_name_norm",
    "email_address",
    "email_canonical",
    "addresses",
    "custom_fields",
    "tags",
    "service_acceptance",
    "email_opt_out",
    "sms_opt_out",
    "created_at",
    "updated_at",
]
_PHONE_COLUMNS = [
    "id",
    "contact_pk",
    "tenant_id",
    "mode",
    "phone_type",
    "country_code",
    "number",
    "e164",
    "is_primary",
]


def _phone(n: int) -> str:
    return f"+3579{n:07d}"


async def _load(dsn: str, tenant_id: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        start = datetime(2020, 1, 1, tzinfo=UTC)
        rows = _rows(tenant_id, count, 42, start)
        loaded = 0
        began = time.perf_counter()
        while loaded < count:
            batch = [next(rows) for _ in range(min(_BATCH, count - loaded))]
            await conn.copy_records_to_table("contacts", records=batch, columns=_CONTACT_COLUMNS)
            loaded += len(batch)
            print(
                f"\r  contacts {loaded:>9,}/{count:,}  {time.perf_counter() - began:6.1f}s",
                end="",
                flush=True,
            )
        print()
        first_pk = await conn.fetchval(
            "SELECT min(pk) FROM contacts WHERE tenant_id = $1", tenant_id
        )
        done = 0
        while done < count:
            size = min(_BATCH, count - done)
            batch = [
                (
                    f"p-{n:010d}",
                    first_pk + n,
                    tenant_id,
                    "live",
                    "MOBILE",
                    "CYP",
                    _phone(n),
                    _phone(n),
                    True,
                )
                for n in range(done, done + size)
            ]
            await conn.copy_records_to_table(
                "contact_phones", records=batch, columns=_PHONE_COLUMNS
            )
            done += size
            print(
                f"\r  phones   {done:>9,}/{count:,}  {time.perf_counter() - began:6.1f}s",
                end="",
                flush=True,
            )
        print()
        # A steady-state table: autovacuum (insert-triggered since PostgreSQL 13) would have
        # set the visibility map that lets the search indexes answer with index-only scans,
        # but it may be off or not yet run on a database loaded seconds ago.
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


async def _time_case(
    runtime: Runtime,
    name: str,
    iterations: int,
    make: Callable[[int], contact_search.SearchQuery],
    tenant_id: str,
) -> tuple[str, float, float, int]:
    timings: list[float] = []
    deadline = time.perf_counter() + _MAX_SECONDS_PER_CASE
    found = 0
    for i in range(iterations):
        query = make(i)
        async with runtime.sessions() as session:
            began = time.perf_counter()
            result = await contact_search.search(session, tenant_id, "live", query)
            timings.append((time.perf_counter() - began) * 1000)
            found += len(result.contacts)
        if time.perf_counter() > deadline:
            break
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return name, p50, p99, len(timings)


async def _bench(runtime: Runtime, tenant_id: str, count: int, iterations: int) -> None:
    rng = random.Random(7)
    sample = [rng.randrange(count) for _ in range(iterations)]
    # Regenerate the names of the sampled rows deterministically (same seed, same order).
    wanted = set(sample)
    names_of: dict[int, tuple[str, str, str]] = {}
    for n, row in enumerate(_rows(tenant_id, count, 42, datetime(2020, 1, 1, tzinfo=UTC))):
        if n in wanted:
            names_of[n] = (row[6], row[7], row[10])
    start = datetime(2020, 1, 1, tzinfo=UTC)
    q = contact_search.SearchQuery

    def pick(i: int) -> int:
        return sample[i % len(sample)]

    cases: list[tuple[str, Callable[[int], contact_search.SearchQuery]]] = [
        ("list, default sort (newest first)", lambda i: q()),
        ("filter email_address (exact)", lambda i: q(email_address=names_of[pick(i)][2].upper())),
        (
            "filter phone, national + country",
            lambda i: q(phone=f"9{pick(i):07d}", country_code="CYP"),
        ),
        ("filter code (exact)", lambda i: q(code=f"B{pick(i):09d}")),
        (
            "search_value last-name prefix (4 chars)",
            lambda i: q(search_value=names_of[pick(i)][1][:4]),
        ),
        (
            "search_value 'first last' prefix",
            lambda i: q(search_value=f"{names_of[pick(i)][0]} {names_of[pick(i)][1][:3]}"),
        ),
        ("search_value email prefix", lambda i: q(search_value=names_of[pick(i)][2][:12])),
        ("search_value phone (+357 99 ...)", lambda i: q(search_value=f"+357 9{pick(i):07d}")),
        ("search_value code", lambda i: q(search_value=f"b{pick(i):09d}")),
        (
            "created_date range (1 day)",
            lambda i: q(
                created_gte=start + timedelta(seconds=pick(i) * 30),
                created_lt=start + timedelta(seconds=pick(i) * 30 + 86400),
            ),
        ),
        ("sort LAST_NAME ASC", lambda i: q(sort="LAST_NAME", order="ASC")),
        ("page 100 of 10", lambda i: q(page=100)),
    ]
    print(f"\n{'search':<42} {'p50 ms':>8} {'p99 ms':>8} {'runs':>6}")
    for name, make in cases:
        label, p50, p99, runs = await _time_case(runtime, name, iterations, make, tenant_id)
        print(f"{label:<42} {p50:8.2f} {p99:8.2f} {runs:6d}")


async def _bench_tenant(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = 'Bench' LIMIT 1")
    finally:
        await conn.close()
    if tenant_id is None:
        raise SystemExit("no Bench tenant in that database: load one with --keep first")
    return str(tenant_id)


async def _admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--keep", action="store_true", help="keep the database at the end (its name is printed)"
    )
    parser.add_argument(
        "--database",
        help="time searches on a database left by --keep instead of loading a new one; "
        "--contacts must be the count it was loaded with",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.contacts <= 5_000_000 or not 1 <= args.iterations <= 10_000:
        parser.error("--contacts must be 1..5,000,000 and --iterations 1..10,000")
    host = args.admin_url.rsplit("@", 1)[-1].split("/", 1)[0].split(":")[0]
    if host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("the benchmark runs against a loopback database only")

    if args.database is not None and not _BENCH_DB.fullmatch(args.database):
        parser.error("--database must name a crm_bench_* database")
    reuse = args.database is not None
    name = args.database if reuse else f"crm_bench_{secrets.token_hex(4)}"
    url = args.admin_url.rsplit("/", 1)[0] + "/" + name
    keep = args.keep or reuse
    if not reuse:
        await _admin(args.admin_url, f'CREATE DATABASE "{name}"')
    print(f"database {name}")
    try:
        settings = Settings(database_url=url, secret_key="bench-" + "x" * 40, _env_file=None)  # type: ignore[call-arg]
        await asyncio.to_thread(upgrade, settings)
        runtime = Runtime.build(settings)
        try:
            if reuse:
                tenant_id = await _bench_tenant(url)
            else:
                async with runtime.sessions() as session:
                    tenant = await tenants.create_tenant(session, runtime.clock, "Bench")
                    await session.commit()
                tenant_id = tenant.id
                began = time.perf_counter()
                print(f"loading {args.contacts:,} contacts with one phone each")
                await _load(url, tenant_id, args.contacts)
                print(f"loaded and analysed in {time.perf_counter() - began:.1f}s")
            await _bench(runtime, tenant_id, args.contacts, args.iterations)
        finally:
            await runtime.close()
    finally:
        if keep:
            print(f'kept {name} (drop it with: DROP DATABASE "{name}" WITH (FORCE))')
        else:
            await _admin(args.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped {name}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
