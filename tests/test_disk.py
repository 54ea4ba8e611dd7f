"""A full, failing or read-only disk under the real daemon.

A small tmpfs stands in for the SD card (mounting needs root, as CI runs); libfiu (Debian
`fiu-utils`) makes a share of the process's writes and fsyncs fail with EIO, as a dying card
does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from daemon_fixtures import (
    Daemon,
    add_reminders,
    child_env,
    chime_cmd,
    cli,
    integrity,
    occurrences,
    wait_for,
)

pytestmark = pytest.mark.slow

FINAL = ("delivered", "late", "missed", "failed")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(folder: Path) -> Path:
    """Take every free block of the file system that holds ``folder``."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    return filler


def printed(daemon: Daemon, task: str) -> int:
    return sum(f" {task} — " in line for line in daemon.stdout_lines())


def test_full_disk_delivers_then_records_when_space_returns(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "card", "2m") as card:
        db = card / "chime.db"
        start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=8)
        tasks = add_reminders(db, 3, start, timedelta(seconds=1))
        daemon = Daemon(db, logs=tmp_path)
        try:
            daemon.wait_ready()
            filler = fill(card)
            refused = cli(db, "add", "满了", "--at", "tomorrow 9:00")
            assert refused.returncode == 74
            assert refused.stderr.strip().splitlines() == [
                f"chime: database {db}: the disk is full (database or disk is full)"]
            wait_for(lambda: all(printed(daemon, t) == 1 for t in tasks), 30,
                     "deliveries on a full disk")
            assert all(o["status"] not in FINAL for o in occurrences(db))  # not recorded yet
            filler.unlink()
            wait_for(lambda: [o["status"] for o in occurrences(db)] == ["delivered"] * 3, 20,
                     "the deliveries recorded once space returned")
            assert daemon.proc.poll() is None  # the same process all along: no crash loop
        finally:
            assert daemon.stop() == 0
        assert integrity(db) == "ok"
    err = daemon.err.read_text()
    assert err.count("the disk is full") == 1, err  # one clear error, not one per retry
    assert "Traceback" not in err
    assert "can be written again" in err
    assert all(printed(daemon, t) == 1 for t in tasks)


def test_failing_disk_never_sends_twice(tmp_path: Path) -> None:
    """EIO on 5 % of writes and fsyncs: every reminder sent once, recorded within seconds."""
    db = tmp_path / "chime.db"
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=10)
    tasks = add_reminders(db, 20, start, timedelta(milliseconds=500))
    fiu = shutil.which("fiu-run")
    assert fiu, "fiu-run missing: scripts/system-deps.sh installs fiu-utils"
    failing = [fiu, "-x", "-c", "enable_random name=posix/io/rw/pwrite,probability=0.05,failinfo=5",
               "-c", "enable_random name=posix/io/sync/*,probability=0.05,failinfo=5"]
    out, err = tmp_path / "fiu.out", tmp_path / "fiu.err"
    proc = subprocess.Popen([*failing, *chime_cmd(), "--db", str(db), "-v", "run"],
                            stdout=out.open("w"), stderr=err.open("w"), env=child_env())
    try:
        last = start + timedelta(seconds=10)
        wait_for(lambda: datetime.now(timezone.utc) > last + timedelta(seconds=1), 40,
                 "the last reminder's time")
        # Recorded while it runs, not at a restart. A claim that keeps failing is retried after
        # 1, 2, 4 … 30 s (scheduler.RETRY_MAX_S): allow two of the longest waits.
        wait_for(lambda: all(o["status"] in FINAL for o in occurrences(db))
                 and len(occurrences(db)) == 20, 75, "every delivery recorded")
    finally:
        proc.terminate()
        proc.wait(30)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [sum(f" {t} — " in line for line in lines) for t in tasks] == [1] * 20
    assert "the disk failed a write" in err.read_text()
    assert {o["status"] for o in occurrences(db)} <= {"delivered", "late"}
    assert integrity(db) == "ok"
    again = Daemon(db)  # a restart finds nothing left to send
    try:
        again.wait_ready()
        time.sleep(2.0)
    finally:
        assert again.stop() == 0
    assert not any(" — " in line for line in again.stdout_lines())


def test_read_only_database_is_one_line_and_an_exit_code(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "card", "4m") as card:
        db = card / "chime.db"
        assert cli(db, "add", "只读", "--at", "tomorrow 9:00").returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(card)], check=True)
        for args in (("run",), ("list",)):
            result = subprocess.run([*chime_cmd(), "--db", str(db), *args], capture_output=True,
                                    text=True, env=child_env(), timeout=60)
            assert result.returncode == 73, result.stderr  # EX_CANTCREAT: no restart loop
            assert result.stderr.strip().splitlines() == [
                f"chime: database {db} is on a read-only file system"]
