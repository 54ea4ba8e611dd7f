"""User periods and personal days (``[days] periods / personal``), and the checks of the
context settings ([location], [weather], [days]) that ``load_settings`` runs.

A spec is ``"名字 DATE"`` or ``"名字 DATE..DATE"``; a DATE is ``MM-DD`` (every year) or
``YYYY-MM-DD`` (that date only)::

    periods  = ["暑假 07-01..08-31", "寒假 2027-01-20..2027-02-25", "春假 04-01..04-07"]
    personal = ["生日 05-20", "结婚纪念日 10-02"]

A yearly span may wrap the new year (``12-24..01-02``). ``02-29`` falls on 02-28 in common
years. Names must fit the prompt: no separators, no line breaks, at most 12 characters.
This module is pure and cheap to import (config loading uses it).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from daemon.context.daypart import parse_boundaries
from daemon.context.prompt import sanitize_task
from daemon.errors import ConfigError

MAX_NAME = 12
_SPEC = re.compile(r"^(?P<name>\S+)\s+(?P<start>[\d-]+)(?:\s*\.\.\s*(?P<end>[\d-]+))?$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
_FULL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class Span:
    """A named day or run of days, yearly (``year`` None) or on fixed dates."""

    name: str
    start: tuple[int, int, int | None]  # (month, day, year or None)
    end: tuple[int, int, int | None]

    @property
    def yearly(self) -> bool:
        return self.start[2] is None

    def contains(self, day: date) -> bool:
        if not self.yearly:
            first = date(self.start[2], self.start[0], self.start[1])  # type: ignore[arg-type]
            last = date(self.end[2], self.end[0], self.end[1])  # type: ignore[arg-type]
            return first <= day <= last
        keys = [(day.month, day.day)]
        if keys[0] == (2, 28) and not calendar.isleap(day.year):
            keys.append((2, 29))  # 02-29 falls on 02-28 in common years
        lo, hi = self.start[:2], self.end[:2]
        if lo <= hi:
            return any(lo <= key <= hi for key in keys)
        return any(key >= lo or key <= hi for key in keys)  # wraps the new year


def _date_part(text: str) -> tuple[int, int, int | None]:
    full = _FULL.match(text)
    if full:
        year, month, day = (int(g) for g in full.groups())
        date(year, month, day)  # ValueError if not a real date
        return (month, day, year)
    short = _MONTH_DAY.match(text)
    if short:
        month, day = (int(g) for g in short.groups())
        date(2000, month, day)  # a leap year: 02-29 is allowed
        return (month, day, None)
    raise ValueError(f"{text!r} is not MM-DD or YYYY-MM-DD")


def check_name(name: str) -> str:
    """A period/personal/feed name that fits the prompt, or ValueError."""
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"the name must be 1 to {MAX_NAME} characters")
    if sanitize_task(name) != name or " " in name:
        raise ValueError(f"the name {name!r} holds separators or control characters")
    return name


def parse_span(spec: str) -> Span:
    """``"暑假 07-01..08-31"`` → Span; ValueError with a short reason."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise ValueError("expected '名字 MM-DD', '名字 MM-DD..MM-DD' or with YYYY-MM-DD dates")
    name = check_name(match["name"])
    start = _date_part(match["start"])
    end = _date_part(match["end"]) if match["end"] else start
    if (start[2] is None) != (end[2] is None):
        raise ValueError("both dates must be MM-DD or both YYYY-MM-DD")
    if start[2] is not None:
        first = date(start[2], start[0], start[1])
        last = date(end[2], end[0], end[1])  # type: ignore[arg-type]
        if last < first:
            raise ValueError("the end is before the start")
    return Span(name, start, end)


def parse_spans(specs: list[str], key: str) -> list[Span]:
    """All specs of one config key, or ConfigError naming the key and the bad entry."""
    spans = []
    for spec in specs:
        try:
            spans.append(parse_span(spec))
        except ValueError as exc:
            raise ConfigError(f"[days] {key}: bad entry {spec!r}: {exc}") from exc
    return spans


def find(spans: list[Span], day: date) -> Span | None:
    """The first span containing ``day`` (config order decides overlaps)."""
    return next((s for s in spans if s.contains(day)), None)


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_context_settings(s: Any) -> list[str]:
    """Value checks for [location], [weather] and [days]; one message per bad key."""
    problems: list[str] = []
    if any(ord(c) < 32 for c in s.location.name) or len(s.location.name) > 60:
        problems.append("[location] name: at most 60 characters, no control characters")
    w = s.weather
    if not _is_http_url(w.base_url):
        problems.append(f"[weather] base_url: {w.base_url!r} is not an http(s) URL")
    if w.air_quality_url and not _is_http_url(w.air_quality_url):
        problems.append(f"[weather] air_quality_url: {w.air_quality_url!r} is not an http(s) URL")
    if w.refresh < timedelta(minutes=10):
        problems.append("[weather] refresh: must be at least 10m (be kind to the service)")
    for key in ("connect_timeout", "read_timeout"):
        if not 0 < getattr(w, key) <= 120:
            problems.append(f"[weather] {key}: must be between 0 and 120 seconds")
    if not 0 <= w.retries <= 5:
        problems.append("[weather] retries: must be between 0 and 5")
    if not 3 <= w.forecast_days <= 16:
        problems.append("[weather] forecast_days: must be between 3 and 16")
    d = s.days
    if not re.fullmatch(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", d.country):
        problems.append(f"[days] country: {d.country!r} is not a country code like CN, DE or DE-BY")
    elif d.country != "CN":
        from daemon.context.days import country_problem  # imports `holidays`: only when needed

        problem = country_problem(d.country)
        if problem:
            problems.append(f"[days] country: {problem}")
    for key in ("periods", "personal"):
        try:
            parse_spans(getattr(d, key), key)
        except ConfigError as exc:
            problems.append(str(exc))
    if d.holiday_feed and not _is_http_url(d.holiday_feed):
        problems.append(f"[days] holiday_feed: {d.holiday_feed!r} is not an http(s) URL")
    if d.feed_refresh < timedelta(hours=1):
        problems.append("[days] feed_refresh: must be at least 1h")
    try:
        parse_boundaries(d.parts_of_day)
    except ConfigError as exc:
        problems.append(str(exc))
    return problems
