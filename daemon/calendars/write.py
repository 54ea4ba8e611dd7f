"""chime's events → an iCalendar document that every calendar program (and ``chime import``)
reads back.

Times carry IANA TZID parameters, and each TZID has its VTIMEZONE (RFC 5545 requires one;
icalendar builds them from zoneinfo, covering the events' years); events in UTC are written in
UTC. Every event has a DURATION (an imported event's own length, else zero: a reminder is an
instant) and a VALARM at the instant chime reminds: ``-PT15M`` for a calendar alarm, at the
start otherwise. RRULE keeps its text with UNTIL turned back into UTC as RFC 5545 requires;
RDATE/EXDATE keep the event's zone; an ``--every workdays`` rule is written Monday–Friday with
the official exceptions chime knows as RDATE/EXDATE. Each event's UID is its calendar UID, or a
stable one made up for chime's own events, so importing the export again matches instead of
duplicating.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import icalendar
from sqlalchemy import select

from daemon import __version__
from daemon.calendars.apply import event_key
from daemon.context.workdays import OfficialWorkdays
from daemon.errors import InputError
from daemon.parts import Planned
from daemon.planning import WORKDAYS, to_instant, zone
from daemon.store.models import Event

PRODID = f"-//chime//chime-reminder {__version__}//EN"
ZONE_YEARS_AHEAD = 10  # VTIMEZONE rules are written this far past the latest start


def export_calendar(events: Iterable[Event], now: datetime,
                    workdays: OfficialWorkdays | None = None) -> str:
    """The iCalendar text for ``events`` (``workdays``: for events that ring on official
    working days only)."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    starts = [now.date()]
    for event in events:
        vevent = _vevent(event, now)
        if event.day_filter == WORKDAYS and workdays is not None:
            _only_workdays(vevent, event, now, workdays)
        cal.add_component(vevent)
        starts.append(datetime.fromisoformat(event.dtstart).date())
    first, last = min(starts), max(starts)
    cal.add_missing_timezones(date(first.year - 1, 1, 1),
                              date(last.year + ZONE_YEARS_AHEAD, 1, 1))
    for observance in (*cal.walk("STANDARD"), *cal.walk("DAYLIGHT")):
        _one_rdate_per_line(observance)
    return cal.to_ical().decode("utf-8")


def _one_rdate_per_line(observance: icalendar.cal.component.Component) -> None:
    """A VTIMEZONE observance's transitions as one RDATE line each: dateutil's VTIMEZONE
    reader (vobject, and the programs built on them) keeps only the first value of a list."""
    props = observance.pop("RDATE", None)
    for prop in props if isinstance(props, list) else [props] if props is not None else []:
        for value in prop.dts:
            observance.add("rdate", value.dt)


def export(app: Planned, path: str, include_all: bool = False) -> tuple[str, int]:
    """Write chime's manual events (all events with ``include_all``) to ``path`` ('-': the
    text is returned instead); returns (text, number of events)."""
    with app.db.session() as s:
        query = select(Event).order_by(Event.id)
        if not include_all:
            query = query.where(Event.source == "manual")
        events = list(s.scalars(query))
        text = export_calendar(events, app.clock.now(), app.workdays)
    if path != "-":
        write_atomic(Path(path), text)
    return text, len(events)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, so a crash never leaves half a file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _vevent(event: Event, now: datetime) -> icalendar.Event:
    tz = zone(event.tz)
    utc = event.tz == "UTC"

    def when(wall: str) -> datetime:
        local = datetime.fromisoformat(wall)
        return local.replace(tzinfo=timezone.utc) if utc else local.replace(tzinfo=tz)

    vevent = icalendar.Event()
    vevent.add("uid", event_key(event))
    vevent.add("dtstamp", now.astimezone(timezone.utc).replace(microsecond=0))
    vevent.add("summary", event.task)
    vevent.add("dtstart", when(event.dtstart))
    if event.rrule:
        recur = icalendar.vRecur.from_ical(event.rrule)
        until = recur.get("UNTIL")
        if until and isinstance(until[0], datetime) and until[0].tzinfo is None:
            recur["UNTIL"] = [to_instant(until[0], tz)]
        vevent.add("rrule", recur)
    if event.rdates:
        vevent.add("rdate", [when(d) for d in event.rdates])
    if event.exdates:
        vevent.add("exdate", [when(d) for d in event.exdates])
    vevent.add("duration", timedelta(seconds=event.duration_s or 0))
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", event.task)
    alarm.add("trigger", -timedelta(seconds=event.alarm_s or 0))
    vevent.add_component(alarm)
    return vevent


def _only_workdays(vevent: icalendar.Event, event: Event, now: datetime,
                   workdays: OfficialWorkdays) -> None:
    """``--every workdays`` for programs that know no holiday calendar: the rule limited to
    Monday–Friday, with the official exceptions of the years chime knows (from today on) as
    RDATE (调休 weekend workdays) and EXDATE (holidays)."""
    recur = vevent["RRULE"]
    assert isinstance(recur, icalendar.vRecur)  # a workdays event always has its rule
    recur["BYDAY"] = ["MO", "TU", "WE", "TH", "FR"]
    start = datetime.fromisoformat(event.dtstart)
    first = max(start.date(), now.astimezone(zone(event.tz)).date())
    last = workdays.known_until(first)
    if last is None:
        return
    worked, off = workdays.exceptions(first, last)
    tz = timezone.utc if event.tz == "UTC" else zone(event.tz)
    if worked:
        vevent.add("rdate", [datetime.combine(d, start.time(), tz) for d in worked])
    if off:
        vevent.add("exdate", [datetime.combine(d, start.time(), tz) for d in off])
