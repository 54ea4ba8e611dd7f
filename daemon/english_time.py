"""English time phrases people type most → instants: ``tomorrow 8:00``, ``in 10 minutes``,
``friday 5pm``, ``tonight at 9``, ``Dec 24 7pm``.

The common forms are read here exactly, in well under a millisecond; anything else goes to
dateparser (``daemon.timeparse``), which costs a command 0.15–0.2 s to load its tables. The
rules match the Chinese reader's: a time of day without a day is the next one still ahead; a
day without a time is its morning (09:00); midnight ends the day it is named with (``tomorrow
at midnight`` is 00:00 after tomorrow); ``tonight 9`` is 21:00; a weekday, or a month and day,
is the next one still ahead (``friday 17:00`` said on a Friday morning is today).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

DAY_DEFAULT = time(9, 0)  # a day named without a time: its morning, as in Chinese
DAY_NAMES = {name: i for i, names in enumerate(
    (("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"),
     ("thursday", "thu", "thur", "thurs"), ("friday", "fri"), ("saturday", "sat"),
     ("sunday", "sun"))) for name in names}
MONTH_NAMES = {name: i for i, names in enumerate(
    (("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
     ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
     ("october", "oct"), ("november", "nov"), ("december", "dec")), start=1) for name in names}


def one_of(names: Iterable[str]) -> str:
    """A regex group matching any of ``names``, the longest first (``monday`` before ``mon``)."""
    return "(?:" + "|".join(sorted(names, key=len, reverse=True)) + ")"


_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hr": 3600, "hour": 3600, "d": 86400, "day": 86400, "w": 604800, "week": 604800}
# part of the day -> (hour when no clock is given, 1–11 o'clock is after noon, 12 o'clock and
# the small hours belong to the night that follows), as daemon.chinese_time reads 上午/下午/晚上
_PARTS = {"morning": (9, False, False), "afternoon": (15, True, False),
          "evening": (20, True, True), "night": (21, True, True), "tonight": (20, True, True)}

_AMOUNT = r"(?P<n>\d+(?:\.\d+)?|an?|half an?)\s*(?P<unit>[a-z]+?)s?"
# The grammar stays text until the first phrase: re compiles and caches it then (every command
# imports this module through daemon.timeparse; few read an English time).
_LATER = rf"in {_AMOUNT}|{_AMOUNT.replace('?P<', '?P<x_')} from now"
_WEEKDAY = rf"(?:(?P<next>next) |this )?(?P<weekday>{one_of(DAY_NAMES)})"
_MONTH = rf"(?P<month>{one_of(MONTH_NAMES)})\.?"
_DATE = (rf"{_MONTH} (?P<dom>\d{{1,2}})(?:st|nd|rd|th)?|"
         rf"(?P<dom2>\d{{1,2}})(?:st|nd|rd|th)? {_MONTH.replace('?P<month>', '?P<month2>')}")
_DAY = (rf"(?P<word>today|tonight|tomorrow|tmrw|(?:the )?day after tomorrow)|{_WEEKDAY}|"
        rf"(?:{_DATE})(?:,? (?P<year>\d{{4}}))?")
_CLOCK = (r"(?P<named>noon|midday|midnight)|(?P<hour>\d{1,2})(?:[:.](?P<minute>\d{2}))?"
          r"(?: ?(?P<half>am|pm|a\.m\.|p\.m\.))?(?: ?o'?clock)?")
_DAY_CLOCK = (rf"(?:on )?(?:{_DAY})(?: (?P<part>morning|afternoon|evening|night))?"
              rf"(?:,? (?:at )?(?:{_CLOCK}))?")
_CLOCK_DAY = rf"(?:at )?(?:{_CLOCK})(?: (?:on )?(?:{_DAY}))?"


def parse_english(text: str, local_now: datetime) -> datetime | None:
    """The instant ``text`` names, in ``local_now``'s zone; None when it is not one of the
    forms read here (then dateparser tries)."""
    phrase = " ".join(text.lower().replace(",", ", ").split()).replace(" ,", ",")
    later = re.fullmatch(_LATER, phrase)
    found = None if later else re.fullmatch(_DAY_CLOCK, phrase) or re.fullmatch(_CLOCK_DAY, phrase)
    try:
        if later:
            return _later(later, local_now)
        return _day_clock(found.groupdict(), local_now) if found else None
    except OverflowError:  # past the year 9999
        return None


def _later(m: re.Match[str], local_now: datetime) -> datetime | None:
    amount, unit = m["n"] or m["x_n"], m["unit"] or m["x_unit"]
    seconds = _UNITS.get(unit)
    if seconds is None:
        return None
    count = 0.5 if amount.startswith("half") else 1.0 if amount in ("a", "an") else float(amount)
    return local_now + timedelta(seconds=count * seconds)


def _day_clock(g: dict[str, str | None], local_now: datetime) -> datetime | None:
    """A day, a clock or both; the open parts roll forward to the next moment still ahead."""
    clock = _clock(g, g.get("part") or ("tonight" if g["word"] == "tonight" else None))
    if clock is None:
        return None
    at, next_day = clock
    if g["word"] or g["weekday"] or g["month"] or g["month2"]:
        day = _day(g, local_now, at)
        if day is None:
            return None
    else:  # a clock alone: today's, or tomorrow's once it has passed
        day = local_now.date()
        if not next_day and datetime.combine(day, at, local_now.tzinfo) <= local_now:
            day += timedelta(days=1)
    return datetime.combine(day + timedelta(days=next_day), at, local_now.tzinfo)


def _clock(g: dict[str, str | None], part: str | None) -> tuple[time, int] | None:
    """(time of day, days to add): ``tonight 9`` is 21:00, ``tonight 12`` and ``midnight``
    00:00 of the next day, a day alone its morning; None for an hour or minute out of range."""
    if g["named"] in ("noon", "midday"):
        return time(12), 0
    if g["named"] == "midnight":
        return time(0), 1
    default, after_noon, night = _PARTS[part] if part else (DAY_DEFAULT.hour, False, False)
    if g["hour"] is None:
        return time(default), 0
    hour, minute = int(g["hour"]), int(g["minute"] or 0)
    if minute > 59 or hour > 23 or (g["half"] and not 1 <= hour <= 12):
        return None
    if g["half"]:
        return time(hour % 12 + (12 if g["half"].startswith("p") else 0), minute), 0
    if night and (hour == 12 or hour < 5):
        return time(hour % 12, minute), 1
    if after_noon and hour < 12:
        return time(hour + 12, minute), 0
    return time(hour, minute), 0


def _day(g: dict[str, str | None], local_now: datetime, at: time) -> date | None:
    today = local_now.date()
    word = g["word"]
    if word in ("today", "tonight"):
        return today
    if word in ("tomorrow", "tmrw"):
        return today + timedelta(days=1)
    if word:  # the day after tomorrow
        return today + timedelta(days=2)

    def ahead(day: date) -> bool:
        return datetime.combine(day, at, local_now.tzinfo) > local_now

    if g["weekday"]:
        day = today + timedelta(days=(DAY_NAMES[g["weekday"]] - today.weekday()) % 7)
        return day if ahead(day) and not (g["next"] and day == today) else day + timedelta(7)
    month = MONTH_NAMES[g["month"] or g["month2"] or ""]
    dom = int(g["dom"] or g["dom2"] or 0)
    years = [int(g["year"])] if g["year"] else [today.year, today.year + 1]
    for year in years:
        try:
            day = date(year, month, dom)
        except ValueError:
            return None
        if g["year"] or ahead(day):
            return day
    return None
