"""Calendar alarms ring at the alarm time: planned, prepared, delivered and shown 15 minutes
before the event, whose start the text names; events without an alarm ring at their start.
Also the named migrations that brought this (alarm column, unique calendar UIDs)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.calendars import import_text
from daemon.clock import FixedClock
from daemon.delivery import Courier
from daemon.generation.template import start_note
from daemon.reminders import show
from daemon.scheduler import plan
from daemon.store import Database
from daemon.store.models import Event, Occurrence
from tests.calendar_fixtures import NOW, SHANGHAI, make_app

ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:review@test\r
DTSTART;TZID=Asia/Shanghai:20261128T140000\r
DTEND;TZID=Asia/Shanghai:20261128T150000\r
SUMMARY:设计评审\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
TRIGGER:-PT15M\r
END:VALARM\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:tea@test\r
DTSTART;TZID=Asia/Shanghai:20261128T160000\r
SUMMARY:下午茶\r
END:VEVENT\r
END:VCALENDAR\r
"""
START = datetime(2026, 11, 28, 14, 0, tzinfo=SHANGHAI)
RING = START - timedelta(minutes=15)


@pytest.fixture
def cal_app(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path / "chime.db")  # NOW: 2026-11-28 10:00 Shanghai
    import_text(app, ICS)
    with app.db.session() as s:  # imported "two days ago" (the clock is fixed, the rows not)
        for event in s.scalars(select(Event)):
            event.updated_at = NOW - timedelta(days=2)
    yield app
    app.db.close()


def event_id(app: App, uid: str) -> int:
    with app.db.session() as s:
        return s.scalars(select(Event.id).where(Event.uid == uid)).one()


