"""`chime web` with 1 000 events: idle RSS, and p50/p99 latency of GET /, GET /api/reminders and
POST /api/reminders over real HTTP on loopback (goal: API p99 < 50 ms).

Run: .venv/bin/python bench/web.py [--events 1000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from _common import fill
from idle_rss import status_kb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def timings(send: object, count: int) -> dict[str, float]:
    """p50/p99 in milliseconds of ``count`` calls of ``send`` (after 5 warm-up calls)."""
    assert callable(send)
    for _ in range(5):
        send()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        send()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 1),
            "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        fill(db, args.events)
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "daemon", "--db", str(db), "web",
                                 "--port", str(port)], stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        http = requests.Session()
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.get(url + "/static/style.css", timeout=2)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            time.sleep(2)
            started_rss = status_kb(proc.pid, "VmRSS")

            def page() -> None:
                http.get(url + "/", timeout=30).raise_for_status()

            def listing() -> None:
                http.get(url + "/api/reminders", timeout=30).raise_for_status()

            def add() -> None:
                http.post(url + "/api/reminders", json={"text": "喝水", "at": "明天早上8点",
                                                        "every": "daily"},
                          timeout=30).raise_for_status()

            figures = {"GET /": timings(page, args.requests),
                       "GET /api/reminders": timings(listing, args.requests),
                       "POST /api/reminders": timings(add, args.requests)}
            time.sleep(2)
            after_rss, peak = status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(30)
    print(json.dumps({"events": args.events, "requests": args.requests,
                      "idle_rss_mb": round(started_rss / 1024, 1),
                      "rss_after_requests_mb": round(after_rss / 1024, 1),
                      "peak_rss_mb": round(peak / 1024, 1), **figures}, ensure_ascii=False))


if __name__ == "__main__":
    main()
