"""Importing .ics files: the corpus in the shapes Google, Outlook and Apple export, broken input,
idempotency by UID, and the planner's instants cross-checked with recurring-ical-events."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.calendars import apply as apply_module
from daemon.calendars import import_file, import_text
from daemon.config import load_settings
from daemon.errors import ConfigError, InputError
from daemon.planning import occurrences
from daemon.reminders import add as add_reminder
from daemon.store import repo
from daemon.store.models import Event, Occurrence
from tests.calendar_fixtures import (
    NOW,
    corpus,
    corpus_text,
    dump,
    events_by_uid,
    independent,
    make_app,
    planned,
    revision,
    todo_uids,
)

STANDUP = "3q8v1m2k9s0d7f6g5h4j3k2l1@google.com"


@pytest.fixture
def cal_app(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path / "chime.db")
    yield app
    app.db.close()


def test_google_export_becomes_events(cal_app: App) -> None:
    outcome = import_file(cal_app, corpus("google_work.ics"))
    assert (outcome.added, outcome.updated, outcome.removed, outcome.past) == (6, 0, 0, 1)
    assert outcome.skipped == []
    got = events_by_uid(cal_app)
    standup = got[STANDUP]
    assert (standup.task, standup.tz, standup.dtstart) == ("站会", "Asia/Shanghai",
                                                           "2026-11-30T09:30:00")
    assert standup.rrule == "FREQ=WEEKLY;BYDAY=MO,WE,FR"
    # two EXDATEs, the moved instance and the cancelled one
    assert standup.exdates == ["2026-12-02T09:30:00", "2026-12-04T09:30:00",
                               "2026-12-25T09:30:00", "2027-01-01T09:30:00"]
    assert standup.alarm_s == 15 * 60 and standup.source == "ics"
    moved = got[f"{STANDUP}#2026-12-02T01:30:00Z"]
    assert (moved.task, moved.dtstart, moved.rrule, moved.alarm_s) == (
        "站会（改到十点半）", "2026-12-02T10:30:00", None, 600)
    utc = got["0a1b2c3d4e5f6g7h8i9j@google.com"]
    assert (utc.tz, utc.dtstart, utc.alarm_s) == ("UTC", "2026-12-03T06:00:00", 1800)
    birthday = got["5m6n7b8v9c0x1z2a3s4d@google.com"]  # all-day: 08:00 in the configured zone
    assert (birthday.tz, birthday.dtstart, birthday.rrule) == ("Asia/Shanghai",
                                                               "2026-12-24T08:00:00", "FREQ=YEARLY")
    berlin = got["9p8o7i6u5y4t3r2e1w0q@google.com"]  # UNTIL (UTC) → Berlin wall time (CEST)
    assert berlin.rrule == "FREQ=WEEKLY;UNTIL=20270330T175959;BYDAY=TU;WKST=MO"
    assert berlin.alarm_s is None
    assert "2x3c4v5b6n7m8q9w0e1r@google.com" not in got  # STATUS:CANCELLED master
    assert "7h6g5f4d3s2a1q0w9e8r@google.com" not in got  # in 2025: nothing left to remind
    week = sorted((at, task) for task, at in planned(cal_app, NOW, NOW + timedelta(days=7)))
    assert [(at.astimezone(NOW.tzinfo).strftime("%m-%d %H:%M"), task) for at, task in week] == [
        ("11-30 09:30", "站会"), ("12-01 21:00", "吃药"), ("12-02 00:00", "Berlin sync"),
        ("12-02 10:30", "站会（改到十点半）"), ("12-02 21:00", "吃药"), ("12-03 14:00", "提交周报"),
        ("12-03 21:00", "吃药"), ("12-04 21:00", "吃药")]  # 12-04 09:30 is cancelled


def test_reimport_changes_nothing(cal_app: App, tmp_path: Path) -> None:
    import_file(cal_app, corpus("google_work.ics"))
    before, rev = dump(tmp_path / "chime.db"), revision(cal_app)
    again = import_file(cal_app, corpus("google_work.ics"))
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 6)
    assert revision(cal_app) == rev
    assert dump(tmp_path / "chime.db") == before


def test_edited_file_updates_in_place_and_keeps_delivered(cal_app: App) -> None:
    text = corpus_text("google_work.ics")
    import_text(cal_app, text)
    standup = events_by_uid(cal_app)[STANDUP]
    delivered_at = occurrences(standup, NOW, NOW + timedelta(days=3))[0]
    pending_at = occurrences(standup, NOW + timedelta(days=3), NOW + timedelta(days=10))[0]
    with cal_app.db.session() as s:
        event = s.get(Event, standup.id)
        repo.ensure_occurrence(s, event, delivered_at).status = "delivered"
        repo.ensure_occurrence(s, event, pending_at)
    rev = revision(cal_app)
    edited = text.replace("SUMMARY:站会\r\n", "SUMMARY:每日站会\r\n", 1).replace(
        "TRIGGER:-P0DT0H15M0S", "TRIGGER:-P0DT0H20M0S", 1)
    outcome = import_text(cal_app, edited)
    assert (outcome.added, outcome.updated, outcome.removed) == (0, 1, 0)
    after = events_by_uid(cal_app)[STANDUP]
    assert after.id == standup.id and after.task == "每日站会" and after.alarm_s == 1200
    assert revision(cal_app) > rev
    with cal_app.db.session() as s:
        rows = list(s.scalars(select(Occurrence).where(Occurrence.event_id == standup.id)))
    assert [(r.scheduled_at, r.status) for r in rows] == [(delivered_at, "delivered")]


def test_import_never_deletes_but_cancelling_removes(cal_app: App) -> None:
    mine = add_reminder(cal_app, "买咖啡", "2026-12-01 08:00")
    import_file(cal_app, corpus("google_work.ics"))
    import_file(cal_app, corpus("apple_home.ics"))  # another file: the first one's events stay
    got = events_by_uid(cal_app)
    assert STANDUP in got and f"manual-{mine.id}" in got
    text = corpus_text("google_work.ics")
    cancelled = text.replace("SUMMARY:吃药\r\n", "SUMMARY:吃药\r\nSTATUS:CANCELLED\r\n")
    cancelled = cancelled.replace("STATUS:CONFIRMED\r\nSUMMARY:吃药", "SUMMARY:吃药")
    outcome = import_text(cal_app, cancelled)
    assert outcome.removed == 1
    got = events_by_uid(cal_app)
    assert "1l2k3j4h5g6f7d8s9a0p@google.com" not in got
    assert "8F1E2D3C-4B5A-4968-8776-65544332211A" in got and f"manual-{mine.id}" in got


def test_outlook_windows_and_custom_zones(cal_app: App) -> None:
    outcome = import_file(cal_app, corpus("outlook_windows_zones.ics"))
    assert outcome.added == 7 and outcome.skipped == []
    by_task = {e.task: e for e in events_by_uid(cal_app).values()}
    assert by_task["Weekly sync with Berlin"].tz == "Europe/Berlin"  # W. Europe Standard Time
    assert by_task["Weekly sync with Berlin"].exdates == ["2026-12-28T10:00:00",
                                                          "2027-01-04T10:00:00"]
    assert by_task["Weekly sync with Berlin (moved)"].dtstart == "2027-01-04T14:00:00"
    assert by_task["年终总结"].tz == "Asia/Shanghai"  # China Standard Time
    # "(UTC+01:00) Amsterdam, Berlin, …": a custom VTIMEZONE matched to a zone it names
    assert by_task["Dentist"].tz == "Europe/Amsterdam" and by_task["Dentist"].alarm_s == 3600
    # "Customized Time Zone" at +08:00 all year: the configured zone has the same offsets
    assert by_task["交房租"].tz == "Asia/Shanghai"
    # all-day, both ways Outlook writes it (VALUE=DATE, and midnight + X-MICROSOFT-CDO-ALLDAYEVENT)
    assert by_task["交年度报销"].dtstart == "2026-12-31T08:00:00"
    assert by_task["元旦"].dtstart == "2027-01-01T08:00:00"


def test_apple_floating_alarms_and_todos(cal_app: App) -> None:
    outcome = import_file(cal_app, corpus("apple_home.ics"))
    assert outcome.added == 6 and outcome.skipped == []
    by_task = {e.task: e for e in events_by_uid(cal_app).values()}
    dinner = by_task["Dinner with Sam"]  # floating: the calendar's X-WR-TIMEZONE
    assert (dinner.tz, dinner.dtstart, dinner.alarm_s) == ("America/New_York",
                                                          "2026-12-05T18:30:00", None)  # ACTION:NONE
    assert by_task["Call grandma"].alarm_s == 1800
    assert by_task["Pay rent"].alarm_s == 1800  # a VTODO's DUE, absolute TRIGGER 30 min before
    assert "Buy stamps" not in by_task and "Someday: learn the guitar" not in by_task
    market = by_task["Farmers market"]  # UNTIL as a DATE includes that day
    assert market.rrule == "FREQ=WEEKLY;UNTIL=20270131T235959"
    assert market.exdates == ["2026-12-20T08:00:00"]
    club = by_task["Book club"]
    assert club.exdates == ["2027-01-01T18:00:00", "2027-03-01T18:00:00"]


def test_all_day_time_is_configurable(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[calendars]\nall_day_at = "7:30"\n')
    settings = load_settings(config, tmp_path / "c.db")
    assert settings.calendars.all_day_at == time(7, 30)
    app = make_app(tmp_path / "c.db", all_day_at=settings.calendars.all_day_at)
    import_file(app, corpus("apple_home.ics"))
    market = {e.task: e for e in events_by_uid(app).values()}["Farmers market"]
    assert market.dtstart == "2026-12-06T07:30:00" and market.exdates == ["2026-12-20T07:30:00"]
    config.write_text('[calendars]\nall_day_at = "8 o\'clock"\n')
    with pytest.raises(ConfigError, match=r"\[calendars\] all_day_at: \"8 o'clock\" is not a time"):
        load_settings(config, tmp_path / "c.db")


def test_broken_events_are_skipped_and_named(cal_app: App) -> None:
    outcome = import_file(cal_app, corpus("broken_mixed.ics"))
    assert {e.task for e in events_by_uid(cal_app).values()} == {"晨跑", "浇花"}
    reasons = {p.uid: (p.summary, p.reason) for p in outcome.skipped}
    assert len(reasons) == 8
    assert reasons["bad-date-1c2d@nextcloud"][1].startswith("DTSTART: ")
    assert "unknown time zone 'Mars/Olympus'" in reasons["mars-3e4f@nextcloud"][1]
    assert "too frequent" in reasons["secondly-5a6b@nextcloud"][1]
    assert reasons["no-start-7c8d@nextcloud"][1] == "has no DTSTART"
    assert "THIS LINE HAS NO COLON" in reasons["garbled-9e0f@nextcloud"][1]
    assert reasons["untitled-1a2b@nextcloud"] == (None, "has no SUMMARY (nothing to remind of)")
    assert "COUNT and UNTIL" in reasons["contradiction-3c4d@nextcloud"][1]
    assert "VALARM is never closed" in reasons["unclosed-5e6f@nextcloud"][1]
    assert str(next(p for p in outcome.skipped if p.uid == "mars-3e4f@nextcloud")) == (
        "'Mars meeting' (UID mars-3e4f@nextcloud): unknown time zone 'Mars/Olympus' "
        "(no VTIMEZONE defines it)")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("html", None, "not an iCalendar file"),
        ("vcard", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Li Lei\r\nEND:VCARD\r\n",
         "not an iCalendar file"),
        ("empty", "", "not an iCalendar file"),
        ("binary", "\x89PNG\r\n\x1a\n\x00\x00", "not an iCalendar file"),
        ("cut short", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n"
         "DTSTART:20261201T090000Z\r\nSUMMARY:half", "ends inside VEVENT"),
        ("stray end", "BEGIN:VCALENDAR\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "without BEGIN"),
        ("secondly only", None, "too frequent"),
    ],
)
def test_fatal_input_writes_nothing(cal_app: App, tmp_path: Path, name: str, text: str | None,
                                    message: str) -> None:
    import_file(cal_app, corpus("google_work.ics"))
    before = dump(tmp_path / "chime.db")
    if text is None:
        file = corpus("not_calendar.ics" if name == "html" else "only_secondly.ics")
        text = file.read_bytes().decode("utf-8")
    with pytest.raises(InputError, match=message):
        import_text(cal_app, text)
    assert dump(tmp_path / "chime.db") == before


def test_a_failure_mid_import_writes_nothing(cal_app: App, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert cal_app.db.schema_version() > 0  # the database exists before the import
    before = dump(tmp_path / "chime.db")
    real_add, calls = repo.add_event, []

    def failing_add(s, **fields):  # type: ignore[no-untyped-def]
        calls.append(fields["task"])
        if len(calls) == 4:
            raise InputError("disk on fire")
        return real_add(s, **fields)

    monkeypatch.setattr(apply_module.repo, "add_event", failing_add)
    with pytest.raises(InputError, match="disk on fire"):
        import_file(cal_app, corpus("google_work.ics"))
    assert len(calls) == 4
    assert dump(tmp_path / "chime.db") == before


def test_unreadable_file(cal_app: App, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        import_file(cal_app, tmp_path / "missing.ics")


@pytest.mark.parametrize("name", ["google_work.ics", "outlook_windows_zones.ics",
                                  "apple_home.ics", "broken_mixed.ics"])
def test_planner_agrees_with_recurring_ical_events(cal_app: App, name: str) -> None:
    """The one place that computes occurrences (the planner) gives the instants that an
    independent implementation computes from the file itself, DST changes included."""
    text = corpus_text(name)
    import_text(cal_app, text)
    start, end = NOW, NOW + timedelta(days=200)
    todos = todo_uids(text) if name == "apple_home.ics" else set()
    ours = planned(cal_app, start, end, skip_uids=todos)
    if name == "broken_mixed.ics":  # recurring-ical-events would choke on the broken ones
        blocks = re.findall(r"BEGIN:VEVENT\n.*?END:VEVENT\n", text, re.S)
        text = ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n"
                + "".join(b for b in blocks if "UID:good-" in b) + "END:VCALENDAR\n")
        assert text.count("BEGIN:VEVENT") == 2
    theirs = independent(text, start, end)
    assert ours == theirs
    assert len(ours) > 20


def test_cancelling_a_series_removes_its_overrides(cal_app: App) -> None:
    text = corpus_text("google_work.ics")
    import_text(cal_app, text)
    assert f"{STANDUP}#2026-12-02T01:30:00Z" in events_by_uid(cal_app)
    master = text.index("UID:" + STANDUP)
    cancelled = text[:master] + text[master:].replace("STATUS:CONFIRMED", "STATUS:CANCELLED", 1)
    outcome = import_text(cal_app, cancelled)
    assert outcome.removed == 2
    assert not [k for k in events_by_uid(cal_app) if k.startswith(STANDUP)]


def test_calendar_settings_check(tmp_path: Path) -> None:
    from daemon.config_values import parse_clock_time

    assert parse_clock_time("7:05") == parse_clock_time(" 07:05 ") == time(7, 5)
    config = tmp_path / "config.toml"
    config.write_text('[calendars]\nall_day_at = "25:00"\ndefault_every = "1m"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, tmp_path / "c.db")
    assert info.value.problems == [
        "[calendars] all_day_at: '25:00' is not a time like 08:00",
        "[calendars] default_every: must be between 5m and 7d"]
