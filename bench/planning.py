"""Planning time and memory for 10 000 events with mixed recurrences (goal: < 1 s).

Run: .venv/bin/python bench/planning.py [--events 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

from _common import fill

from daemon.app import App
from daemon.config import load_settings
from daemon.delivery import Courier
from daemon.scheduler import Planner, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        fill(db, args.events)
        app = App(load_settings(db=db))
        now = datetime.now(timezone.utc)
        plan(app, now)  # warm: opens the database, imports, caches
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            slots = plan(app, now)
            runs.append(time.perf_counter() - started)
        tracemalloc.start()  # a separate run: tracing slows allocation-heavy code severalfold
        plan(app, now)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        horizon = app.settings.daemon.horizon
        print(f"events: {args.events}  slots in the {horizon} horizon: {len(slots)}")
        print(f"plan(): best {min(runs):.3f} s, worst {max(runs):.3f} s of 3 runs")
        print(f"peak Python allocations during plan(): {peak / 1e6:.1f} MB")
        planner = Planner(app, Courier(app))
        planner.scheduler.start(paused=True)  # real job store, but nothing fires
        started = time.perf_counter()
        planner.replan()
        first = time.perf_counter() - started
        started = time.perf_counter()
        planner.replan()
        again = time.perf_counter() - started
        planner.scheduler.shutdown(wait=False)
        print(f"Planner.replan() with APScheduler jobs: first {first:.3f} s, unchanged {again:.3f} s")


if __name__ == "__main__":
    main()
