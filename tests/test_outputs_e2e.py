"""End to end: the real daemon delivering through desktop (private D-Bus), speaker, webhook."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from audio_fixtures import alsa_home, require
from daemon_fixtures import Daemon, cli, iso, occurrences, utc, wait_for
from dbus_fixtures import NotificationServer
from pytest_httpserver import HTTPServer

pytestmark = pytest.mark.slow


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path (a task has at most 200 characters)."""
    folder = Path(tempfile.mkdtemp(prefix="chime-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def add(db: Path, config: Path, task: str, at: datetime, *outputs: str) -> None:
    args = ["add", task, "--at", iso(at), "--lead", "2s"]
    for name in outputs:
        args += ["--output", name]
    result = cli(db, *args, config=config)
    assert result.returncode == 0, result.stderr


def test_snooze_button_repeats_the_reminder_exactly_once(db_path: Path, tmp_path: Path,
                                                         bus: str) -> None:
    server = NotificationServer(bus)
    config = tmp_path / "config.toml"
    config.write_text('[desktop]\nsnooze = "3s"\n')
    daemon = Daemon(db_path, config)
    try:
        daemon.wait_ready()
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=5)
        add(db_path, config, "买咖啡", at, "desktop", "console")
        (first,) = server.wait_for(1, timeout=30)
        assert first.summary == "买咖啡"
        assert first.actions == ["done", "完成", "snooze", "稍后提醒"]
        clicked = time.time()
        server.emit_action(first.id, "snooze")
        server.emit_closed(first.id, 2)  # a real server closes it after the click
        repeat = server.wait_for(2, timeout=30)[1]
        server.emit_action(repeat.id, "done")
        wait_for(lambda: all(o["acknowledged_at"] for o in occurrences(db_path)), 10,
                 "the repeat acknowledged")
        time.sleep(3.0)  # a duplicate repeat would have arrived by now
        notes = list(server.notifications)
    finally:
        assert daemon.stop() == 0
        server.close()
    assert len(notes) == 2, notes
    assert repeat.summary == first.summary
    assert repeat.actions == first.actions  # the repeat can be snoozed again
    assert 2.0 <= repeat.received - clicked < 3.0 + 6.0, repeat.received - clicked
    rows = occurrences(db_path)
    assert len(rows) == 2
    original, again = rows
    assert original["status"] == "delivered" and original["acknowledged_at"] is not None
    assert again["snoozed_from"] == original["id"] and again["status"] in ("delivered", "late")
    assert (first.body, repeat.body) == (original["message"], again["message"])
    snoozed_at = utc(again["scheduled_at"]).timestamp()
    assert 2.0 <= snoozed_at - clicked <= 6.0
    for row in rows:
        results = json.loads(row["results"])
        assert results["desktop"]["ok"] and results["console"]["ok"], results
    assert sum(" 买咖啡 — " in line for line in daemon.stdout_lines()) == 2


def test_no_notification_server_is_recorded_and_console_still_delivers(
        db_path: Path, tmp_path: Path, bus: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    daemon = Daemon(db_path, config)
    try:
        daemon.wait_ready()
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=4)
        add(db_path, config, "取快递", at, "desktop", "console")
        wait_for(lambda: any(o["status"] not in ("pending", "prepared", "delivering")
                             for o in occurrences(db_path)), 30, "the delivery")
    finally:
        assert daemon.stop() == 0
    (row,) = occurrences(db_path)
    results = json.loads(row["results"])
    assert row["status"] == "delivered"
    assert results["console"]["ok"] is True
    assert results["desktop"]["ok"] is False
    assert "no notification server" in results["desktop"]["error"]
    assert "DBUS_SESSION_BUS_ADDRESS" in results["desktop"]["error"]
    assert "desktop: " in row["error"]
    assert sum(" 取快递 — " in line for line in daemon.stdout_lines()) == 1


def test_hostile_text_reaches_every_output_verbatim_and_runs_nothing(
        db_path: Path, tmp_path: Path, bus: str, isolated_env: Path, short_dir: Path,
        httpserver: HTTPServer) -> None:
    require("espeak-ng", "espeak-ng")
    require("aplay", "alsa-utils")
    sink = tmp_path / "sink.raw"
    alsa_home(isolated_env, sink)  # the daemon inherits HOME: aplay writes into the sink
    canary, victim = short_dir / "p", short_dir / "v"
    victim.mkdir()
    task = (f"他说\"别'忘'了\" $(touch {canary}) `touch {canary}` ; rm -rf {victim} && "
            f"echo 🎉🔔 <b>&amp;</b> {'很' * 40}")
    assert len(task) <= 200
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    config = tmp_path / "config.toml"
    config.write_text(f'[webhook]\nurl = "{httpserver.url_for("/hook")}"\n')
    server = NotificationServer(bus)
    daemon = Daemon(db_path, config)
    try:
        daemon.wait_ready()
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=5)
        add(db_path, config, task, at, "console", "desktop", "speaker", "webhook")
        wait_for(lambda: any(o["status"] not in ("pending", "prepared", "delivering")
                             for o in occurrences(db_path)), 60, "the delivery")
        (note,) = server.wait_for(1)
    finally:
        assert daemon.stop() == 0
        server.close()
    (row,) = occurrences(db_path)
    results = json.loads(row["results"])
    assert all(r["ok"] for r in results.values()), results
    assert row["task"] == task
    assert (note.summary, note.body) == (task, row["message"])
    body = json.loads(httpserver.log[0][0].get_data())
    assert (body["task"], body["message"], body["occurrence_id"]) == (task, row["message"],
                                                                     row["id"])
    assert results["speaker"]["detail"].startswith("spoke ") and sink.stat().st_size > 0
    assert sum(f" {task} — " in line for line in daemon.stdout_lines()) == 1
    assert not canary.exists() and victim.is_dir()
