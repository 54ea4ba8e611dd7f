"""Pure planning: the instants at which an event occurs between two instants.

Recurrences are expanded with dateutil.rrule in the event's own wall-clock time and zone, as
RFC 5545 does, then each local time is turned into an instant:

* a local time that does not exist (the spring-forward gap) is read with the offset before
  the gap, so 02:30 on the day clocks jump 02:00→03:00 becomes 03:30 new time (RFC 5545 §3.3.5);
* a local time that happens twice (the fall-back hour) is the first of the two (fold=0).

So a daily 02:30 reminder neither disappears nor rings twice across DST changes. Exceptions
(exdates) are compared in local wall time, additional dates (rdates) are added.

An event with the day filter ``workdays`` (``--every workdays``) keeps only the rule's times
that fall on an official working day; which days those are is the ``Workdays`` calendar's
fact (context/days.py), passed in by the caller, so every view plans the same occurrences.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from itertools import takewhile
from typing import Protocol
from zoneinfo import ZoneInfo

from dateutil import rrule as du_rrule


class Schedule(Protocol):
    """What planning needs of an event (the Event row satisfies it)."""

    dtstart: str  # naive local ISO time
    tz: str
    rrule: str | None
    rdates: list[str]
    exdates: list[str]
    day_filter: str | None  # WORKDAYS or None


WORKDAYS = "workdays"  # the day filter: only official working days


class Workdays(Protocol):
    """The official working days of the configured country (statutory holidays off, make-up
    workdays on)."""

    def is_workday(self, day: date) -> bool: ...


class _EveryDay:
    def is_workday(self, day: date) -> bool:
        return True


# For questions that a superset of the rule's times answers ("could this instant be one of the
# event's own?"): every day counts as a working day.
EVERY_DAY: Workdays = _EveryDay()


@dataclass
class Recurrence:
    """A plain Schedule, for code that has no Event row (previews, imports, tests)."""

    dtstart: str
    tz: str
    rrule: str | None = None
    rdates: list[str] = field(default_factory=list)
    exdates: list[str] = field(default_factory=list)
    day_filter: str | None = None


DST_SLACK = timedelta(hours=3)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_instant(local: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall-clock time in ``tz`` → an aware UTC instant, by RFC 5545's DST rules."""
    aware = local.replace(tzinfo=tz, fold=0)
    instant = aware.astimezone(timezone.utc)
    # zoneinfo reads a nonexistent time with the offset before the gap (fold=0): that is
    # RFC 5545's rule. An ambiguous time with fold=0 is the first of the two: also RFC 5545's.
    return instant


def local_times(
    schedule: Schedule, start_local: datetime, end_local: datetime,
    workdays: Workdays | None = None,
) -> Iterator[datetime]:
    """Naive local times of ``schedule`` in [start_local, end_local], ascending, exdates removed."""
    return takewhile(lambda t: t <= end_local,
                     _iter_after(schedule, start_local, end_local, workdays))


@lru_cache(maxsize=4096)
def _parsed(text: str) -> du_rrule.rrule:
    """The rule's text read once (many events share one); :func:`_rule` gives it a start."""
    parsed = du_rrule.rrulestr(text, dtstart=datetime(2000, 1, 1), forceset=False, cache=False)
    assert isinstance(parsed, du_rrule.rrule)
    return parsed


@lru_cache(maxsize=16384)
def _rule(text: str, dtstart: datetime) -> du_rrule.rrule:
    """The rule from ``dtstart``: the defaults a start gives (weekday, time of day) are taken
    from it, as if the text had been read with it."""
    return _parsed(text).replace(dtstart=dtstart)


_PERIODS = {
    du_rrule.MINUTELY: timedelta(minutes=1),
    du_rrule.HOURLY: timedelta(hours=1),
    du_rrule.DAILY: timedelta(days=1),
    du_rrule.WEEKLY: timedelta(weeks=1),
}


def rule_near(text: str, dtstart: datetime, not_before: datetime) -> du_rrule.rrule:
    """The rule, with its start moved forward by whole intervals to just before ``not_before``.

    dateutil walks a rule from its start, so a half-hourly rule begun a year ago would cost
    17 520 steps at every plan. Moving the start by a whole number of intervals keeps the
    rule's phase and every default it takes from the start (weekday, time of day), so the
    occurrences from ``not_before`` on are unchanged. Not done for COUNT (it counts from the
    start) nor for MONTHLY/YEARLY (month lengths differ; they are cheap to walk anyway).
    """
    parsed = _parsed(text)
    period = _PERIODS.get(parsed._freq)  # type: ignore[attr-defined]
    if period is None or parsed._count is not None:  # type: ignore[attr-defined]
        return _rule(text, dtstart)
    step = period * parsed._interval  # type: ignore[attr-defined]
    skips = (not_before - dtstart) // step - 1
    return _rule(text, dtstart + skips * step if skips > 0 else dtstart)


