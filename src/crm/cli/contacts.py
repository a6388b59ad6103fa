"""`crm contacts import|export`: bulk-load contacts from CSV and write them out as CSV or JSON lines."""

from __future__ import annotations

import asyncio
import csv
import sys
from pathlib import Path
from typing import Literal, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crm.cli.common import err_console, settings
from crm.contacts import importer
from crm.db import session_scope
from crm.errors import AppError
from crm.runtime import Runtime

app = typer.Typer(help="Bulk import and export of contacts.", no_args_is_help=True)

Mode = Literal["live", "test"]
ACTOR = "cli:import"
# Rows shown on the terminal; the --report file gets them all.
_SHOWN_REJECTIONS = 20


def _count_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


@app.command("import")
def import_(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="A CSV file."
    ),
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    mode: Mode = typer.Option(..., "--mode", help="live or test."),
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, max=10_000, help="Rows per transaction."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Write every rejected row (line, reason) here as CSV."
    ),
) -> None:
    """Import contacts from a CSV whose columns are named like the API's fields.

    Each batch is one transaction; a bad row is rejected with its reason and the rest of its
    batch is kept. Rows whose id or code already exists are skipped, so a re-run is safe.
    Exits 1 when any row was rejected.
    """
    total = _count_rows(file)

    async def run() -> importer.BatchResult:
        runtime = Runtime.build(settings())
        summary = importer.BatchResult()
        try:
            async with session_scope(runtime.sessions) as session:
                await importer.check_tenant(session, tenant)
            with (
                file.open(newline="", encoding="utf-8-sig") as handle,
                Progress(
                    TextColumn("importing"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=err_console,
                ) as progress,
            ):
                task = progress.add_task("rows", total=total)
                reader = csv.DictReader(handle)
                if not reader.fieldnames:
                    raise typer.BadParameter("the CSV has no header row")
                unknown = [c for c in reader.fieldnames if c not in importer.KNOWN_COLUMNS]
                if unknown:
                    err_console.print(
                        f"[yellow]Ignoring unknown columns:[/yellow] {', '.join(unknown)}"
                    )
                batch: list[tuple[int, dict[str, str | None]]] = []

                async def flush() -> None:
                    async with session_scope(runtime.sessions) as session:
                        result = await importer.import_batch(
                            session,
                            runtime.clock,
                            tenant_id=tenant,
                            mode=mode,
                            rows=batch,
                            actor=ACTOR,
                        )
                    summary.created += result.created
                    summary.skipped += result.skipped
                    summary.rejected.extend(result.rejected)
                    progress.advance(task, len(batch))
                    batch.clear()

                for row in reader:
                    # The header is line 1; csv counts physical lines, so quoted newlines stay right.
                    batch.append((reader.line_num, dict(row)))
                    if len(batch) >= batch_size:
                        await flush()
                if batch:
                    await flush()
        finally:
            await runtime.close()
        return summary

    try:
        summary = asyncio.run(run())
    except AppError as exc:
        err_console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc
    typer.echo(
        f"created {summary.created}, skipped {summary.skipped} (already present), "
        f"rejected {len(summary.rejected)}"
    )
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


@app.command("export")
def export(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    mode: Mode = typer.Option("live", "--mode", help="live or test."),
    fmt: Literal["csv", "jsonl"] = typer.Option(
        "csv", "--format", help="csv (re-importable) or jsonl."
    ),
    output: Path | None = typer.Option(None, "--output", help="Write here instead of stdout."),
) -> None:
    """Write every live contact of a tenant, oldest first; erased contacts are left out."""

    async def run(out: TextIO) -> int:
        runtime = Runtime.build(settings())
        count = 0
        try:
            async with session_scope(runtime.sessions) as session:
                await importer.check_tenant(session, tenant)
                if fmt == "csv":
                    out.write(importer.csv_header())
                async for contact in importer.export_contacts(session, tenant_id=tenant, mode=mode):
                    out.write(
                        importer.csv_line(contact) if fmt == "csv" else importer.jsonl_line(contact)
                    )
                    count += 1
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
    err_console.print(f"exported {count} contacts")
