"""SIGHUP: the real daemon applies the new settings, names those that need a restart, and the
buttons of a notification shown before the reload still work after it."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from daemon_fixtures import Daemon, cli, occurrences, wait_for
from dbus_fixtures import NotificationServer

from daemon.config import load_settings
from daemon.service import restart_needed

pytestmark = pytest.mark.slow


def test_restart_needed_names_each_changed_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\nlead = "2m"\n')
    old = load_settings(config, tmp_path / "chime.db")
    config.write_text('[daemon]\nlead = "3m"\ntime_sync_max_wait = "1m"\n'
                      '[web]\nport = 9000\n[speaker]\nvolume = 50\n')
    new = load_settings(config, tmp_path / "chime.db")
    assert restart_needed(old, new) == [
        "[daemon] time_sync_max_wait: restart chime to apply it",
        "[web] port: restart chime web to apply it"]
    assert restart_needed(old, old) == []


def test_reload_applies_settings_and_keeps_the_buttons(db_path: Path, tmp_path: Path,
                                                      bus: str) -> None:
    server = NotificationServer(bus)
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\nlog_level = "INFO"\n')
    daemon = Daemon(db_path, config)
    try:
        daemon.wait_ready()
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=4)
        added = cli(db_path, "add", "吃药", "--at", at.isoformat(), "--lead", "2s",
                    "--output", "desktop", config=config)
        assert added.returncode == 0, added.stderr
        (shown,) = server.wait_for(1, timeout=30)

        config.write_text('[daemon]\nlog_level = "DEBUG"\ntime_sync_max_wait = "1m"\n')
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in daemon.err.read_text(), 20, "the reload")
        server.emit_action(shown.id, "done")  # a button of the notification shown before
        wait_for(lambda: occurrences(db_path)[0]["acknowledged_at"] is not None, 15,
                 "the done button pressed after the reload acknowledged the reminder")
        time.sleep(1.5)  # a re-plan or two at DEBUG
    finally:
        assert daemon.stop() == 0
        server.close()
    log = daemon.err.read_text()
    after = log[log.index("configuration reloaded"):]
    assert "reloaded, but [daemon] time_sync_max_wait: restart chime to apply it" in log
    assert "DEBUG daemon." in after and "DEBUG daemon." not in log[:log.index("reloaded, but")]
    assert "Traceback" not in log
