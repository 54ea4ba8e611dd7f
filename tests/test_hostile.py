"""Hostile servers: weather, holiday feed and calendar clients against a loopback server that
never answers, trickles, fails, loops, lies about its format or sends far too much.

For each: the refresh returns within its budget (one deadline for the whole call), memory stays
bounded (the 1 GiB body is streamed and cut), the error is recorded once per refresh, and the
last good cache keeps serving.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.calendars import subscribe, sync_due
from daemon.config import load_settings
from daemon.context.days import validate_feed
from daemon.context.weather import OpenMeteo, WeatherService
from daemon.http import FetchPolicy
from daemon.http_cache import cached_document, fetch_cached
from daemon.http_client import Client
from daemon.store.db import Database
from daemon.store.models import Event, Forecast, Subscription
from tests.calendar_fixtures import NOW, corpus_text, make_app
from tests.context_fixtures import FORECAST_START, Sleeps, payload_bytes
from tests.daemon_fixtures import Daemon, cli, occurrences, utc, wait_for
from tests.hostile_server import MODES, HostileServer

BUDGET = 2.0  # seconds: the whole call, every attempt included
SLACK = 4.0  # a loaded 2-core CI machine; a server that held us would take 30 s or more
MAX_GROWTH_KB = 100 * 1024  # peak RSS growth allowed while reading a hostile answer
WEATHER_NOW = FORECAST_START + timedelta(hours=26)
RAIN_AT = WEATHER_NOW + timedelta(hours=2, minutes=30)  # hour 28 of the recording: 小雨


def policy() -> FetchPolicy:
    return FetchPolicy(connect_timeout=1.0, read_timeout=1.0, retries=1, backoff=0.1,
                       total_timeout=BUDGET, sleep=Sleeps())


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        srv.good = {"json": payload_bytes("forecast_shanghai.json"),
                    "ics": corpus_text("google_work.ics").encode()}
        yield srv


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.INFO, logger="daemon")
    return lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def hostile(server: HostileServer, mode: str, refresh: Callable[[], object]) -> float:
    """Run one refresh against ``mode``; returns how long it took. Memory must stay bounded."""
    server.mode = mode
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        refresh()
    finally:
        server.mode = "good"
    elapsed = time.monotonic() - started
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert growth < MAX_GROWTH_KB, f"{mode}: peak RSS grew by {growth} KiB"
    assert elapsed < BUDGET + SLACK, f"{mode}: the refresh took {elapsed:.1f}s"
    return elapsed


@pytest.mark.parametrize("mode", MODES)
def test_weather_survives(mode: str, server: HostileServer, tmp_path: Path,
                          warnings: Callable[[], list[str]]) -> None:
    db = Database(tmp_path / "chime.db")
    client = OpenMeteo(Client(), policy(), base_url=server.url(f"/{mode}"))
    weather = WeatherService(db, client, 31.23, 121.47, refresh=timedelta(minutes=60))
    assert weather.refresh(WEATHER_NOW)  # the last good forecast
    assert weather.reading(RAIN_AT, WEATHER_NOW).word == "小雨"
    later = WEATHER_NOW + timedelta(hours=2)
    hostile(server, mode, lambda: weather.refresh(later))
    assert len(warnings()) == 1, warnings()  # once per refresh, whatever the retries
    with db.session() as s:
        error = s.get(Forecast, weather.key).payload["error"]  # type: ignore[union-attr]
    assert error and "\n" not in error
    reading = weather.reading(RAIN_AT, later)
    assert (reading.word, reading.source) == ("小雨", "live")  # the cache keeps serving
    db.close()


@pytest.mark.parametrize("mode", MODES)
def test_holiday_feed_survives(mode: str, server: HostileServer, tmp_path: Path) -> None:
    db = Database(tmp_path / "chime.db")
    url, client = server.url(f"/{mode}/holidays.ics"), Client()

    def fetch(now: datetime):  # type: ignore[no-untyped-def]
        return fetch_cached(db, client, url, now=now, policy=policy(), validate=validate_feed)

    good = fetch(NOW)
    assert good.error is None and good.body
    doc = None

    def refresh() -> None:
        nonlocal doc
        doc = fetch(NOW + timedelta(days=1))

    hostile(server, mode, refresh)
    assert doc is not None and doc.error is not None and "\n" not in str(doc.error)
    assert doc.body == good.body and cached_document(db, url).body == good.body  # type: ignore[union-attr]
    db.close()


@pytest.mark.parametrize("mode", MODES)
def test_calendar_subscription_survives(mode: str, server: HostileServer, tmp_path: Path,
                                        warnings: Callable[[], list[str]]) -> None:
    app: App = make_app(tmp_path / "chime.db")
    sub = subscribe(app, server.url(f"/{mode}/basic.ics"), every="5m")
    sync_due(app, NOW, policy())
    assert not warnings()

    def events() -> list[tuple[str | None, str]]:
        with app.db.session() as s:
            return [(e.uid, e.dtstart) for e in s.scalars(select(Event).order_by(Event.id))]

    before = events()
    assert before
    hostile(server, mode, lambda: sync_due(app, NOW + timedelta(minutes=10), policy()))
    assert len(warnings()) == 1, warnings()
    with app.db.session() as s:
        error = s.get(Subscription, sub.id).last_error  # type: ignore[union-attr]
    assert error and "\n" not in error
    assert events() == before  # the last good calendar keeps its reminders
    app.db.close()


def write_config(path: Path, server: HostileServer) -> Path:
    path.write_text(f"""
[daemon]
outputs = ["console"]
[location]
latitude = 31.23
longitude = 121.47
[weather]
base_url = "{server.url('/weather')}"
[days]
holiday_feed = "{server.url('/holidays.ics')}"
""", encoding="utf-8")
    return path


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_the_daemon_delivers_on_time_while_every_server_sends_a_gigabyte(
        tmp_path: Path) -> None:
    """The real daemon: forecast, holiday feed and calendar each answer with 1 GiB (streamed,
    never held); the reminder still rings on time, memory stays small, each error is logged
    once."""
    db = tmp_path / "chime.db"
    with HostileServer() as server:
        server.mode = "huge"
        config = write_config(tmp_path / "config.toml", server)
        app = App(load_settings(config, db))
        subscribe(app, server.url("/work/basic.ics"), every="5m")
        app.db.close()
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=12)
        added = cli(db, "add", "吃药", "--at", at.isoformat(), "--lead", "3s", config=config)
        assert added.returncode == 0, added.stderr
        daemon = Daemon(db, config)
        try:
            daemon.wait_ready()
            wait_for(lambda: any(o["status"] in ("delivered", "late", "failed")
                                 for o in occurrences(db)), 40, "the delivery")
            wait_for(lambda: "calendar" in daemon.err.read_text(), 40, "the calendar sync")
            peak = peak_rss_mb(daemon.proc.pid)
        finally:
            assert daemon.stop() == 0
    row = occurrences(db)[0]
    assert row["status"] == "delivered", row
    assert 0 <= (utc(row["delivered_at"]) - at).total_seconds() < 2.0
    assert peak < 200, f"peak RSS {peak:.0f} MB"  # 1 GiB bodies would need five times that
    warnings = [line for line in daemon.err.read_text().splitlines() if "WARNING" in line]
    for what in ("weather:", "holiday feed:", "calendar"):
        assert sum(what in line for line in warnings) == 1, warnings
