"""Peak memory of `chime run` while the forecast, the holiday feed and a calendar subscription
each answer with a 1 GiB body (generated lazily by a loopback server, never held in memory):
the daemon streams each answer and gives up at its size cap, so its peak stays near idle.

Run: .venv/bin/python bench/hostile_rss.py [--settle 20] [--mode huge]
(``--mode 500`` gives the baseline: the same three failures with tiny answers.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import status_kb  # noqa: E402

from daemon.app import App  # noqa: E402
from daemon.calendars import subscribe  # noqa: E402
from daemon.config import load_settings  # noqa: E402
from tests.hostile_server import HUGE, HostileServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait at most")
    parser.add_argument("--mode", default="huge", help="how the server misbehaves")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, HostileServer() as server:
        server.mode = args.mode
        db, config, err = Path(tmp) / "bench.db", Path(tmp) / "config.toml", Path(tmp) / "err"
        config.write_text(
            f'[location]\nlatitude = 31.23\nlongitude = 121.47\n'
            f'[weather]\nbase_url = "{server.url("/weather")}"\n'
            f'[days]\nholiday_feed = "{server.url("/holidays.ics")}"\n', encoding="utf-8")
        app = App(load_settings(config, db))
        subscribe(app, server.url("/cal/basic.ics"), every="5m")
        app.db.close()
        with err.open("w") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "daemon", "--db", str(db),
                                     "--config", str(config), "run"],
                                    stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline and "daemon.calendars" not in err.read_text():
            time.sleep(0.2)
        peak, rss = status_kb(proc.pid, "VmHWM"), status_kb(proc.pid, "VmRSS")
        proc.terminate()
        proc.wait(30)
        refusals = [line.split("WARNING", 1)[1].strip()
                    for line in err.read_text().splitlines() if "WARNING" in line]
    print(json.dumps({"mode": args.mode, "huge_body_bytes": HUGE, "answers": 3,
                      "bytes_sent_before_the_daemon_hung_up_mb": round(server.sent / 2**20, 1),
                      "peak_rss_mb": round(peak / 1024, 1), "rss_after_mb": round(rss / 1024, 1),
                      "errors_logged": refusals}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
