"""`crm contacts import|export`: bulk-load contacts from CSV and write them out as CSV or JSON lines."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, TextIO

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from crm.cli.common import err_console, settings
from crm.cli.help_text import CONTACT_JSON_COLUMNS, CONTACT_SCALAR_COLUMNS
from crm.errors import AppError

if TYPE_CHECKING:
    from crm.imports import pipeline
    from crm.security.legacy_hashes import FirebaseScrypt
    from crm.settings import Settings

app = typer.Typer(help="Bulk import and export of contacts.", no_args_is_help=True)

Mode = Literal["live", "test"]
ACTOR = "cli:import"
# Rows shown on the terminal; the --report file gets them all.
_SHOWN_REJECTIONS = 20
_COLUMNS_HELP = (
    "Columns (named in the header line, any order, unknown ones ignored): "
    + ", ".join(CONTACT_SCALAR_COLUMNS)
    + "; JSON cells: "
    + ", ".join(CONTACT_JSON_COLUMNS)
    + " (tags may also be a;b;c); conveniences: phone, phone_country_code (a primary mobile), "
    "gender, date_of_birth (YYYY-MM-DD); password_hash (bcrypt, argon2, PBKDF2-SHA256 in "
    "passlib, PHC or Django form, $firebase-scrypt$SALT$HASH with the --firebase-* options): "
    "an EMAIL identity for email_address that signs in with the old password."
)
_PROCESSES_FROM_BYTES = 2 * 1024 * 1024


def _processes(given: int | None, config: Settings) -> int:
    """`--processes`, or its default for the database.

    Measured on 2 CPUs (200,000 rows): on PostgreSQL, worker processes that validate and write
    their own batches ran 1.4 times as fast as a thread validating beside this process's writes;
    on SQLite, whose writes are this process's, processes that only validate need a CPU left
    for the writes.
    """
    if given is not None:
        return given
    cpus = os.cpu_count() or 1
    postgresql = config.database_url.startswith(("postgresql", "postgres"))
    return min(cpus if postgresql else cpus - 1, 4)


# Without a terminal, a progress line goes to stderr this often (seconds).
_PROGRESS_EVERY = 10.0


def _firebase(
    signer_key: str | None, salt_separator: str, rounds: int, mem_cost: int
) -> FirebaseScrypt | None:
    from crm.security.legacy_hashes import FirebaseScrypt

    if signer_key is None:
        return None
    try:
        return FirebaseScrypt.from_base64(
            signer_key=signer_key, salt_separator=salt_separator, rounds=rounds, mem_cost=mem_cost
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--firebase-*") from None


class _Meter:
    """Progress with rate and ETA on a terminal; a one-line summary on stderr otherwise."""

    def __init__(self, verb: str, total: float, unit_total: bool) -> None:
        self.verb = verb
        self.rows = 0
        self.started = time.monotonic()
        self._progress: Progress | None = None
        if err_console.is_terminal:
            self._progress = Progress(
                TextColumn(verb),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rows]} rows, {task.fields[rate]} rows/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=err_console,
            )
            self._task = self._progress.add_task(verb, total=total, rows=0, rate="-")
        self._unit_total = unit_total
        self._total = total
        self._last_line = self.started

    def __enter__(self) -> _Meter:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        seconds = max(time.monotonic() - self.started, 1e-6)
        err_console.print(
            f"{self.verb}: {self.rows} rows in {seconds:.1f} s ({self.rows / seconds:.0f} rows/s)",
            highlight=False,
        )

    def update(self, rows: int, completed: float) -> None:
        self.rows = rows
        now = time.monotonic()
        if self._progress is None and now - self._last_line >= _PROGRESS_EVERY:
            # Not a terminal (a log, a CI job): a line with the rate and the time left.
            self._last_line = now
            seconds = max(now - self.started, 1e-6)
            done = rows if self._unit_total else completed
            share = done / self._total if self._total else 0.0
            eta = seconds * (1 - share) / share if share > 0 else 0.0
            err_console.print(
                f"{self.verb}: {rows} rows, {share:.0%}, {rows / seconds:.0f} rows/s, "
                f"ETA {eta:.0f} s",
                highlight=False,
            )
        if self._progress is not None:
            seconds = max(time.monotonic() - self.started, 1e-6)
            self._progress.update(
                self._task,
                completed=rows if self._unit_total else completed,
                rows=rows,
                rate=f"{rows / seconds:.0f}",
            )


@app.command("import", epilog=_COLUMNS_HELP)
def import_(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="A CSV or JSON-lines file."
    ),
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    mode: Mode = typer.Option(..., "--mode", help="live or test."),
    fmt: Literal["csv", "jsonl"] | None = typer.Option(
        None,
        "--format",
        help="csv or jsonl (one JSON object per line, keys as the CSV "
        "columns); by default jsonl for a .jsonl or .ndjson file, csv otherwise.",
    ),
    batch_size: int = typer.Option(
        1000, "--batch-size", min=1, max=10_000, help="Rows per transaction."
    ),
    delimiter: str | None = typer.Option(
        None,
        "--delimiter",
        help="Cell separator; detected from the header among , ; tab | if not given.",
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="The file's text encoding."),
    report: Path | None = typer.Option(
        None, "--report", help="Write every rejected row (line, reason) here as CSV."
    ),
    processes: int | None = typer.Option(
        None,
        "--processes",
        min=0,
        max=32,
        show_default=False,
        help="Worker processes for a file over 2 MB: on PostgreSQL each validates and writes "
        "its own batches; on SQLite they validate and this process writes. 0 or 1 (or a "
        "smaller file): a thread validates. Default: the CPUs on PostgreSQL, one fewer on "
        "SQLite, at most 4.",
    ),
    writers: int = typer.Option(
        2,
        "--writers",
        min=1,
        max=8,
        help="Batch transactions in flight at once on PostgreSQL when a thread validates "
        "(worker processes write one each; SQLite writes one at a time). With more than one, "
        "batches may commit out of file order: after a crash, a re-run skips the rows whose "
        "id or code it finds (rows without either are created again).",
    ),
    firebase_signer_key: str | None = typer.Option(
        None,
        "--firebase-signer-key",
        envvar="CRM_IMPORT_FIREBASE_SIGNER_KEY",
        help="Firebase project's base64_signer_key, for $firebase-scrypt$ hashes.",
    ),
    firebase_salt_separator: str = typer.Option(
        "Bw==", "--firebase-salt-separator", help="Firebase base64_salt_separator."
    ),
    firebase_rounds: int = typer.Option(8, "--firebase-rounds", help="Firebase rounds."),
    firebase_mem_cost: int = typer.Option(14, "--firebase-mem-cost", help="Firebase mem_cost."),
) -> None:
    """Import contacts from a CSV whose header names the API's fields, or from JSON lines
    (one object per line, keyed by the same names; see the README).

    Each row is checked with the API's rules; each batch is one transaction written with one
    statement per table. A bad row (invalid field, wrong number of cells, unclosed quote) is
    rejected with its line and reason and the rest is kept. Rows whose id or code already exists
    are skipped, so a re-run is safe. Exits 1 when any row was rejected or there was no row.
    """
    import crm.models  # noqa: F401  (every table mapped, as in run_in_session)
    from crm.contacts import import_reader, importer
    from crm.imports import formats, pipeline
    from crm.runtime import Runtime
    from crm.unit_of_work import session_scope

    firebase = _firebase(
        firebase_signer_key, firebase_salt_separator, firebase_rounds, firebase_mem_cost
    )

    async def run(handle: BinaryIO, size: int) -> tuple[pipeline.Summary, int]:
        runtime = Runtime.build(settings())
        try:
            async with session_scope(runtime.sessions) as session:
                await importer.check_tenant(session, tenant)
            reader = formats.open_reader(
                formats.ImportFormat(fmt) if fmt else formats.format_of_path(file),
                handle,
                encoding=encoding,
                delimiter=delimiter,
            )
            if reader.unknown:
                err_console.print(
                    f"[yellow]Ignoring unknown columns:[/yellow] {', '.join(reader.unknown)}"
                )
            options = pipeline.Options(
                tenant_id=tenant,
                mode=mode,
                actor=ACTOR,
                batch_size=batch_size,
                firebase=firebase,
                # Starting the processes costs more than a small file's validation.
                processes=_processes(processes, runtime.settings)
                if size >= _PROCESSES_FROM_BYTES
                else 0,
                writers=writers,
            )
            with _Meter("imported", size, unit_total=False) as meter:
                summary = await pipeline.run(
                    runtime.sessions,
                    runtime.clock,
                    reader,
                    options,
                    progress=lambda seen: meter.update(seen, reader.bytes_read),
                    settings=runtime.settings,
                )
                meter.update(summary.seen, size)
        finally:
            await runtime.close()
        return summary, summary.seen

    try:
        with file.open("rb") as handle:
            import_reader.check_encoding(handle, encoding)
            summary, seen = asyncio.run(run(handle, file.stat().st_size))
    except import_reader.ImportFileError as exc:
        err_console.print(f"[red]{file.name}[/red]: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    except AppError as exc:
        err_console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc
    typer.echo(
        f"created {summary.created}, skipped {summary.skipped} (already present), "
        f"rejected {len(summary.rejected)}"
    )
    summary.rejected.sort(key=lambda r: r.line)
    if summary.rejected:
        table = Table("line", "reason", title="Rejected rows")
        for rejected in summary.rejected[:_SHOWN_REJECTIONS]:
            table.add_row(str(rejected.line), rejected.reason)
        err_console.print(table)
        if len(summary.rejected) > _SHOWN_REJECTIONS:
            err_console.print(f"... and {len(summary.rejected) - _SHOWN_REJECTIONS} more")
        if report is not None:
            with report.open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(["line", "reason"])
                writer.writerows([r.line, r.reason] for r in summary.rejected)
        raise typer.Exit(1)
    if seen == 0:
        err_console.print(f"[red]{file.name}[/red]: the file has a header but no rows")
        raise typer.Exit(1)


@app.command("export")
def export(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    mode: Mode = typer.Option("live", "--mode", help="live (the default) or test."),
    fmt: Literal["csv", "jsonl"] = typer.Option(
        "csv", "--format", help="csv (re-importable) or jsonl."
    ),
    output: Path | None = typer.Option(None, "--output", help="Write here instead of stdout."),
) -> None:
    """Write every contact of a tenant in one mode, oldest first; erased contacts are left out."""
    import crm.models  # noqa: F401  (every table mapped, as in run_in_session)
    from crm.contacts import exporter, importer
    from crm.runtime import Runtime
    from crm.unit_of_work import session_scope

    err_console.print(f"exporting {mode}-mode contacts of tenant {tenant}", highlight=False)

    async def run(out: TextIO) -> int:
        runtime = Runtime.build(settings())
        count = 0
        try:
            async with session_scope(runtime.sessions) as session:
                await importer.check_tenant(session, tenant)
                total = await exporter.count_contacts(session, tenant_id=tenant, mode=mode)
                if fmt == "csv":
                    out.write(exporter.csv_header())
                with _Meter(f"exported ({mode} mode)", total, unit_total=True) as meter:
                    async for contact in exporter.export_contacts(
                        session, tenant_id=tenant, mode=mode
                    ):
                        out.write(
                            exporter.csv_line(contact)
                            if fmt == "csv"
                            else exporter.jsonl_line(contact)
                        )
                        count += 1
                        if count % 1000 == 0:
                            meter.update(count, count)
                    meter.update(count, count)
        finally:
            await runtime.close()
        return count

    try:
        if output is None:
            count = asyncio.run(run(sys.stdout))
        else:
            with output.open("w", newline="", encoding="utf-8") as handle:
                count = asyncio.run(run(handle))
    except AppError as exc:
        err_console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc
    err_console.print(f"exported {count} {mode}-mode contacts", highlight=False)
