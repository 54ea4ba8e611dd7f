"""End to end: the real daemon nags until a reminder is acknowledged — from the CLI, the desktop
notification (private D-Bus), the web API of a running `chime web`, and the phone push's button
(the ntfy action POSTed as it was published) — and neither loses nor doubles a repeat across a
``kill -9``."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from daemon_fixtures import Daemon, child_env, chime_cmd, cli, iso, occurrences, utc, wait_for
from dbus_fixtures import NotificationServer
from ntfy_fixtures import NtfyServer
from pytest_httpserver import HTTPServer
from web_fixtures import WebProcess

from daemon.nag import follow_up

pytestmark = pytest.mark.slow

OPEN = ("pending", "prepared", "delivering")


AHEAD = timedelta(seconds=8)  # a CLI call on a loaded 2-core machine takes 1-3 s


def add_all(db: Path, config: Path, tasks: list[str], *options: str) -> list[int]:
    """Add reminders due in 8 s, all at once (one CLI process each); their ids."""
    at = datetime.now(timezone.utc).replace(microsecond=0) + AHEAD
    procs = [subprocess.Popen(
        [*chime_cmd(), "--db", str(db), "--config", str(config), "add", task, "--at", iso(at),
         "--lead", "2s", "--json", *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=child_env()) for task in tasks]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ids.append(int(json.loads(out)["id"]))
    return ids


def chain(db: Path, event_id: int) -> list[dict[str, Any]]:
    """The event's rows: the reminder first, then its repeats in order."""
    rows = [r for r in occurrences(db) if r["event_id"] == event_id]
    return sorted(rows, key=lambda r: (r["repeat"], r["id"]))


def delivered(db: Path, event_id: int, repeat: int) -> dict[str, Any] | None:
    for row in chain(db, event_id):
        if row["repeat"] == repeat and row["status"] not in OPEN:
            return row
    return None


def test_nagging_stops_when_acknowledged_from_each_channel(
        db_path: Path, tmp_path: Path, bus: str, httpserver: HTTPServer) -> None:
    desktop = NotificationServer(bus)
    ntfy = NtfyServer(httpserver)
    web = WebProcess(db_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[daemon]\noutputs = ["console", "desktop", "ntfy"]\n'
                      f'[ntfy]\nurl = "{ntfy.url}"\ntopic = "chime-e2e"\n'
                      f'[web]\npublic_url = "{web.url}"\n', encoding="utf-8")
    daemon = Daemon(db_path, config)
    channels = ("cli", "desktop", "web", "push")
    try:
        daemon.wait_ready()
        ids = add_all(db_path, config, [f"吃药-{by}" for by in channels], "--nag", "3s",
                      "--nag-max", "6")
        events = dict(zip(channels, ids, strict=True))
        for by, event_id in events.items():
            wait_for(lambda e=event_id: delivered(db_path, e, 1) is not None, 30,  # type: ignore[misc]
                     f"the first repeat of {by}")
            repeat = delivered(db_path, event_id, 1)
            assert repeat is not None
            task = f"吃药-{by}"
            if by == "cli":
                assert cli(db_path, "done", str(repeat["id"]), config=config).returncode == 0
            elif by == "desktop":
                notes = [n for n in desktop.notifications if n.summary == task]
                assert notes[1].body == repeat["message"]
                desktop.emit_action(notes[1].id, "done")
            elif by == "web":
                answer = requests.post(f"{web.url}/api/occurrences/{repeat['id']}/done",
                                       json={}, timeout=30)
                assert answer.status_code == 200, answer.text
            else:  # the phone: press 完成 on the repeat's push, as ntfy's app would
                pushed = [m for m in ntfy.messages if m["title"] == task]
                press = pushed[1]["actions"][0]
                assert press["label"] == "完成" and press["url"].startswith(web.url)
                answer = requests.request(press["method"], press["url"],
                                          headers=press["headers"], data=press.get("body"),
                                          timeout=30)
                assert answer.status_code == 200, answer.text
        for by, event_id in events.items():
            wait_for(lambda e=event_id: all(r["status"] not in OPEN  # type: ignore[misc]
                                            for r in chain(db_path, e)), 20,
                     f"the nagging of {by} to stop")
        counts = {e: len(chain(db_path, e)) for e in events.values()}
        time.sleep(3.5)  # longer than the interval: a repeat planned anyway would show now
        assert {e: len(chain(db_path, e)) for e in events.values()} == counts
        log = json.loads(cli(db_path, "log", "--json", "--limit", "100", config=config).stdout)
    finally:
        assert daemon.stop() == 0
        web.stop()
        desktop.close()
    by_id = {row["id"]: row for row in log}
    lines = daemon.stdout_lines()
    for by, event_id in events.items():
        rows = [r for r in chain(db_path, event_id) if r["status"] != "cancelled"]
        root, repeats = rows[0], rows[1:]
        assert root["acknowledged_by"] == by, (by, root)
        acknowledged = utc(root["acknowledged_at"])
        assert root["status"] == "delivered"
        assert 1 <= len(repeats) < 6, (by, rows)  # it stopped because of the acknowledgement
        for number, row in enumerate(repeats, 1):
            assert (row["repeat"], row["repeat_of"]) == (number, root["id"])
            assert row["status"] in ("delivered", "late") and row["delivered_at"]
            assert utc(row["scheduled_at"]) <= acknowledged  # none planned after it
            assert row["message"] == follow_up(f"吃药-{by}", utc(root["scheduled_at"]).astimezone(
                ZoneInfo("Asia/Shanghai")))
            assert by_id[row["id"]]["repeat"] == number and by_id[row["id"]]["delivered_at"]
        assert by_id[root["id"]]["acknowledged_by"] == by
        assert by_id[root["id"]]["acknowledged_at"]
        task = f"吃药-{by}"
        assert sum(f" {task} — " in line for line in lines) == len(rows)
        assert len([m for m in ntfy.messages if m["title"] == task]) == len(rows)
        assert len([n for n in desktop.notifications if n.summary == task]) == len(rows)
        assert [m["priority"] for m in ntfy.messages if m["title"] == task][:2] == [3, 4]


