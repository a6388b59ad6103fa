"""`crm worker`: the message delivery worker on its own, for operators who run it apart from serve."""

from __future__ import annotations

import asyncio
import signal

import typer

from crm.cli.common import err_console, settings
from crm.cli.serve import refuse, refuse_bad_settings


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker() -> None:
    """Deliver queued messages and run queued contact import jobs until SIGTERM or Ctrl-C.
    Any number may run against one PostgreSQL: each message and job is claimed by one worker at
    a time (a worker killed mid-send leaves it to be sent again after its lease; a job resumes
    after its last committed batch). Set CRM_WORKER_ENABLED=false on `crm serve`
    to keep delivery out of the web processes."""
    import crm.models  # noqa: F401  (every table mapped, as in run_in_session)
    from crm import logging as crm_logging
    from crm.background import background_work
    from crm.deployment.preflight import secret_problem
    from crm.migrate import is_up_to_date
    from crm.runtime import Runtime

    cfg = settings()
    crm_logging.configure(cfg.log_level, cfg.log_format)
    refuse_bad_settings(cfg)

    async def main() -> int | str:
        runtime = Runtime.build(cfg)
        try:
            try:
                migrated = await is_up_to_date(runtime.engine)
            except Exception as exc:
                err_console.print(f"[red]Cannot reach the database:[/red] {type(exc).__name__}")
                return 1
            if not migrated:
                err_console.print(
                    "[red]The database is not migrated.[/red] Run `crm db upgrade` first."
                )
                return 1
            problem = await secret_problem(runtime.engine, cfg, runtime.secret)
            if problem is not None:
                return problem
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            # Runs whatever CRM_WORKER_ENABLED says: that setting is about `crm serve`.
            async with background_work(runtime):
                await stop.wait()
            return 0
        finally:
            await runtime.close()

    code = asyncio.run(main())
    if isinstance(code, str):
        refuse(code)
    elif code:
        raise typer.Exit(code)
