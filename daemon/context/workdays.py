"""Official working days for ``--every workdays``, and the cached holiday feed they share with
the context.

``OfficialWorkdays`` is planning's ``Workdays`` calendar: the day calendar (context/days.py
decides what a working day is) plus the ``[days] holiday_feed`` from the HTTP cache. Where the
official calendar of a year is not known it counts Monday to Friday, and ``fallback_note``
says so for ``chime show`` and ``chime doctor``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta

from daemon.config import DaysSettings
from daemon.context.days import Day, DayCalendar, parse_feed
from daemon.store.db import Database

log = logging.getLogger("daemon.context")

PLANNING_RECHECK_S = 60.0  # planning asks day by day; the cache changes only on a feed refresh


class HolidayFeed:
    """The parsed ``[days] holiday_feed`` from the HTTP cache; never touches the network.
    The cache is read again at most every ``recheck_s`` seconds, parsed again only when its
    body changed."""

    def __init__(self, db: Database, url: str, today: Callable[[], date],
                 recheck_s: float = 0.0) -> None:
        self.db = db
        self.url = url
        self.today = today
        self.recheck_s = recheck_s
        self._digest = ""
        self._days: dict[date, Day] = {}
        self._checked = float("-inf")

    def days(self) -> dict[date, Day]:
        if time.monotonic() - self._checked < self.recheck_s:
            return self._days
        from daemon.http_cache import cached_document

        self._checked = time.monotonic()
        doc = cached_document(self.db, self.url)
        if doc is None or doc.body is None:
            return {}
        digest = hashlib.sha256(doc.body.encode()).hexdigest()
        if digest != self._digest:
            try:
                self._days = parse_feed(doc.body, self.today())
            except Exception as exc:  # a broken cached body must not stop planning
                log.warning("the cached holiday feed cannot be read: %s", exc)
                self._days = {}
            self._digest = digest
        return self._days


class OfficialWorkdays:
    """The configured country's working days, with the holiday feed where one is set."""

    def __init__(self, calendar: DayCalendar, feed: HolidayFeed | None = None) -> None:
        self.calendar = calendar
        self.feed = feed

    @classmethod
    def from_settings(cls, days: DaysSettings, db: Database | None,
                      today: Callable[[], date]) -> OfficialWorkdays:
        """For planning: the ``[days]`` country and the holiday feed cached in ``db``."""
        feed = (HolidayFeed(db, days.holiday_feed, today, PLANNING_RECHECK_S)
                if days.holiday_feed and db is not None else None)
        return cls(DayCalendar(days.country, festivals=False), feed)

    def _feed_days(self) -> dict[date, Day]:
        return self.feed.days() if self.feed else {}

    def is_workday(self, day: date) -> bool:
        return self.calendar.is_workday(day, self._feed_days())

    def exceptions(self, first: date, last: date) -> tuple[list[date], list[date]]:
        """Where the official calendar differs from Monday–Friday in [first, last], for an
        export's RDATE/EXDATE: (weekend days worked, weekdays off)."""
        worked, off = [], []
        day = first
        while day <= last:
            official = self.is_workday(day)
            if official and day.weekday() >= 5:
                worked.append(day)
            elif not official and day.weekday() < 5:
                off.append(day)
            day += timedelta(days=1)
        return worked, off

    def known_until(self, since: date, years_ahead: int = 2) -> date | None:
        """The last day of the last year (from ``since``'s on) whose calendar is known."""
        known = [y for y in range(since.year, since.year + years_ahead + 1)
                 if not self.unknown_years([y])]
        return date(max(known), 12, 31) if known else None

    def unknown_years(self, years: Iterable[int]) -> list[int]:
        """The years among ``years`` whose official calendar is not known (Monday–Friday)."""
        feed = self._feed_days()
        return sorted(y for y in set(years) if not self.calendar.calendar_known(y, feed))

    def fallback_note(self, years: Iterable[int]) -> str | None:
        """One line for ``chime show`` / ``chime doctor`` when some year falls back, else None."""
        unknown = self.unknown_years(years)
        if not unknown:
            return None
        listed = ", ".join(map(str, unknown))
        hint = ("the holiday feed has no entries for it" if self.feed
                else "set [days] holiday_feed or update chinese-calendar")
        return (f"workdays: the official {self.calendar.country} calendar of {listed} is not "
                f"known yet, so Monday–Friday is used ({hint})")