def test_kill_9_between_repeats_neither_loses_nor_doubles_one(
        db_path: Path, tmp_path: Path, httpserver: HTTPServer) -> None:
    ntfy = NtfyServer(httpserver)
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    quiet = f"{(local - timedelta(hours=1)):%H}:00-{(local + timedelta(hours=2)):%H}:00"
    config = tmp_path / "config.toml"
    config.write_text(f'[daemon]\noutputs = ["console", "speaker", "ntfy"]\n'
                      f'[speaker]\nquiet_hours = "{quiet}"\n'
                      f'[ntfy]\nurl = "{ntfy.url}"\ntopic = "chime-e2e"\n', encoding="utf-8")
    first = Daemon(db_path, config)
    first.wait_ready()
    (event_id,) = add_all(db_path, config, ["关煤气"], "--nag", "3s", "--nag-max", "3",
                   "--priority", "high")
    wait_for(lambda: delivered(db_path, event_id, 1) is not None, 30, "the first repeat")
    first.stop(signal.SIGKILL)
    pending = chain(db_path, event_id)[-1]
    # Between repeats; on a very busy machine maybe while repeat 2 was being sent (resumed).
    assert pending["repeat"] == 2 and pending["status"] in ("prepared", "delivering"), pending
    again = Daemon(db_path, config)
    try:
        again.wait_ready()
        wait_for(lambda: chain(db_path, event_id)[0]["status"] == "unacknowledged", 30,
                 "three repeats, then unacknowledged")
        time.sleep(3.5)  # longer than the interval: a fourth repeat would show now
    finally:
        assert again.stop() == 0
    rows = chain(db_path, event_id)
    assert [r["repeat"] for r in rows] == [0, 1, 2, 3]
    assert all(r["status"] in ("unacknowledged", "delivered", "late") for r in rows)
    pushed = [m for m in ntfy.messages if m["title"] == "关煤气"]
    assert [m["priority"] for m in pushed] == [4, 5, 5, 5]  # high, raised on each repeat
    assert [m["message"] for m in pushed] == [r["message"] for r in rows]
    lines = first.stdout_lines() + again.stdout_lines()
    assert sum(" 关煤气 — " in line for line in lines) == 4
    for row in rows:
        results = json.loads(row["results"])
        assert results["speaker"]["detail"].startswith("skipped: quiet hours"), results
        assert results["ntfy"]["ok"] and results["console"]["ok"], results
