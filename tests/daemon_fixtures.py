"""Running the real daemon (`chime run`) as a subprocess on a temporary database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from daemon.app import App
from daemon.config import load_settings
from daemon.reminders import add


def chime_cmd() -> list[str]:
    """How to start the CLI in a subprocess (this interpreter, so the same venv)."""
    return [sys.executable, "-m", "daemon"]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Daemon:
    """A `chime run` child process with its stdout/stderr in files."""

    def __init__(self, db: Path, config: Path | None = None, logs: Path | None = None,
                 **env: str) -> None:
        self.db = db
        self.out = (logs / db.name if logs else db).with_suffix(f".{time.monotonic_ns()}.out")
        self.err = self.out.with_suffix(".err")
        args = [*chime_cmd(), "--db", str(db)]
        if config:
            args += ["--config", str(config)]
        self.proc = subprocess.Popen(
            [*args, "-v", "run"], stdout=self.out.open("w"), stderr=self.err.open("w"),
            env=child_env(**env),
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the daemon has written a heartbeat since it started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hb = heartbeat(self.db)
            if hb and hb.get("pid") == self.proc.pid:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.err.read_text()}")
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready in {timeout}s:\n{self.err.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def stdout_lines(self) -> list[str]:
        return self.out.read_text(encoding="utf-8").splitlines()


def cli(db: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--config", str(config)] if config else []
    return subprocess.run([*chime_cmd(), "--db", str(db), *extra, *args], capture_output=True,
                          text=True, env=child_env(), timeout=60)


def heartbeat(db: Path) -> dict[str, Any] | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='heartbeat'").fetchone()
    except sqlite3.OperationalError:
        return None
    return json.loads(row[0]) if row else None


def occurrences(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM occurrences ORDER BY scheduled_at").fetchall()
    return [dict(r) for r in rows]


def iso(at: datetime) -> str:
    """An instant as the CLI takes it: ISO 8601 in UTC, whole seconds."""
    return at.astimezone(timezone.utc).isoformat(timespec="seconds")


def utc(text: str) -> datetime:
    """A naive-UTC timestamp from the database → aware."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def add_reminders(db: Path, count: int, first: datetime, step: timedelta,
                  lead: str = "3s") -> list[str]:
    """``count`` one-off reminders through the use case (faster than ``count`` CLI runs)."""
    app = App(load_settings(db=db))
    tasks = [f"提醒{i:02d}" for i in range(count)]
    for i, task in enumerate(tasks):
        add(app, task, (first + i * step).isoformat(timespec="seconds"), lead=lead)
    app.db.close()
    return tasks
