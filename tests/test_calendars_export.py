"""Export: chime's events → iCalendar → import into a fresh database gives the same events and
the same planned instants; the file is valid for other calendar programs; the CLI commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import icalendar
import pytest
import vobject
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from daemon.app import App
from daemon.calendars import export, export_calendar, import_file, import_text
from daemon.cli import main
from daemon.planning import alarm_of, occurrences
from daemon.reminders import add as add_reminder
from daemon.store import repo
from daemon.store.models import Event
from tests.calendar_fixtures import (
    NOW,
    corpus,
    dump,
    events_by_uid,
    independent,
    make_app,
    planned,
    revision,
)

FIELDS = ("task", "dtstart", "tz", "rrule", "rdates", "exdates", "alarm_s", "duration_s")
YEAR = (NOW, NOW + timedelta(days=366))


@pytest.fixture
def cal_app(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path / "chime.db")
    yield app
    app.db.close()


def own_events(app: App) -> None:
    """Reminders made with chime, one of each shape."""
    add_reminder(app, "买咖啡", "2026-12-01 08:00", lead="10m")
    add_reminder(app, "standup", "2026-11-30 09:30", every="weekdays", tz="Europe/Berlin")
    add_reminder(app, "吃药", "2026-11-29 21:00", every="FREQ=DAILY;UNTIL=20270115T210000",
                 lead="0s")
    add_reminder(app, "night shift", "2026-12-05 23:30", every="FREQ=WEEKLY;COUNT=8",
                 tz="UTC")
    with app.db.session() as s:
        standup = s.scalars(select(Event).where(Event.task == "standup")).one()
        repo.update_event(s, standup, exdates=["2026-12-25T09:30:00", "2027-01-01T09:30:00"],
                          rdates=["2026-12-27T10:00:00"])


def rows(app: App) -> list[tuple[object, ...]]:
    with app.db.session() as s:
        return sorted(tuple(getattr(e, f) for f in FIELDS) for e in s.scalars(select(Event)))


def test_round_trip_into_a_fresh_database(cal_app: App, tmp_path: Path) -> None:
    own_events(cal_app)
    text, count = export(cal_app, str(tmp_path / "mine.ics"))
    assert count == 4 and (tmp_path / "mine.ics").read_bytes().decode() == text
    fresh = make_app(tmp_path / "fresh.db")
    outcome = import_file(fresh, tmp_path / "mine.ics")
    assert (outcome.added, outcome.skipped) == (4, [])
    assert rows(fresh) == rows(cal_app)
    assert planned(fresh, *YEAR) == planned(cal_app, *YEAR)
    assert len(planned(cal_app, *YEAR)) > 300
    fresh.db.close()


def test_reimporting_the_export_matches_instead_of_duplicating(cal_app: App,
                                                               tmp_path: Path) -> None:
    own_events(cal_app)
    text, _ = export(cal_app, "-")
    before, rev = dump(tmp_path / "chime.db"), revision(cal_app)
    outcome = import_text(cal_app, text)
    assert (outcome.added, outcome.updated, outcome.unchanged) == (0, 0, 4)
    assert dump(tmp_path / "chime.db") == before and revision(cal_app) == rev


def test_export_is_valid_icalendar(cal_app: App) -> None:
    own_events(cal_app)
    text, _ = export(cal_app, "-")
    assert "DTSTART;TZID=Europe/Berlin:20261130T093000" in text
    assert "RRULE:FREQ=DAILY;UNTIL=20270115T130000Z" in text  # UNTIL in UTC (RFC 5545)
    assert "EXDATE;TZID=Europe/Berlin:20261225T093000,20270101T093000" in text
    assert "DTSTART:20261205T233000Z" in text
    # another implementation reads the same instants from the file
    assert independent(text, *YEAR) == planned(cal_app, *YEAR)


def test_every_tzid_has_its_vtimezone_every_event_a_duration_and_an_alarm(
        cal_app: App) -> None:
    own_events(cal_app)
    import_file(cal_app, corpus("google_work.ics"))
    cal = icalendar.Calendar.from_ical(export(cal_app, "-", include_all=True)[0])
    tzids = {str(prop.params["TZID"]) for event in cal.walk("VEVENT")
             for name in ("DTSTART", "RDATE", "EXDATE")
             for prop in (event.get(name) if isinstance(event.get(name), list)
                          else [event.get(name)]) if prop is not None and "TZID" in prop.params}
    assert tzids == {"Asia/Shanghai", "Europe/Berlin"}
    assert {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")} == tzids  # one each (RFC 5545)
    for event in cal.walk("VEVENT"):
        assert event.get("DURATION") is not None and event.get("DTEND") is None
        assert [a["ACTION"] for a in event.walk("VALARM")] == ["DISPLAY"]


def vobject_rings(text: str, start: datetime, end: datetime) -> set[tuple[str, datetime, datetime]]:
    """(task, start, instant the alarm rings) by vobject: a second, independent parser and
    recurrence engine, which reads each TZID's offsets from the file's own VTIMEZONE."""
    found = set()
    for vevent in vobject.readOne(text).vevent_list:
        trigger = vevent.valarm.trigger.value
        rules = vevent.getrruleset(addRDate=True)
        starts = ([vevent.dtstart.value] if rules is None else
                  rules.between(start - timedelta(days=1), end + timedelta(days=1), inc=True))
        for at in starts:
            assert type(at.tzinfo).__name__ in ("_tzicalvtz", "tzutc")  # from the VTIMEZONE
            if start <= at < end:
                found.add((vevent.summary.value, at.astimezone(timezone.utc),
                           (at + trigger).astimezone(timezone.utc)))
    return found


def chime_rings(app: App, start: datetime, end: datetime) -> set[tuple[str, datetime, datetime]]:
    with app.db.session() as s:
        events = list(s.scalars(select(Event)))
    return {(e.task, at.astimezone(timezone.utc), at - alarm_of(e.alarm_s))
            for e in events for at in occurrences(e, start, end)}


def test_another_program_reads_the_same_starts_and_alarms(cal_app: App) -> None:
    own_events(cal_app)
    import_file(cal_app, corpus("google_work.ics"))
    text, _ = export(cal_app, "-", include_all=True)
    expected = chime_rings(cal_app, *YEAR)
    assert vobject_rings(text, *YEAR) == expected
    review = [r for r in expected if r[0] == "提交周报"]
    assert review and all(at - ring == timedelta(minutes=30) for _, at, ring in review)


def test_all_includes_imported_events(cal_app: App, tmp_path: Path) -> None:
    own_events(cal_app)
    import_file(cal_app, corpus("google_work.ics"))
    assert export(cal_app, "-")[1] == 4
    text, count = export(cal_app, "-", include_all=True)
    assert count == 10
    fresh = make_app(tmp_path / "fresh.db")
    import_text(fresh, text)
    assert rows(fresh) == rows(cal_app)
    assert planned(fresh, *YEAR) == planned(cal_app, *YEAR)
    assert set(events_by_uid(fresh)) >= {k for k in events_by_uid(cal_app) if "@" in k}
    fresh.db.close()


def test_export_calendar_of_nothing_is_valid() -> None:
    text = export_calendar([], NOW)
    assert icalendar.Calendar.from_ical(text).walk("VEVENT") == []


# --- the commands ----------------------------------------------------------------------------

FUTURE_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VEVENT\r\nUID:far-1@test\r\nDTSTAMP:20300101T000000Z\r\n"
    "DTSTART;TZID=Asia/Shanghai:20400105T090000\r\nRRULE:FREQ=WEEKLY\r\nSUMMARY:周会\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:far-2@test\r\nDTSTAMP:20300101T000000Z\r\n"
    "DTSTART;TZID=Pluto/Base:20400105T090000\r\nSUMMARY:Pluto trip\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def cli(db: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--db", str(db), *args], input=stdin,
                              catch_exceptions=False)


def test_cli_import_export(tmp_path: Path) -> None:
    db, src = tmp_path / "chime.db", tmp_path / "far.ics"
    src.write_text(FUTURE_ICS, encoding="utf-8")
    r = cli(db, "import", str(src))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == "1 added, 0 updated, 0 removed, 0 unchanged, 1 skipped"
    assert "skipped 'Pluto trip' (UID far-2@test): unknown time zone 'Pluto/Base'" in r.stderr
    r = cli(db, "import", "-", "--json", stdin=FUTURE_ICS)
    assert json.loads(r.stdout)["unchanged"] == 1
    listed = json.loads(cli(db, "list", "--json").stdout)
    assert [(e["task"], e["source"], e["next"]) for e in listed] == [
        ("周会", "ics", "2040-01-05T09:00:00+08:00")]
    r = cli(db, "export", str(tmp_path / "out.ics"), "--all")
    assert r.exit_code == 0 and "exported 1 event(s)" in r.stdout
    assert "UID:far-1@test" in (tmp_path / "out.ics").read_text(encoding="utf-8")
    assert "BEGIN:VCALENDAR" in cli(db, "export", "-").stdout


def test_cli_bad_file_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "chime.db"
    assert cli(db, "list").exit_code == 0
    before = dump(db)
    r = cli(db, "import", str(corpus("not_calendar.ics")))
    assert r.exit_code == 2
    assert r.stderr == ("chime: not an iCalendar file (it does not begin with "
                        "BEGIN:VCALENDAR)\n")
    r = cli(db, "import", str(tmp_path / "nope.ics"))
    assert r.exit_code == 2 and r.stderr.startswith("chime: cannot read")
    assert dump(db) == before


def test_cli_subscriptions(tmp_path: Path, httpserver: HTTPServer) -> None:
    db = tmp_path / "chime.db"
    httpserver.expect_request("/far.ics").respond_with_data(
        FUTURE_ICS, content_type="text/calendar", headers={"ETag": '"1"'})
    url = httpserver.url_for("/far.ics")
    r = cli(db, "subscribe", url, "--every", "15m")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["subscribed: 1",
                                         "1 added, 0 updated, 0 removed, 0 unchanged, 1 skipped"]
    [sub] = json.loads(cli(db, "subscriptions", "--json").stdout)
    assert (sub["url"], sub["every"], sub["events"], sub["last_error"]) == (url, "15m", 1, None)
    assert "every 15m" in cli(db, "subscriptions").stdout
    [synced] = json.loads(cli(db, "sync", "--json").stdout)
    assert synced["status"] == "unchanged" and synced["error"] is None
    r = cli(db, "sync", "7")
    assert r.exit_code == 2 and "no subscription with id 7" in r.stderr
    r = cli(db, "unsubscribe", "1")
    assert r.stdout.strip() == "unsubscribed 1; 1 event(s) removed"
    assert json.loads(cli(db, "list", "--json").stdout) == []
    assert "no subscriptions yet" in cli(db, "subscriptions").stdout


def test_cli_sync_reports_failure(tmp_path: Path) -> None:
    from tests.context_fixtures import refused_url

    db = tmp_path / "chime.db"
    r = cli(db, "subscribe", refused_url("/x.ics"), "--every", "5m")
    assert r.exit_code == 0 and "fetching failed, will retry" in r.stderr
    started = datetime.now()
    r = cli(db, "sync")
    assert r.exit_code == 1 and "error" in r.stdout and "cannot connect" in r.stdout
    assert datetime.now() - started < timedelta(seconds=30)
