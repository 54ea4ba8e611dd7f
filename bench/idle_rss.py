"""Idle memory of `chime run` with 1 000 events (goal ≤ 60 MB; the daemon never imports torch).

Run: .venv/bin/python bench/idle_rss.py [--events 1000] [--settle 15]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import fill, start_daemon, status_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        fill(db, args.events)
        proc = start_daemon(db)
        time.sleep(args.settle)
        rss, peak = status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        proc.terminate()
        proc.wait(30)
    print(json.dumps({"events": args.events, "idle_rss_mb": round(rss / 1024, 1),
                      "peak_rss_mb": round(peak / 1024, 1),
                      "torch_loaded": "libtorch" in maps or "/torch/" in maps}))


if __name__ == "__main__":
    main()
