"""Idle memory of `chime run` with 1 000 events (goal ≤ 60 MB; the daemon never imports torch).

Run: .venv/bin/python bench/idle_rss.py [--events 1000] [--settle 15] [--integrated]

Default: no configuration file (console output, no location, no subscription), as a fresh
install runs. ``--integrated``: every part in use, against a loopback server started here — an
Open-Meteo-shaped forecast for ``[location]``, a ``[days] holiday_feed``, one calendar
subscription and the ntfy output — and the idle RSS is read only after the daemon itself has
fetched the forecast and the feed, synced the calendar and pushed one reminder to ntfy.

The daemon's modules are compiled to bytecode first, as pip does when it installs the package
(without it, each start compiles them again: +1 MB, and the import takes longer).
"""

from __future__ import annotations

import argparse
import compileall
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import fill, start_daemon, status_kb

import daemon
from daemon.app import App
from daemon.calendars import subscribe
from daemon.config import load_settings

PARTS = ("forecast", "holidays", "calendar", "ntfy")  # what the daemon must have asked for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--integrated", action="store_true",
                        help="forecast, holiday feed, calendar subscription and ntfy in use")
    args = parser.parse_args()
    compileall.compile_dir(Path(daemon.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        fill(db, args.events)
        if args.integrated:
            figures = integrated(db, Path(tmp), args.settle)
        else:
            proc = start_daemon(db)
            time.sleep(args.settle)
            figures = measure(proc)
    print(json.dumps({"events": args.events, "config": "integrated" if args.integrated
                      else "default", **figures}))


def measure(proc: subprocess.Popen[bytes]) -> dict[str, object]:
    """Idle and peak RSS of the running daemon; stops it."""
    rss, peak = status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    proc.terminate()
    proc.wait(30)
    return {"idle_rss_mb": round(rss / 1024, 1), "peak_rss_mb": round(peak / 1024, 1),
            "torch_loaded": "libtorch" in maps or "/torch/" in maps}


def integrated(db: Path, tmp: Path, settle: float) -> dict[str, object]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Parts)
    server.seen = Counter()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    config = tmp / "config.toml"
    config.write_text(f"""
[daemon]
outputs = ["console", "ntfy"]
[location]
latitude = 31.23
longitude = 121.47
[weather]
base_url = "{base}"
[days]
holiday_feed = "{base}/holidays.ics"
[ntfy]
url = "{base}/"
topic = "chime-bench"
""", encoding="utf-8")
    app = App(load_settings(config, db))
    subscribe(app, f"{base}/calendar.ics", "1h")  # recorded only: the daemon syncs it
    app.db.close()
    at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=20)
    chime = [sys.executable, "-m", "daemon", "--db", str(db), "--config", str(config)]
    subprocess.run([*chime, "add", "喝水", "--at", at.isoformat(), "--lead", "3s"],
                   check=True, capture_output=True, timeout=60)
    log = tmp / "daemon.log"
    with log.open("w") as err:
        proc = subprocess.Popen([*chime, "run"], stdout=subprocess.DEVNULL, stderr=err)
    seen: Counter[str] = server.seen  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while not all(seen[part] for part in PARTS):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"the daemon did not use every part (saw {dict(seen)}):\n"
                             + log.read_text())
        time.sleep(0.5)
    time.sleep(settle)
    figures = measure(proc)
    server.shutdown()
    text = log.read_text()
    for proof in ("weather: forecast stored", "calendar ", "ntfy"):
        if proof not in text:
            raise SystemExit(f"no '{proof}' in the daemon's log:\n{text}")
    return {**figures, "requests": dict(seen)}


def forecast() -> bytes:
    """An Open-Meteo answer (unix times) from yesterday to three days ahead."""
    start = int(time.time()) // 3600 * 3600 - 86400
    times = [start + 3600 * i for i in range(96)]
    return json.dumps({"latitude": 31.25, "longitude": 121.5, "hourly": {
        "time": times, "weather_code": [(3, 61, 0)[i % 3] for i in range(96)],
        "temperature_2m": [8.0 + i % 7 for i in range(96)],
        "precipitation_probability": [i % 100 for i in range(96)]}}).encode()


def calendar(name: str, events: int) -> bytes:
    now = datetime.now(timezone.utc)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//chime bench//EN",
             f"X-WR-CALNAME:{name}"]
    for i in range(events):
        start = (now + timedelta(days=i + 1)).strftime("%Y%m%dT090000Z")
        lines += ["BEGIN:VEVENT", f"UID:{name}-{i}@bench", f"DTSTAMP:{start}",
                  f"DTSTART:{start}", f"SUMMARY:{name} {i}"]
        if i == 0:
            lines.append("RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR")
        lines.append("END:VEVENT")
    return ("\r\n".join([*lines, "END:VCALENDAR"]) + "\r\n").encode()


class Parts(BaseHTTPRequestHandler):
    """Open-Meteo's forecast, two ICS documents and an ntfy server, on loopback."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/v1/forecast":
            self.answer("forecast", forecast(), "application/json")
        elif path == "/holidays.ics":
            self.answer("holidays", calendar("节假日", 5), "text/calendar")
        elif path == "/calendar.ics":
            self.answer("calendar", calendar("工作", 20), "text/calendar")
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer("ntfy", json.dumps({"id": "bench1", "event": "message"}).encode(),
                    "application/json")

    def answer(self, part: str, body: bytes, ctype: str) -> None:
        self.server.seen[part] += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    main()