def occurrences(schedule: Schedule, start: datetime, end: datetime,
                workdays: Workdays | None = None) -> list[datetime]:
    """Aware UTC instants at which ``schedule`` occurs, with start <= instant < end
    (``workdays`` is required for an event with the ``workdays`` day filter)."""
    tz = zone(schedule.tz)
    # Widen the local window a little: a DST change moves wall time by up to two hours.
    start_local = start.astimezone(tz).replace(tzinfo=None) - DST_SLACK
    end_local = end.astimezone(tz).replace(tzinfo=None) + DST_SLACK
    found = []
    for local in local_times(schedule, start_local, end_local, workdays):
        instant = to_instant(local, tz)
        if start <= instant < end:
            found.append(instant)
    return sorted(set(found))


def next_occurrence(
    schedule: Schedule, after: datetime, within: timedelta = timedelta(days=800),
    workdays: Workdays | None = None,
) -> datetime | None:
    """The first instant strictly after ``after``; a recurrence is searched at most ``within``
    ahead (a rule that matches nothing must not search forever)."""
    tz = zone(schedule.tz)
    start_local = after.astimezone(tz).replace(tzinfo=None)
    if (after - DST_SLACK).astimezone(tz).utcoffset() != \
            (after + DST_SLACK).astimezone(tz).utcoffset():
        start_local -= DST_SLACK  # near a DST change wall time and instants part ways
    end_local = max(start_local, datetime.fromisoformat(schedule.dtstart)) + within
    for local in _iter_after(schedule, start_local, end_local, workdays):
        instant = to_instant(local, tz)
        if instant > after:
            return instant
    return None


def _iter_after(
    schedule: Schedule, start_local: datetime, end_local: datetime,
    workdays: Workdays | None = None,
) -> Iterator[datetime]:
    """Local times from ``start_local`` on, ascending and lazy (the first hit ends a search
    quickly); a rule is followed up to ``end_local``, one-offs and rdates whenever they are."""
    dtstart = datetime.fromisoformat(schedule.dtstart)
    exdates = {datetime.fromisoformat(x) for x in schedule.exdates}
    rdates = sorted(d for d in (datetime.fromisoformat(x) for x in schedule.rdates)
                    if start_local <= d)
    rule_times: Iterator[datetime]
    if schedule.rrule:
        rule = rule_near(schedule.rrule, dtstart, start_local)
        late_start = start_local > dtstart
        rule_times = iter(rule.xafter(start_local, inc=True)) if late_start else iter(rule)
        rule_times = _filtered(rule_times, schedule.day_filter, workdays)
    else:  # a one-off: no search window needed
        rule_times = iter([dtstart] if dtstart >= start_local else [])
        end_local = datetime.max
    pending_rdates = iter(rdates)
    next_r = next(pending_rdates, None)
    for t in rule_times:
        if t > end_local:
            break
        while next_r is not None and next_r < t:
            if next_r not in exdates:
                yield next_r
            next_r = next(pending_rdates, None)
        if next_r == t:
            next_r = next(pending_rdates, None)
        if t not in exdates:
            yield t
    while next_r is not None:
        if next_r not in exdates:
            yield next_r
        next_r = next(pending_rdates, None)


def rings(
    schedule: Schedule, alarm: timedelta, start: datetime, end: datetime,
    workdays: Workdays | None = None,
) -> list[tuple[datetime, datetime]]:
    """(instant the reminder rings, instant the event starts) for every ring in [start, end):
    an alarm rings ``alarm`` before each occurrence (zero: at the start)."""
    return [(at - alarm, at)
            for at in occurrences(schedule, start + alarm, end + alarm, workdays)]


def alarm_of(alarm_s: int | None) -> timedelta:
    """An event's ``alarm_s`` as a timedelta (None: it rings at its start)."""
    return timedelta(seconds=alarm_s or 0)


def _filtered(times: Iterator[datetime], day_filter: str | None,
              workdays: Workdays | None) -> Iterator[datetime]:
    """The rule's times on the days the filter keeps."""
    if day_filter is None:
        return times
    if day_filter != WORKDAYS:
        raise ValueError(f"unknown day filter {day_filter!r}")
    if workdays is None:
        raise ValueError("planning a workdays event needs the Workdays calendar")
    return (t for t in times if workdays.is_workday(t.date()))
