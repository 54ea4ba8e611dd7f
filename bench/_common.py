"""Shared helpers for the benchmarks: a temp database filled with events."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from daemon.store import Database
from daemon.store.models import Event, Meta

RULES = [None, "FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;BYDAY=SA,SU",
         "FREQ=MONTHLY;BYMONTHDAY=1,15", "FREQ=YEARLY", "FREQ=HOURLY;INTERVAL=3",
         "FREQ=MINUTELY;INTERVAL=30"]
ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"]


def start_daemon(db_path: Path, stdout: IO[str] | int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """`chime run` on ``db_path`` in a child process (this interpreter, so the same venv)."""
    return subprocess.Popen([sys.executable, "-m", "daemon", "--db", str(db_path), "run"],
                            stdout=stdout, stderr=subprocess.DEVNULL)


def fill(db_path: Path, count: int, seed: int = 7) -> None:
    """``count`` events with mixed recurrences and zones, started up to a year ago."""
    rng = random.Random(seed)
    now = datetime.now(ZoneInfo("UTC")).replace(tzinfo=None, microsecond=0)
    db = Database(db_path)
    with db.session() as s:
        for i in range(count):
            rule = rng.choice(RULES)
            start = (now + timedelta(days=rng.randint(1, 30)) if rule is None
                     else now - timedelta(days=rng.randint(0, 365), minutes=rng.randint(0, 1440)))
            s.add(Event(task=f"任务 {i}", dtstart=start.isoformat(), tz=rng.choice(ZONES),
                        rrule=rule, rdates=[], exdates=[]))
        s.merge(Meta(key="revision", value="1"))
    db.close()


def status_kb(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` field in kB (VmRSS, VmHWM…)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
