"""The kind of day: statutory holidays, 调休 make-up workdays, festivals, periods, weekends.

Precedence, first match wins:

1. **personal day** from ``[days] personal`` (生日, 纪念日) — kind ``personal``;
2. **statutory calendar** — kind ``holiday`` (a day off, named: 元旦, 春节, 清明节, 劳动节,
   端午节, 中秋节, 国庆节…) or ``makeup`` (a 调休 workday on a weekend, word ``调休``), from:
   the optional ICS ``holiday_feed`` when it has an entry that day; else for CN
   ``chinese-calendar`` (official schedule, 2004 to its last year) and beyond that the
   ``holidays`` package (computed holidays; 调休 unknown unless it knows them: warned once
   per year and noted in the context); for other countries ``holidays`` in that country's
   language. A day off whose lunar date is itself a festival is named by the festival
   (除夕 inside the 春节 break, 中秋节 inside the 国庆 break);
3. **traditional festival** that is not a day off (元宵节, 七夕, 重阳节, 腊八节, 除夕…; and for
   other countries also 春节, 端午节, 中秋节), from ``lunardate``; ``[days] festivals = false``
   turns them off — kind ``festival``;
4. **user period** from ``[days] periods`` (暑假, 寒假, 春假) — kind ``period``;
5. **weekend** (双休日, the country's weekend days) or **workday** (工作日).

Library imports are lazy: the daemon pays for them on first use only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from daemon.config_values import Span, find
from daemon.context.prompt import sanitize_task

log = logging.getLogger("daemon.context.days")

MAKEUP_WORD = "调休"
WEEKEND_WORD = "双休日"
WORKDAY_WORD = "工作日"
SATURDAY_SUNDAY = frozenset({5, 6})
EVE_WORD = "除夕"
MAX_FEED_NAME = 20
MAX_FEED_EVENTS = 5000  # a holiday feed holds a few hundred; more would be slow to parse

# chinese-calendar's names → the words the LoRA knows.
CN_WORDS = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利纪念日",
}
# (lunar month, lunar day) → festival; 除夕 is the day before 正月初一 (month 12 has 29 or 30 days).
LUNAR_FESTIVALS = {
    (1, 1): "春节",
    (1, 15): "元宵节",
    (5, 5): "端午节",
    (7, 7): "七夕",
    (8, 15): "中秋节",
    (9, 9): "重阳节",
    (12, 8): "腊八节",
}


@dataclass(frozen=True)
class Day:
    """The day word for the prompt, its kind, and why it may be uncertain."""

    word: str
    kind: str  # personal | holiday | makeup | festival | period | weekend | workday
    note: str | None = None


@dataclass
class _Year:
    """One year of a country's statutory calendar from the ``holidays`` package."""

    days_off: dict[date, str]
    makeup: set[date]
    weekend: frozenset[int]
    makeup_known: bool
    missing: bool = False  # the package has no data for this year at all


def weekday_day(day: date, weekend: frozenset[int] = SATURDAY_SUNDAY,
                note: str | None = None) -> Day:
    """双休日 or 工作日 by the weekday alone (``weekend``: the country's weekend days)."""
    if day.weekday() in weekend:
        return Day(WEEKEND_WORD, "weekend", note)
    return Day(WORKDAY_WORD, "workday", note)


def lunar_festival(day: date) -> str | None:
    """The traditional festival on ``day`` (lunar calendar), or None (also outside 1900–2099)."""
    from lunardate import LunarDate

    try:
        lunar = LunarDate.from_solar_date(day.year, day.month, day.day)
        tomorrow = LunarDate.from_solar_date(*(day + timedelta(days=1)).timetuple()[:3])
    except ValueError:
        return None
    if (tomorrow.month, tomorrow.day) == (1, 1) and not tomorrow.is_leap_month:
        return EVE_WORD
    if lunar.is_leap_month:
        return None
    return LUNAR_FESTIVALS.get((lunar.month, lunar.day))


