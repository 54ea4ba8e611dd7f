"""Trusting the clock: RTC detection, synchronisation sources, the wait, step detection."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from daemon.clock import FixedClock
from daemon.config import load_settings
from daemon.errors import ConfigError
from daemon.timesync import JumpDetector, TimeSync, has_rtc, kernel_synchronized, should_wait


def test_rtc_detection(tmp_path: Path) -> None:
    assert has_rtc(tmp_path) is False
    (tmp_path / "sys/class/rtc/rtc0").mkdir(parents=True)
    assert has_rtc(tmp_path) is True
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R32 (release), REVISION: 7.1\n")
    assert has_rtc(tmp_path) is False  # a Jetson's RTC has no battery


def test_wait_setting_wins_over_detection() -> None:
    assert should_wait(True) is True and should_wait(False) is False
    assert should_wait(None) is (not has_rtc())


def test_kernel_status_is_read_without_privileges() -> None:
    assert kernel_synchronized() in (True, False, None)


def test_time_sync_waits_for_the_flag_then_for_the_deadline(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    sync = TimeSync(True, timedelta(minutes=5), str(flag))
    assert sync.state == "waiting" and not sync.check()
    flag.touch()
    assert sync.check() and sync.state == "synchronised"
    assert not sync.check()  # reported once
    gave_up = TimeSync(True, timedelta(0), str(tmp_path / "never"))
    assert gave_up.check() and gave_up.state == "unsynchronised"
    assert TimeSync(False, timedelta(minutes=5), str(tmp_path / "never")).trusted


def test_jump_detector_sees_steps_not_ticks() -> None:
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    jumps = JumpDetector(clock)
    time.sleep(0.05)
    clock.at += timedelta(seconds=0.05)
    assert jumps.check() is None
    before = clock.at
    clock.at += timedelta(hours=2)
    seen = jumps.check()
    assert seen is not None and seen[0] == before
    assert abs(seen[1] - timedelta(hours=2)) < timedelta(seconds=1)
    clock.at -= timedelta(hours=1)
    seen = jumps.check()
    assert seen is not None and abs(seen[1] + timedelta(hours=1)) < timedelta(seconds=1)


def test_config_keys_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\nwait_for_time_sync = true\ntime_sync_max_wait = "2m"\n')
    monkeypatch.delenv("CHIME_WAIT_FOR_TIME_SYNC")
    settings = load_settings(config)
    assert settings.daemon.wait_for_time_sync is True
    assert settings.daemon.time_sync_max_wait == timedelta(minutes=2)
    assert load_settings().daemon.wait_for_time_sync is None  # unset: decided by the board
    monkeypatch.setenv("CHIME_WAIT_FOR_TIME_SYNC", "0")
    assert load_settings(config).daemon.wait_for_time_sync is False
    monkeypatch.setenv("CHIME_WAIT_FOR_TIME_SYNC", "maybe")
    with pytest.raises(ConfigError, match="CHIME_WAIT_FOR_TIME_SYNC"):
        load_settings(config)
    monkeypatch.setenv("CHIME_WAIT_FOR_TIME_SYNC", "1")
    config.write_text('[daemon]\ntime_sync_max_wait = "2d"\ntime_sync_flag = "synced"\n')
    with pytest.raises(ConfigError, match=r"time_sync_max_wait: must be between 0 and 1d.*"
                                          r"time_sync_flag: must be an absolute path"):
        load_settings(config)
    config.write_text('[daemon]\nwait_for_time_sync = "yes"\n')
    with pytest.raises(ConfigError, match=r"\[daemon\] wait_for_time_sync: expected true or false"):
        load_settings(config)
