"""Shared fixtures: every test gets its own HOME, XDG dirs and database in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from daemon.app import App
from daemon.clock import FixedClock
from daemon.config import Settings, load_settings

if TYPE_CHECKING:
    from daemon.generation.files import ModelFiles
    from tests.tinymodel import TinyModel


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Redirect HOME, XDG and the database into tmp_path; fix the zone to Asia/Shanghai."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("CHIME_TIMEZONE", "Asia/Shanghai")
    # This machine has no RTC and no NTP client: tests that wait for time sync ask for it.
    monkeypatch.setenv("CHIME_WAIT_FOR_TIME_SYNC", "0")
    for var in ("CHIME_DB", "CHIME_CONFIG", "STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "chime.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return load_settings(db=db_path)


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    application = App(settings)
    yield application
    application.close()


@pytest.fixture
def fixed_app(settings: Settings) -> Iterator[App]:
    """An App whose clock stands at 2026-11-28 10:00 Asia/Shanghai (a Saturday)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    application = App(settings, FixedClock(datetime(2026, 11, 28, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))))
    yield application
    application.close()


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private D-Bus session bus for this test (the daemon and CLI children inherit it)."""
    from dbus_fixtures import private_bus

    with private_bus() as address:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        yield address


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyModel]:
    """The tiny BLOOM + LoRA in hub layout (trained once per session, a few seconds)."""
    from tests.tinymodel import build_tiny

    root = tmp_path_factory.mktemp("tinymodel")
    with pytest.MonkeyPatch.context() as mp:  # no library cache may touch the real home
        mp.setenv("HF_HOME", str(root / "hf-home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield build_tiny(root / "model")


@pytest.fixture(scope="session")
def installed(tiny: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """A models dir with base + adapter pulled (the pickle converted) and a merged int8 build."""
    from daemon.generation.build import build
    from daemon.generation.files import ModelFiles, pull

    files = ModelFiles(tmp_path_factory.mktemp("models"))
    pull(str(tiny.base), "base", files)
    pull(str(tiny.adapter_bin), "adapter", files)
    build(files, merge=True)
    return files


# Property tests explore the same examples on every run: CI must never be flaky.
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200)
hypothesis_settings.load_profile("ci")
