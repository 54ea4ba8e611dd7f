"""Wall time of whole `chime` commands, each a fresh process, with 1 000 events in the database.

Run: .venv/bin/python bench/cli.py [--events 1000] [--runs 10]

Goals: ``--version`` and ``--help`` ≤ 0.15 s, ``list`` and ``add`` ≤ 0.35 s. Prints the best
and the median wall time of ``--runs`` runs per command, the best CPU time (user + system: what
the command costs whatever else the machine runs), and the heavy modules each one imports
(sqlalchemy, requests, daemon.app…: a command should import them only when it uses them).
The daemon's modules are compiled to bytecode first, as pip does when it installs the package
(this machine sets PYTHONDONTWRITEBYTECODE: without it every command compiles them again).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import fill

import daemon

COMMANDS = {
    "--version": ["--version"],
    "--help": ["--help"],
    "list": ["list"],
    "add": ["add", "喝水", "--at", "tomorrow 8:00"],
}
HEAVY = ("sqlalchemy", "requests", "daemon.app", "icalendar", "apscheduler", "dateparser")
PROBE = ("import sys, json\n"
         "sys.argv = ['chime'] + {args!r}\n"
         "from daemon.cli import main\n"
         "try:\n"
         "    main()\n"
         "except SystemExit:\n"
         "    print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)\n")


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole command; CPU time hardly moves with the load
    of a shared machine, wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "daemon", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def heavy_imports(args: list[str], env: dict[str, str]) -> list[str]:
    """The heavy modules loaded by the time the command exits."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY, args=args)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    return json.loads(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    compileall.compile_dir(Path(daemon.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        fill(db, args.events)
        env = {**os.environ, "CHIME_DB": str(db), "XDG_CONFIG_HOME": tmp,
               "XDG_DATA_HOME": tmp, "XDG_CACHE_HOME": tmp}
        env.pop("CHIME_CONFIG", None)
        for name, cmd in COMMANDS.items():
            timed(cmd, env)  # warm the page cache and .pyc files
            runs = [timed(cmd, env) for _ in range(args.runs)]
            walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
            print(json.dumps({"command": f"chime {name}", "best_s": round(min(walls), 3),
                              "median_s": round(statistics.median(walls), 3),
                              "best_cpu_s": round(min(cpus), 3),
                              "imports": heavy_imports(cmd, env)}), flush=True)


if __name__ == "__main__":
    main()