def clean_holiday_name(name: str) -> str:
    """``"春节（补假）"`` → 春节, ``"农历除夕"`` → 除夕, first of several, prompt-safe."""
    name = name.split(";")[0]
    name = re.sub(r"\s*[（(](补假|观察日|observed|estimated)[）)]", "", name, flags=re.IGNORECASE)
    name = name.replace("农历除夕", EVE_WORD)
    return sanitize_task(name)


class DayCalendar:
    """Decides the day word for a date (see the module for the precedence)."""

    def __init__(self, country: str = "CN", festivals: bool = True,
                 periods: list[Span] | None = None, personal: list[Span] | None = None) -> None:
        self.country, _, subdiv = country.partition("-")
        self.subdiv = subdiv or None
        self.festivals = festivals
        self.periods = periods or []
        self.personal = personal or []
        self._years: dict[int, _Year] = {}
        self._warned: set[int] = set()

    def day_for(self, day: date, feed: Mapping[date, Day] | None = None) -> Day:
        """The Day for a local date; ``feed`` is the parsed holiday feed (if any)."""
        span = find(self.personal, day)
        if span is not None:
            return Day(span.name, "personal")
        statutory, note = self.statutory(day, feed or {})
        festival = lunar_festival(day) if self.festivals else None
        if statutory is not None:
            if statutory.kind == "holiday" and festival is not None:
                return Day(festival, "holiday")
            return statutory
        if festival is not None:
            return Day(festival, "festival", note)
        span = find(self.periods, day)
        if span is not None:
            return Day(span.name, "period", note)
        return weekday_day(day, self._weekend(day.year), note)

    def statutory(self, day: date, feed: Mapping[date, Day]) -> tuple[Day | None, str | None]:
        """The statutory day (holiday or make-up workday) and a note when 调休 is unknown."""
        if day in feed:
            return feed[day], None
        feed_covers_year = any(d.year == day.year for d in feed)
        if self.country == "CN":
            covered, found = _chinese_calendar(day)
            if covered:
                return found, None
        year = self._year(day.year)
        if day in year.days_off:
            return Day(year.days_off[day], "holiday"), None
        if day in year.makeup:
            return Day(MAKEUP_WORD, "makeup"), None
        if year.missing:
            return None, f"day: no holiday data for {self.country} {day.year}"
        if self.country == "CN" and not year.makeup_known and not feed_covers_year:
            self._warn_makeup_unknown(day.year)
            return None, f"day: 调休 make-up workdays for {day.year} are not known"
        return None, None

    def is_workday(self, day: date, feed: Mapping[date, Day]) -> bool:
        """An official working day: statutory holidays off, 调休 make-up days on; in a year
        whose official calendar is not known (``calendar_known``), Monday to Friday."""
        if not self.calendar_known(day.year, feed):
            return day.weekday() < 5
        official = self._official_day(day, feed)
        if official is not None:
            return official.kind == "makeup"
        return day.weekday() not in self._weekend(day.year)

    def calendar_known(self, year: int, feed: Mapping[date, Day]) -> bool:
        """Whether the official working days of ``year`` are known: the holiday feed has
        entries in it, or for CN chinese-calendar covers it, else the holidays package has it."""
        if any(d.year == year for d in feed):
            return True
        if self.country == "CN":
            return _chinese_calendar(date(year, 12, 31))[0]
        return not self._year(year).missing

    def _official_day(self, day: date, feed: Mapping[date, Day]) -> Day | None:
        """The holiday or make-up workday on ``day`` from a known calendar, without warnings."""
        if day in feed:
            return feed[day]
        if self.country == "CN":
            return _chinese_calendar(day)[1]
        year = self._year(day.year)
        if day in year.days_off:
            return Day(year.days_off[day], "holiday")
        return Day(MAKEUP_WORD, "makeup") if day in year.makeup else None

    def _year(self, year: int) -> _Year:
        if year not in self._years:
            self._years[year] = self._load_year(year)
        return self._years[year]

    def _load_year(self, year: int) -> _Year:
        import holidays

        try:
            probe = holidays.country_holidays(self.country, subdiv=self.subdiv, years=[])
            language = "zh_CN" if self.country == "CN" else probe.default_language
            table: Any = holidays.country_holidays(
                self.country, subdiv=self.subdiv, years=year, language=language)
            days_off = {d: clean_holiday_name(n) for d, n in sorted(table.items())
                        if d.year == year}
        except (NotImplementedError, KeyError, ValueError) as exc:
            log.warning("no holiday data for %s %d (%s); only weekends count", self.country,
                        year, exc)
            return _Year({}, set(), frozenset({5, 6}), makeup_known=False, missing=True)
        makeup = {d for d in getattr(table, "weekend_workdays", set()) if d.year == year}
        weekend = frozenset(getattr(table, "weekend", {5, 6}) or {5, 6})
        return _Year(days_off, makeup, weekend, makeup_known=bool(makeup))

    def _weekend(self, year: int) -> frozenset[int]:
        if self.country == "CN":
            return SATURDAY_SUNDAY
        return self._year(year).weekend

    def _warn_makeup_unknown(self, year: int) -> None:
        if year not in self._warned:
            self._warned.add(year)
            log.warning(
                "调休 make-up workdays for %d are not known yet (chinese-calendar has no data "
                "for that year; update it or set [days] holiday_feed): weekends count as 双休日",
                year,
            )


