"""Delivery lateness: 100 reminders spread over 60 s, delivered by a real `chime run`.

Run: .venv/bin/python bench/delivery.py [--count 100] [--span 60]
Prints p50/p99/max of (delivered_at − scheduled_at) and how many were delivered exactly once.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import start_daemon

from daemon.store import Database, repo
from daemon.store.models import Event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--span", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        out = Path(tmp) / "out.txt"
        daemon = start_daemon(db_path, out.open("w"))
        db = Database(db_path)
        while True:  # wait for the first heartbeat
            with db.session() as s:
                if repo.read_heartbeat(s):
                    break
            time.sleep(0.1)
        start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=10)
        step = args.span / args.count
        with db.session() as s:
            for i in range(args.count):
                at = start + timedelta(seconds=i * step)
                s.add(Event(task=f"bench {i}", dtstart=at.replace(tzinfo=None).isoformat(),
                            tz="UTC", lead_s=2, rdates=[], exdates=[]))
            repo.bump_revision(s)
        deadline = time.monotonic() + args.span + 60
        rows: list[tuple[str, str, str]] = []
        while time.monotonic() < deadline:
            with sqlite3.connect(db_path) as conn:
                rows = conn.execute("SELECT task, scheduled_at, delivered_at FROM occurrences "
                                    "WHERE status IN ('delivered','late','failed')").fetchall()
            if len(rows) >= args.count:
                break
            time.sleep(0.5)
        time.sleep(2)
        daemon.terminate()
        daemon.wait(30)
        lines = out.read_text().splitlines()
    late = sorted((datetime.fromisoformat(d) - datetime.fromisoformat(s)).total_seconds() * 1000
                  for _, s, d in rows)
    once = sum(1 for i in range(args.count) if sum(f" bench {i} — " in ln for ln in lines) == 1)
    q = statistics.quantiles(late, n=100)
    print(json.dumps({"reminders": args.count, "span_s": args.span, "delivered": len(rows),
                      "printed_exactly_once": once, "lateness_ms_p50": round(q[49], 1),
                      "lateness_ms_p99": round(q[98], 1), "lateness_ms_max": round(late[-1], 1)}))


if __name__ == "__main__":
    main()
