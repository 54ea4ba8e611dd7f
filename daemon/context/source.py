"""Builds the Context for an instant: cached forecast, kind of day, part of day.

``ContextProvider`` is the project's context source (``App.context_source``):

* ``refresh(now)`` — called periodically by the daemon and once by ``chime context``; fetches
  the forecast and the holiday feed only when due, is cheap when not, never raises (logs).
* ``context_for(at)`` — reads only the local cache (SQLite) and the calendars; never touches
  the network, never raises: a broken part degrades to a well-formed word and a note.

``LocalContext`` is the last resort (no database, no libraries beyond the clock): the delivery
path falls back to it if the provider itself fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

from daemon.clock import Clock
from daemon.config import Settings
from daemon.context import Context
from daemon.context.daypart import part_of_day
from daemon.context.days import Day, DayCalendar, validate_feed, weekday_day
from daemon.context.weather import (
    UNKNOWN_WEATHER,
    OpenMeteo,
    Reading,
    WeatherService,
    unknown,
)
from daemon.context.workdays import HolidayFeed
from daemon.http import FetchPolicy
from daemon.http_cache import fetch_cached
from daemon.store.db import Database

if TYPE_CHECKING:
    from daemon.http_client import Client

log = logging.getLogger("daemon.context")


class ContextProvider:
    """The full context source over the database's forecast and feed caches."""

    def __init__(self, settings: Settings, db: Database, clock: Clock,
                 client: Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.bounds = settings.days.parts_of_day
        days = settings.days
        self.calendar = DayCalendar(
            days.country,
            days.festivals,
            periods=days.periods,
            personal=days.personal,
        )
        w = settings.weather
        self.policy = FetchPolicy(connect_timeout=w.connect_timeout, read_timeout=w.read_timeout,
                                  retries=w.retries, sleep=sleep)
        self.client = client  # made on first need: a context that fetches nothing loads no urllib3
        self.weather: WeatherService | None = None
        loc = settings.location
        if loc.latitude is not None and loc.longitude is not None:
            forecasts = OpenMeteo(self._http(), self.policy, base_url=w.base_url,
                                  forecast_days=w.forecast_days, air_quality_url=w.air_quality_url)
            self.weather = WeatherService(db, forecasts, loc.latitude, loc.longitude, w.refresh)
        self.feed = (HolidayFeed(db, days.holiday_feed, lambda: clock.now().date())
                     if days.holiday_feed else None)
        self._lock = threading.Lock()

    def _http(self) -> Client:
        if self.client is None:
            from daemon.http_client import Client

            self.client = Client()
        return self.client

    # --- refresh (network, when due) ------------------------------------------------------

    def refresh(self, now: datetime) -> None:
        """Fetch what is due (forecast, holiday feed); never raises, cheap when nothing is."""
        if not self._lock.acquire(blocking=False):
            return  # a refresh is already running in another thread
        try:
            if self.weather is not None:
                try:
                    self.weather.refresh(now)
                except Exception:
                    log.exception("refreshing the forecast failed")
            feed = self.settings.days.holiday_feed
            if feed:
                try:
                    doc = fetch_cached(self.db, self._http(), feed, now=now, policy=self.policy,
                                       min_interval=self.settings.days.feed_refresh,
                                       validate=validate_feed)
                    if doc.error is not None:
                        log.warning("holiday feed: %s; the cached feed stays in use", doc.error)
                except Exception:
                    log.exception("refreshing the holiday feed failed")
        finally:
            self._lock.release()

    # --- context (no network) -------------------------------------------------------------

    def context_for(self, at: datetime) -> Context:
        """The context for an aware instant (its zone is the event's); never raises."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.settings.tz)
        notes: list[str] = []
        reading = self._reading(at)
        if reading.note:
            notes.append(reading.note)
        day = self._day(at.date())
        if day.note:
            notes.append(day.note)
        return Context(
            at=at,
            weather=reading.word,
            weather_source=reading.source,
            day=day.word,
            day_kind=day.kind,
            part_of_day=part_of_day(at, self.bounds),
            temperature=reading.temperature,
            precipitation_probability=reading.precipitation_probability,
            weather_code=reading.weather_code,
            notes=tuple(notes),
            weather_fetched_at=(reading.fetched_at.isoformat(timespec="seconds")
                                if reading.fetched_at else None),
        )

    def _reading(self, at: datetime) -> Reading:
        if self.weather is None:
            return unknown("weather: no [location] configured")
        try:
            return self.weather.reading(at, self.clock.now())
        except Exception as exc:  # a broken cache must not cost the reminder
            log.exception("reading the cached forecast failed")
            return unknown(f"weather: cache unreadable ({type(exc).__name__})")

    def _day(self, day: date) -> Day:
        try:
            return self.calendar.day_for(day, self._feed_days())
        except Exception as exc:
            log.exception("deciding the kind of day failed")
            return weekday_day(day, note=f"day: calendar failed ({type(exc).__name__})")

    def _feed_days(self) -> dict[date, Day]:
        return self.feed.days() if self.feed else {}


class LocalContext:
    """Context from what is known without any cache: part of day and weekend/workday."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bounds = settings.days.parts_of_day

    def context_for(self, at: datetime) -> Context:
        day = weekday_day(at.date())
        return Context(
            at=at,
            weather=UNKNOWN_WEATHER,
            weather_source="unknown",
            day=day.word,
            day_kind=day.kind,
            part_of_day=part_of_day(at, self.bounds),
            notes=("weather: unknown (local facts only)",),
        )
