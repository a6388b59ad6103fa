"""How long a `crm` command takes to start, beside a bare `python -c pass` in the same run.

Each command runs --runs times in a fresh process (interleaved, so a busy moment of a shared
machine falls on every command alike); printed: the median wall time and the median CPU time
(user + system) of the process. `--src DIR` adds the same commands run from another source tree
(for example an older commit unpacked with `git archive`), for a before/after in one run.

    .venv/bin/python bench/cli_start.py --runs 7
    .venv/bin/python bench/cli_start.py --runs 7 --src /tmp/before/src
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "crm --help": ["--help"],
    "crm --version": ["--version"],
    "crm contacts import --help": ["contacts", "import", "--help"],
    "crm tenants list": ["tenants", "list"],
}


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {done.stderr.decode()[-400:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--src", type=Path, help="Also run the commands from this source tree.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = {
            **os.environ,
            "CRM_DATABASE_URL": f"sqlite:///{tmp}/crm.db",
            "CRM_SECRET_KEY": "x" * 40,
            "CRM_LOG_FORMAT": "console",
            "COLUMNS": "80",
        }
        trees = {"": base}
        if args.src is not None:
            trees[" (--src)"] = {**base, "PYTHONPATH": str(args.src.resolve())}
        py = sys.executable
        subprocess.run(
            [py, "-m", "crm", "db", "upgrade"], env=base, check=True, capture_output=True
        )
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([py, "-c", "pass"], base),
            "python -c 'import typer'": ([py, "-c", "import typer"], base),
        }
        for suffix, env in trees.items():
            for name, argv in COMMANDS.items():
                cases[name + suffix] = ([py, "-m", "crm", *argv], env)
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (cmd, env) in cases.items():
                wall, cpu = run_once(cmd, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    bare = statistics.median(cpus["python -c pass"])
    print(f"{'command':40} {'wall s':>8} {'cpu s':>8} {'cpu / bare':>11}")
    for name in cases:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"{name:40} {wall:8.3f} {cpu:8.3f} {cpu / bare:10.1f}x")
    print(f"({args.runs} runs each, medians; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