def _chinese_calendar(day: date) -> tuple[bool, Day | None]:
    """The official CN schedule: (year covered, a Day or None for an ordinary day)."""
    import chinese_calendar

    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return False, None
    if name is None:
        return True, None
    if on_holiday:
        return True, Day(CN_WORDS.get(name, clean_holiday_name(name)), "holiday")
    return True, Day(MAKEUP_WORD, "makeup")  # a working day that carries a holiday's name


# ---------------------------------------------------------------------------------------------
# The ICS holiday feed


def validate_feed(body: str) -> None:
    """Raise ValueError unless ``body`` is an iCalendar document (for fetch_cached)."""
    import icalendar

    if not body.lstrip("\ufeff \r\n").startswith("BEGIN:VCALENDAR"):
        raise ValueError("the holiday feed is not an iCalendar document")
    if body.count("BEGIN:VEVENT") > MAX_FEED_EVENTS:
        raise ValueError(f"the holiday feed has more than {MAX_FEED_EVENTS} events")
    try:
        icalendar.Calendar.from_ical(body)
    except Exception as exc:  # icalendar raises ValueError and friends
        raise ValueError(f"the holiday feed cannot be parsed ({exc})") from exc


def feed_day(summary: str) -> Day | None:
    """An event title → holiday (its name) or 调休 workday (titles with 班: 补班, 上班)."""
    text = " ".join(summary.split())
    if not text:
        return None
    if "班" in text:
        return Day(MAKEUP_WORD, "makeup")
    name = re.split(r"[（(]|\s+(?:假期|放假|休息|休|第)", text)[0]
    name = re.sub(r"(假期|放假|休息|休)$", "", name.strip()).strip()
    name = clean_holiday_name(name)[:MAX_FEED_NAME].strip()
    return Day(name, "holiday") if name else None


def parse_feed(body: str, around: date) -> dict[date, Day]:
    """Every dated entry of a holiday feed within a year before and three after ``around``."""
    import icalendar
    import recurring_ical_events

    calendar = icalendar.Calendar.from_ical(body)
    start, end = date(around.year - 1, 1, 1), date(around.year + 3, 1, 1)
    days: dict[date, Day] = {}
    for event in recurring_ical_events.of(calendar).between(start, end):
        found = feed_day(str(event.get("SUMMARY", "")))
        if found is None or event.get("DTSTART") is None:
            continue
        first = event["DTSTART"].dt
        last = event["DTEND"].dt if event.get("DTEND") is not None else None
        first_day = first.date() if isinstance(first, datetime) else first
        if isinstance(first, datetime) or last is None:
            span = [first_day]
        else:
            count = max(1, (last - first_day).days)  # DTEND of an all-day event is exclusive
            span = [first_day + timedelta(days=i) for i in range(count)]
        for d in span:
            days.setdefault(d, found)
    return days
