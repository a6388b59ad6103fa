"""The benchmarks' process plumbing: a free loopback port, a server's start, wait and stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not start")


def start(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, so stop() ends its workers too."""
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc), in seconds.

    Rates on a shared machine move with whatever else runs; the CPU a server spends per unit
    of work does not, so the benchmarks report both."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces; the fields after its closing parenthesis do not.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(database: str) -> dict[int, float]:
    """CPU used so far by each PostgreSQL backend serving `database` on this machine, by pid.

    Compare two readings with `cpu_spent`: a backend that ends between them takes its CPU
    with it, so a sum over the processes alive at each end could even go down."""
    found: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                # A backend names itself "postgres: [cluster:] <user> <database> <client> ...".
                words = cmdline.read().replace(b"\0", b" ").decode(errors="replace").split()
            if words[:1] != ["postgres:"] or database not in words:
                continue
            found[int(entry)] = cpu_seconds(int(entry))
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue  # the process ended while we looked
    return found


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two `postgres_cpu` readings by the backends alive at the second
    (a backend that ended in between is not counted: the figure is a lower bound)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
