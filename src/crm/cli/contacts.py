"""`crm contacts import|export`: bulk-load contacts from CSV and write them out as CSV or JSON lines."""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from pathlib import Path
from typing import BinaryIO, Literal, TextIO

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
from sqlalchemy import text

from crm.cli.common import err_console, settings
from crm.contacts import custom_fields, import_reader, importer
from crm.db import session_scope
from crm.errors import AppError
from crm.runtime import Runtime

app = typer.Typer(help="Bulk import and export of contacts.", no_args_is_help=True)

Mode = Literal["live", "test"]
ACTOR = "cli:import"
# Rows shown on the terminal; the --report file gets them all.
_SHOWN_REJECTIONS = 20
_COLUMNS_HELP = (
    "Columns (named in the header line, any order, unknown ones ignored): "
    + ", ".join(importer.SCALAR_COLUMNS)
    + "; JSON cells: "
    + ", ".join(importer.JSON_COLUMNS)
    + " (tags may also be a;b;c); conveniences: phone, phone_country_code (a primary mobile), "
    "gender, date_of_birth (YYYY-MM-DD)."
)


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
        ..., exists=True, dir_okay=False, readable=True, help="A CSV file."
    ),
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    mode: Mode = typer.Option(..., "--mode", help="live or test."),
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
) -> None:
    """Import contacts from a CSV whose header names the API's fields.

    Each row is checked with the API's rules; each batch is one transaction written with one
    statement per table. A bad row (invalid field, wrong number of cells, unclosed quote) is
    rejected with its line and reason and the rest is kept. Rows whose id or code already exists
    are skipped, so a re-run is safe. Exits 1 when any row was rejected or there was no row.
    """

    async def run(handle: BinaryIO, size: int) -> tuple[importer.BatchResult, int]:
        runtime = Runtime.build(settings())
        summary = importer.BatchResult()
        seen = 0
        try:
            async with session_scope(runtime.sessions) as session:
                await importer.check_tenant(session, tenant)
                rules = await custom_fields.rules_of(session, tenant)
            reader = import_reader.Reader(handle, encoding=encoding, delimiter=delimiter)
            if reader.unknown:
                err_console.print(
                    f"[yellow]Ignoring unknown columns:[/yellow] {', '.join(reader.unknown)}"
                )
            with _Meter("imported", size, unit_total=False) as meter:
                batch: list[tuple[int, dict[str, str | None]]] = []
                writing: asyncio.Task[None] | None = None

                async def write(
                    result: importer.BatchResult, prepared: importer.PreparedBatch
                ) -> None:
                    async with session_scope(runtime.sessions) as session:
                        if session.get_bind().dialect.name == "postgresql":
                            # CRM_DB_STATEMENT_TIMEOUT_MS is sized for one API request; a
                            # batch statement writes up to --batch-size rows on a busy server.
                            await session.execute(text("SET LOCAL statement_timeout = '300s'"))
                        await importer.write_batch(
                            session,
                            runtime.clock,
                            prepared,
                            tenant_id=tenant,
                            mode=mode,
                            actor=ACTOR,
                            result=result,
                        )
                    summary.created += result.created
                    summary.skipped += result.skipped
                    summary.rejected.extend(result.rejected)

                async def flush() -> None:
                    nonlocal writing
                    # Validate this batch in a thread while the previous one is being written.
                    result, prepared = await asyncio.to_thread(
                        importer.prepare_batch,
                        list(batch),
                        tenant_id=tenant,
                        mode=mode,
                        now=runtime.clock.now(),
                        rules=rules,
                    )
                    batch.clear()
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(write(result, prepared))
                    meter.update(seen, reader.bytes_read)

                try:
                    for row in reader:
                        seen += 1
                        if isinstance(row, import_reader.BadRow):
                            summary.rejected.append(importer.Rejected(row.line, row.reason))
                            continue
                        batch.append((row.line, row.cells))
                        if len(batch) >= batch_size:
                            await flush()
                    if batch:
                        await flush()
                finally:
                    if writing is not None:
                        await writing
                meter.update(seen, size)
        finally:
            await runtime.close()
        return summary, seen

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
    err_console.print(f"exporting {mode}-mode contacts of tenant {tenant}", highlight=False)

    async def run(out: TextIO) -> int:
        runtime = Runtime.build(settings())
        count = 0
        try:
            async with session_scope(runtime.sessions) as session:
                await importer.check_tenant(session, tenant)
                total = await importer.count_contacts(session, tenant_id=tenant, mode=mode)
                if fmt == "csv":
                    out.write(importer.csv_header())
                with _Meter(f"exported ({mode} mode)", total, unit_total=True) as meter:
                    async for contact in importer.export_contacts(
                        session, tenant_id=tenant, mode=mode
                    ):
                        out.write(
                            importer.csv_line(contact)
                            if fmt == "csv"
                            else importer.jsonl_line(contact)
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
