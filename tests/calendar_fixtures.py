"""Helpers for the calendar tests: the .ics corpus, apps on their own databases, and two
independent ways to list instants (chime's planner and recurring-ical-events)."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from sqlalchemy import select

from daemon.app import App
from daemon.clock import FixedClock
from daemon.config import load_settings
from daemon.planning import occurrences
from daemon.store import repo
from daemon.store.models import Event

ICS = Path(__file__).resolve().parent / "data" / "ics"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=SHANGHAI)  # a Saturday, as in conftest's fixed_app


def corpus(name: str) -> Path:
    return ICS / name


def corpus_text(name: str) -> str:
    """A corpus file's exact text (CRLF kept, unlike Path.read_text)."""
    return (ICS / name).read_bytes().decode("utf-8")


def make_app(db: Path, now: datetime = NOW, all_day_at: time = time(8)) -> App:
    """An App on its own database file with a fixed clock."""
    settings = load_settings(db=db)
    settings.calendars.all_day_at = all_day_at
    return App(settings, FixedClock(now))


def events_by_uid(app: App) -> dict[str, Event]:
    with app.db.session() as s:
        return {e.uid or f"manual-{e.id}": e for e in s.scalars(select(Event).order_by(Event.id))}


def revision(app: App) -> int:
    with app.db.session() as s:
        return repo.revision(s)


def dump(db: Path) -> list[str]:
    """The whole database as SQL text (to prove that nothing changed)."""
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def planned(app: App, start: datetime, end: datetime,
            skip_uids: set[str] = frozenset()) -> set[tuple[str, datetime]]:  # type: ignore[assignment]
    """(task, UTC instant) of every event's occurrences by chime's planner."""
    with app.db.session() as s:
        rows = list(s.scalars(select(Event)))
    found = set()
    for event in rows:
        if (event.uid or "").split("#")[0] in skip_uids:
            continue
        for at in occurrences(event, start, end):
            found.add((event.task, at.astimezone(timezone.utc)))
    return found


def independent(text: str, start: datetime, end: datetime, default_tz: str = "Asia/Shanghai",
                all_day_at: time = time(8)) -> set[tuple[str, datetime]]:
    """The same, computed by recurring-ical-events from the file itself (VEVENTs only):
    all-day events at ``all_day_at`` in ``default_tz``, floating times in X-WR-TIMEZONE."""
    cal = icalendar.Calendar.from_ical(text)
    floating = ZoneInfo(str(cal.get("X-WR-TIMEZONE", default_tz)))
    found = set()
    for comp in recurring_ical_events.of(cal).between(start - timedelta(days=2),
                                                      end + timedelta(days=2)):
        if str(comp.get("STATUS", "")).upper() == "CANCELLED":
            continue
        value = comp["DTSTART"].dt
        outlook_day = str(comp.get("X-MICROSOFT-CDO-ALLDAYEVENT", "")).upper() == "TRUE"
        if isinstance(value, datetime) and outlook_day and value.time() == time(0):
            value = value.date()
        if not isinstance(value, datetime):
            assert isinstance(value, date)
            at = datetime.combine(value, all_day_at, tzinfo=ZoneInfo(default_tz))
        elif value.tzinfo is None:
            at = value.replace(tzinfo=floating)
        else:
            at = value
        if start <= at < end:
            found.add((" ".join(str(comp["SUMMARY"]).split()), at.astimezone(timezone.utc)))
    return found


def todo_uids(text: str) -> set[str]:
    return {str(c["UID"]) for c in icalendar.Calendar.from_ical(text).walk("VTODO")}
