"""Real `crm serve` / `crm worker` subprocesses for end-to-end tests: start, wait ready, stop, kill.

Each process gets a clean environment (no CRM_* leaking in from the developer's shell), JSON logs
in a file under the test's tmp_path (so tests can read them, e.g. to assert a code never appears),
and, for `serve`, a free loopback port. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.http_sink import free_port

TEST_SECRET = "test-secret-" + "x" * 40
# Generous: under pytest-xdist several servers, CLI runs and PostgreSQL share two cores.
START_TIMEOUT = 60.0


def crm_env(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a crm process: the caller's minus CRM_*, plus the test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(
        CRM_DATABASE_URL=database_url,
        CRM_SECRET_KEY=TEST_SECRET,
        CRM_LOG_FORMAT="json",
        CRM_LOG_LEVEL="INFO",
        CRM_API_KEY_CACHE_SECONDS="0",
    )
    env.update(overrides)
    return env


class CrmProcess:
    """One `python -m crm ...` subprocess with its log file."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        port: int | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.port = port
        self.cwd = cwd or log_path.parent
        self.process: subprocess.Popen[bytes] | None = None

    # -- constructors --------------------------------------------------------------------

    @classmethod
    def serve(
        cls, tmp_path: Path, database_url: str, name: str = "serve", workers: int = 1, **env: str
    ) -> CrmProcess:
        port = free_port()
        return cls(
            ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            crm_env(database_url, **env),
            tmp_path / f"{name}.log",
            port=port,
        )

    @classmethod
    def worker(
        cls, tmp_path: Path, database_url: str, name: str = "worker", **env: str
    ) -> CrmProcess:
        return cls(["worker"], crm_env(database_url, **env), tmp_path / f"{name}.log")

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("this process serves no HTTP")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> CrmProcess:
        """Start and wait until ready: /readyz answers 200 (serve), or the worker logged that
        it started (worker). Appends to the log file, so a restart keeps the earlier lines."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "crm", *self.args],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so a kill also reaches `--workers N` children: none is
                # left running (and holding CPU, a port or a database) after its test.
                start_new_session=True,
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        marker = "delivery worker started"
        already = self.logs().count(marker) if self.port is None else 0
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"crm {' '.join(self.args)} exited with {self.process.returncode}:\n"
                    + self.logs()[-4000:]
                )
            if self.port is None:
                if self.logs().count(marker) > already:
                    return
            else:
                try:
                    if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(
            f"crm {' '.join(self.args)} not ready in {timeout}s:\n{self.logs()[-4000:]}"
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_group()
            return self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as after a crash or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self._kill_group()
            self.process.wait(10)

    def _kill_group(self) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> CrmProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
