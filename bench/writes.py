"""Bytes an idle `chime run` writes per day (SD-card wear; goal < 5 MB/day), and per delivery.

Idle: 100 daily reminders, none due during the measurement; the heartbeat, the maintenance
job and the change checks run as always. Counted three ways over the window, scaled to a day:
``write_bytes`` of /proc/<pid>/io (what the process sent to the block layer, fsyncs and the
WAL's shared-memory file included), ``wchar`` (every byte passed to write(), an upper bound),
and the growth of the database and its WAL. Then ``--deliveries`` one-off reminders are
delivered through the console, and the write_bytes they cost is divided by their number.

Run: .venv/bin/python bench/writes.py [--minutes 10] [--deliveries 20] [--dir /var/tmp]
(the folder must be on a real disk: tmpfs counts no write_bytes)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import start_daemon

from daemon.app import App
from daemon.config import load_settings
from daemon.reminders import add


def io(pid: int) -> dict[str, int]:
    pairs = (line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return {key: int(value) for key, value in pairs}


def on_disk(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def delivered(app: App) -> int:
    from sqlalchemy import func, select

    from daemon.store.models import Occurrence

    with app.db.session() as s:
        return int(s.scalar(select(func.count()).where(Occurrence.status == "delivered")) or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--deliveries", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "bench.db"
        app = App(load_settings(db=db))
        later = datetime.now(app.settings.tz) + timedelta(hours=12)
        for i in range(100):
            at = (later + timedelta(minutes=i)).strftime("%H:%M")
            add(app, f"每日 {i}", at, every="daily")
        proc = start_daemon(db)
        time.sleep(15)  # start-up done: migrations, first plan, first heartbeat
        before, size_before, started = io(proc.pid), on_disk(db), time.monotonic()
        time.sleep(args.minutes * 60)
        after, size_after = io(proc.pid), on_disk(db)
        window = time.monotonic() - started
        per_day = 86400 / window

        first = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=20)
        for i in range(args.deliveries):
            add(app, f"一次 {i}", (first + timedelta(seconds=2 * i)).isoformat(), lead="10s")
        mark = io(proc.pid)
        deadline = time.monotonic() + 120 + 2 * args.deliveries
        while delivered(app) < args.deliveries and time.monotonic() < deadline:
            time.sleep(1)
        done = delivered(app)
        end = io(proc.pid)
        proc.terminate()
        proc.wait(30)
        app.db.close()
    print(json.dumps({
        "events": 100,
        "window_s": round(window),
        "idle_write_bytes_per_day": round((after["write_bytes"] - before["write_bytes"]) * per_day),
        "idle_wchar_per_day": round((after["wchar"] - before["wchar"]) * per_day),
        "idle_db_growth_per_day": round((size_after - size_before) * per_day),
        "deliveries": done,
        "write_bytes_per_delivery": round((end["write_bytes"] - mark["write_bytes"]) / max(done, 1)),
    }))


if __name__ == "__main__":
    main()
