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
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.calendars import subscribe, sync_due
from daemon.context.days import validate_feed
from daemon.context.weather import OpenMeteo, WeatherService
from daemon.http import FetchPolicy, new_session
from daemon.http_cache import cached_document, fetch_cached
from daemon.store.db import Database
from daemon.store.models import Event, Forecast, Subscription
from tests.calendar_fixtures import NOW, corpus_text, make_app
from tests.context_fixtures import FORECAST_START, Sleeps, payload_bytes
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
    client = OpenMeteo(new_session(), policy(), base_url=server.url(f"/{mode}"))
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
    url, session = server.url(f"/{mode}/holidays.ics"), new_session()

    def fetch(now: datetime):  # type: ignore[no-untyped-def]
        return fetch_cached(db, session, url, now=now, policy=policy(), validate=validate_feed)

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