def test_the_alarm_rings_before_the_event_and_the_text_says_when_it_starts(
        cal_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    review, tea = event_id(cal_app, "review@test"), event_id(cal_app, "tea@test")
    cal_app.settings.daemon.horizon = timedelta(hours=8)
    slots = {s.event_id: s for s in plan(cal_app, NOW)}
    ring = slots[review]
    assert (ring.at, ring.starts_at) == (RING, START)
    assert ring.prepare_at == RING - cal_app.settings.daemon.lead  # prepared before it rings
    assert slots[tea].at == datetime(2026, 11, 28, 16, 0, tzinfo=SHANGHAI)  # no alarm: at start
    assert slots[tea].starts_at == slots[tea].at

    delivered: list[str] = []
    courier = Courier(cal_app)
    monkeypatch.setattr(courier, "_send", lambda name, r: delivered.append(r.message) or
                        {"ok": True, "detail": "test"})
    cal_app.clock = FixedClock(ring.prepare_at)
    assert courier.prepare([ring, slots[tea]]) == 2
    cal_app.clock = FixedClock(RING + timedelta(seconds=1))
    assert courier.deliver(ring) == "delivered"
    assert delivered[0].endswith("14:00开始（还有15分钟）。")
    with cal_app.db.session() as s:
        row = s.scalars(select(Occurrence).where(Occurrence.event_id == review)).one()
        assert (row.scheduled_at, row.starts_at, row.status) == (RING, START, "delivered")
        plain = s.scalars(select(Occurrence).where(Occurrence.event_id == tea)).one()
        assert plain.starts_at is None and "开始（还有" not in (plain.message or "")


def test_show_lists_both_times(cal_app: App) -> None:
    view = show(cal_app, event_id(cal_app, "review@test"), count=1)
    assert view["alarm"] == "15m"
    assert view["occurrences"] == [{"at": START.isoformat(), "rings": RING.isoformat()}]
    plain = show(cal_app, event_id(cal_app, "tea@test"), count=1)
    assert plain["alarm"] is None
    assert [o["rings"] for o in plain["occurrences"]] == [o["at"] for o in plain["occurrences"]]


def test_a_late_alarm_after_downtime_follows_the_grace_rules(cal_app: App) -> None:
    review = event_id(cal_app, "review@test")
    cal_app.clock = FixedClock(RING + timedelta(minutes=2))  # down at 13:45, back at 13:47
    courier = Courier(cal_app)
    courier._send = lambda name, r: {"ok": True}  # type: ignore[method-assign]
    counts = courier.catch_up(RING - timedelta(hours=1), RING + timedelta(minutes=2),
                              startup=True)
    assert counts == {"late": 1, "missed": 0}
    with cal_app.db.session() as s:
        row = s.scalars(select(Occurrence).where(Occurrence.event_id == review)).one()
        assert (row.scheduled_at, row.starts_at, row.status) == (RING, START, "late")
        assert row.message.endswith("14:00开始（还有15分钟）。")


@pytest.mark.parametrize(("left", "words"), [
    (timedelta(minutes=15), "14:00开始（还有15分钟）。"),
    (timedelta(hours=2, minutes=30), "14:00开始（还有2小时30分钟）。"),
    (timedelta(hours=15), "明天14:00开始（还有15小时）。"),
    (timedelta(days=3), "12月1日14:00开始（还有3天）。"),
])
def test_start_note_words(left: timedelta, words: str) -> None:
    start = datetime(2026, 12, 1, 14, 0, tzinfo=SHANGHAI) if left >= timedelta(days=3) else (
        START + timedelta(days=1) if left == timedelta(hours=15) else START)
    assert start_note((start - left).astimezone(timezone.utc), start) == words


# --- the migrations ---------------------------------------------------------------------------

def downgrade(db_path: Path) -> None:
    """Make a fresh file look like one written before the calendar migrations."""
    Database(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP INDEX uq_events_calendar_uid")
        for table, column in (("events", "alarm_s"), ("events", "duration_s"),
                              ("occurrences", "starts_at")):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("DELETE FROM migrations WHERE name > '0003'")  # 0003 and later
        conn.execute("UPDATE meta SET value = (SELECT count(*) FROM migrations) "
                     "WHERE key = 'schema_version'")


def test_migrations_move_alarms_and_merge_duplicate_uids(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    downgrade(path)
    cols = "task, dtstart, tz, rdates, exdates, paused, source, created_at, updated_at"
    with sqlite3.connect(path) as conn:
        def add(uid: str | None, source: str, lead: int | None, sub: int | None = None) -> int:
            cur = conn.execute(
                f"INSERT INTO events ({cols}, uid, lead_s, subscription_id) VALUES "
                "('t', '2026-12-01T14:00:00', 'Asia/Shanghai', '[]', '[]', 0, ?, "
                "'2026-11-01 00:00:00', '2026-11-01 00:00:00', ?, ?, ?)",
                (source, uid, lead, sub))
            return int(cur.lastrowid or 0)

        conn.execute("INSERT INTO subscriptions (id, url, every_s, created_at) VALUES "
                     "(7, 'http://127.0.0.1:1/c.ics', 1800, '2026-11-01 00:00:00')")
        first = add("a@x", "ics", 900)
        dup = add("a@x", "ics", 900)  # what two racing imports left behind
        other_scope = add("a@x", "feed", 600, sub=7)  # same UID, another scope: kept
        manual = add(None, "manual", 300)
        manual2 = add(None, "manual", None)
        for event, at, status in ((first, "2026-11-20 06:00:00", "delivered"),
                                  (dup, "2026-11-20 06:00:00", "delivered"),
                                  (dup, "2026-11-21 06:00:00", "delivered"),
                                  (dup, "2026-12-01 06:00:00", "pending")):
            conn.execute("INSERT INTO occurrences (event_id, task, scheduled_at, status, "
                         "repeat, created_at) VALUES (?, 't', ?, ?, 0, '2026-11-01 00:00:00')",
                         (event, at, status))
    db = Database(path)
    assert db.migrations()[2:4] == ["0003_calendar_alarms", "0004_unique_calendar_uid"]
    with db.session() as s:
        events = {e.id: e for e in s.scalars(select(Event))}
        assert set(events) == {first, other_scope, manual, manual2}
        assert (events[first].alarm_s, events[first].lead_s) == (900, None)
        assert (events[other_scope].alarm_s, events[other_scope].lead_s) == (600, None)
        assert (events[manual].alarm_s, events[manual].lead_s) == (None, 300)  # a lead stays
        rows = {(o.event_id, o.scheduled_at.isoformat(), o.status)
                for o in s.scalars(select(Occurrence))}
    assert rows == {  # moved where the kept row has nothing at that instant
        (first, "2026-11-20T06:00:00+00:00", "delivered"),
        (first, "2026-11-21T06:00:00+00:00", "delivered"),
        (first, "2026-12-01T06:00:00+00:00", "pending"),
        (None, "2026-11-20T06:00:00+00:00", "delivered"),  # a double: history without event
    }
    with pytest.raises(sqlite3.IntegrityError), sqlite3.connect(path) as conn:
        conn.execute(f"INSERT INTO events ({cols}, uid) VALUES ('t', '2026-12-01T14:00:00', "
                     "'UTC', '[]', '[]', 0, 'ics', '2026-11-01', '2026-11-01', 'a@x')")
    db.close()
