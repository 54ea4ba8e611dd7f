"""End to end: the real daemon delivers each reminder once, on time, across crashes and downtime."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from daemon_fixtures import Daemon, cli, iso, occurrences, utc, wait_for

pytestmark = pytest.mark.slow


def test_reminders_are_delivered_once_and_on_time(db_path: Path) -> None:
    daemon = Daemon(db_path)
    try:
        daemon.wait_ready()
        # Four CLI calls come first; each can take seconds on a loaded 2-core machine.
        base = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=15)
        tasks = {f"任务{i}": base + timedelta(seconds=i) for i in range(4)}
        for task, at in tasks.items():
            assert cli(db_path, "add", task, "--at", iso(at), "--lead", "2s").returncode == 0
        wait_for(lambda: sum(o["status"] != "pending" and o["status"] != "prepared"
                             for o in occurrences(db_path)) >= 4,
                 timeout=30, what="four deliveries")
        time.sleep(1.5)  # anything duplicated would show up by now
    finally:
        assert daemon.stop() == 0
    rows = occurrences(db_path)
    assert sorted(r["task"] for r in rows) == sorted(tasks)
    for row in rows:
        assert row["status"] == "delivered", row
        lateness = (utc(row["delivered_at"]) - tasks[row["task"]]).total_seconds()
        assert 0 <= lateness < 1.0, (row["task"], lateness)
        assert row["prepared_at"] is not None and utc(row["prepared_at"]) < tasks[row["task"]]
        assert row["task"] in row["message"]
    lines = daemon.stdout_lines()
    for task in tasks:
        assert sum(f" {task} — " in line for line in lines) == 1, lines


def test_kill_9_between_prepare_and_deliver(db_path: Path) -> None:
    daemon = Daemon(db_path)
    daemon.wait_ready()
    at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=12)
    assert cli(db_path, "add", "取快递", "--at", iso(at), "--lead", "10s").returncode == 0
    wait_for(lambda: any(o["status"] == "prepared" for o in occurrences(db_path)), 10, "prepared")
    prepared = occurrences(db_path)[0]
    daemon.stop(signal.SIGKILL)
    assert datetime.now(timezone.utc) < at - timedelta(seconds=2), "machine too slow for this test"
    again = Daemon(db_path)
    try:
        again.wait_ready()
        wait_for(lambda: occurrences(db_path)[0]["status"] == "delivered", 30, "delivery")
        time.sleep(1.0)
    finally:
        assert again.stop() == 0
    row = occurrences(db_path)[0]
    assert row["message"] == prepared["message"]  # the prepared text survived the crash
    assert 0 <= (utc(row["delivered_at"]) - at).total_seconds() < 1.0
    assert sum("取快递" in line for line in again.stdout_lines() + daemon.stdout_lines()) == 1


def test_downtime_late_within_grace_and_missed_beyond(db_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\ngrace = "5s"\n')
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    assert cli(db_path, "add", "早就过了", "--at", iso(soon), config=config).returncode == 0
    later = soon + timedelta(seconds=7)
    assert cli(db_path, "add", "刚刚过了", "--at", iso(later), config=config).returncode == 0
    wait_for(lambda: datetime.now(timezone.utc) > later + timedelta(seconds=1), 20, "both to pass")
    daemon = Daemon(db_path, config)
    try:
        daemon.wait_ready()
        wait_for(lambda: len(occurrences(db_path)) == 2 and all(
            o["status"] in ("late", "missed") for o in occurrences(db_path)), 20, "catch-up")
        time.sleep(1.0)
    finally:
        assert daemon.stop() == 0
    by_task = {o["task"]: o for o in occurrences(db_path)}
    assert by_task["早就过了"]["status"] == "missed"
    assert by_task["早就过了"]["delivered_at"] is None
    assert by_task["刚刚过了"]["status"] == "late"
    lines = daemon.stdout_lines()
    assert sum("刚刚过了" in line and "(late)" in line for line in lines) == 1
    assert not any("早就过了" in line for line in lines)
    log = cli(db_path, "log", "--json", config=config)
    assert {r["status"] for r in __import__("json").loads(log.stdout)} == {"late", "missed"}


def test_edit_and_remove_while_running_are_replanned(db_path: Path) -> None:
    daemon = Daemon(db_path)
    try:
        daemon.wait_ready()
        # Both are planned well ahead; each CLI call can take seconds on a loaded machine, so
        # the new time is chosen only once the adds are done.
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=60)
        keep = str(json.loads(cli(db_path, "add", "保留", "--at", iso(at), "--lead", "1s",
                                  "--json").stdout)["id"])
        drop = str(json.loads(cli(db_path, "add", "删除", "--at", iso(at), "--lead", "1s",
                                  "--json").stdout)["id"])
        moved = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=10)
        assert cli(db_path, "edit", keep, "--at", iso(moved)).returncode == 0
        assert cli(db_path, "remove", drop).returncode == 0
        wait_for(lambda: any(o["status"] == "delivered" for o in occurrences(db_path)), 30, "delivery")
        time.sleep(1.5)
    finally:
        assert daemon.stop() == 0
    rows = occurrences(db_path)
    assert [(r["task"], r["status"]) for r in rows] == [("保留", "delivered")]
    assert 0 <= (utc(rows[0]["delivered_at"]) - moved).total_seconds() < 1.0
