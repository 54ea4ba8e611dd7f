"""``--every`` phrases → RRULE, and official working days (国庆 and 调休) through the planner
and ``chime show --from --count``."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import chinese_calendar
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from daemon import reminders
from daemon.app import App
from daemon.cli import main
from daemon.clock import FixedClock
from daemon.config import load_settings
from daemon.context.days import Day, DayCalendar
from daemon.context.workdays import OfficialWorkdays
from daemon.errors import InputError
from daemon.planning import WORKDAYS, Recurrence, occurrences
from daemon.recurrence import Repeat, parse_every
from daemon.scheduler import plan
from tests.context_fixtures import FEED

WEEKLY_MO_FR = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"


@pytest.mark.parametrize(
    ("phrase", "rule"),
    [
        ("每天", "FREQ=DAILY"),
        ("每周一三五", "FREQ=WEEKLY;BYDAY=MO,WE,FR"),
        ("每周二和周四", "FREQ=WEEKLY;BYDAY=TU,TH"),
        ("每周一、周三", "FREQ=WEEKLY;BYDAY=MO,WE"),
        ("每个周日", "FREQ=WEEKLY;BYDAY=SU"),
        ("周末", "FREQ=WEEKLY;BYDAY=SA,SU"),
        ("周一到周五", WEEKLY_MO_FR),
        ("每周一至周三", "FREQ=WEEKLY;BYDAY=MO,TU,WE"),
        ("每半小时", "FREQ=MINUTELY;INTERVAL=30"),
        ("每两周", "FREQ=WEEKLY;INTERVAL=2"),
        ("每两周的周一", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"),
        ("隔周周五", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"),
        ("每隔一天", "FREQ=DAILY;INTERVAL=2"),
        ("每3天", "FREQ=DAILY;INTERVAL=3"),
        ("每2小时", "FREQ=HOURLY;INTERVAL=2"),
        ("每30分钟", "FREQ=MINUTELY;INTERVAL=30"),
        ("每月15号", "FREQ=MONTHLY;BYMONTHDAY=15"),
        ("每月1号和15号", "FREQ=MONTHLY;BYMONTHDAY=1,15"),
        ("每月最后一天", "FREQ=MONTHLY;BYMONTHDAY=-1"),
        ("每月第一个周一", "FREQ=MONTHLY;BYDAY=1MO"),
        ("每月最后一个周五", "FREQ=MONTHLY;BYDAY=-1FR"),
        ("每年5月20日", "FREQ=YEARLY;BYMONTH=5;BYMONTHDAY=20"),
        ("daily", "FREQ=DAILY"),
        ("every day", "FREQ=DAILY"),
        ("weekdays", WEEKLY_MO_FR),
        ("every weekday", WEEKLY_MO_FR),
        ("every monday", "FREQ=WEEKLY;BYDAY=MO"),
        ("Every Mon, Wed and Fri", "FREQ=WEEKLY;BYDAY=MO,WE,FR"),
        ("every tuesday and thursday", "FREQ=WEEKLY;BYDAY=TU,TH"),
        ("every other friday", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"),
        ("every 2 weeks", "FREQ=WEEKLY;INTERVAL=2"),
        ("every other week", "FREQ=WEEKLY;INTERVAL=2"),
        ("every 3 months", "FREQ=MONTHLY;INTERVAL=3"),
        ("every month on the 15th", "FREQ=MONTHLY;BYMONTHDAY=15"),
        ("every last day of the month", "FREQ=MONTHLY;BYMONTHDAY=-1"),
        ("every first monday of the month", "FREQ=MONTHLY;BYDAY=1MO"),
        ("every year on May 20", "FREQ=YEARLY;BYMONTH=5;BYMONTHDAY=20"),
        ("weekends", "FREQ=WEEKLY;BYDAY=SA,SU"),
        ("RRULE:FREQ=WEEKLY;BYDAY=MO", "FREQ=WEEKLY;BYDAY=MO"),
        ("freq=monthly;bysetpos=-1;byday=fr", "FREQ=MONTHLY;BYSETPOS=-1;BYDAY=FR"),
    ],
)
def test_phrase_to_rrule(phrase: str, rule: str) -> None:
    assert parse_every(phrase) == Repeat(rule)


@pytest.mark.parametrize("phrase", ["workdays", "every workday", "工作日", "每个工作日",
                                    "法定工作日", "working days"])
def test_official_workdays_are_a_filtered_daily_rule(phrase: str) -> None:
    assert parse_every(phrase) == Repeat("FREQ=DAILY", WORKDAYS)


@pytest.mark.parametrize(
    ("phrase", "fragment"),
    [
        ("every day blah", "unknown recurrence 'every day blah'"),
        ("每周八", "unknown recurrence '每周八'"),
        ("每十十天", "unknown recurrence '每十十天'"),
        ("每月十十号", "unknown recurrence '每月十十号'"),
        ("fortnightly", "unknown recurrence 'fortnightly'"),
        ("every 0 days", "at least every 1"),
        ("每月32号", "a month has no day 32"),
        ("every 2 minutes", "too frequent"),
        ("FREQ", "unknown recurrence 'FREQ'"),
        ("FREQ;BYDAY=MO", "each part must be NAME=VALUE"),
    ],
)
def test_bad_phrase_is_one_line(phrase: str, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_every(phrase)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_phrase_names_three_examples() -> None:
    with pytest.raises(InputError, match="unknown recurrence 'every blue moon': try 每周一三五, "
                                         "every 2 weeks, workdays"):
        parse_every("every blue moon")


# ---------------------------------------------------------------------------------------------
# Official working days

SH = "Asia/Shanghai"
STANDUP = Recurrence("2026-09-01T09:30:00", SH, "FREQ=DAILY", day_filter=WORKDAYS)


def days_of(found: list[datetime]) -> list[str]:
    return [t.astimezone(timezone(timedelta(hours=8))).strftime("%m-%d") for t in found]


def test_national_day_week_is_skipped_and_the_makeup_saturday_rings() -> None:
    workdays = OfficialWorkdays(DayCalendar("CN", festivals=False))
    start = datetime(2026, 9, 28, tzinfo=timezone.utc)
    found = occurrences(STANDUP, start, start + timedelta(days=16), workdays)
    assert days_of(found) == ["09-28", "09-29", "09-30", "10-08", "10-09", "10-10", "10-12",
                              "10-13"]


def test_weekdays_stay_monday_to_friday_through_national_day() -> None:
    weekdays = Recurrence("2026-09-01T09:30:00", SH, WEEKLY_MO_FR)
    start = datetime(2026, 9, 28, tzinfo=timezone.utc)
    found = occurrences(weekdays, start, start + timedelta(days=14))
    assert days_of(found)[3:8] == ["10-01", "10-02", "10-05", "10-06", "10-07"]


def test_every_day_of_2026_matches_the_official_calendar() -> None:
    workdays = OfficialWorkdays(DayCalendar("CN", festivals=False))
    day = date(2026, 1, 1)
    while day.year == 2026:
        assert workdays.is_workday(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


def test_unknown_year_falls_back_to_monday_to_friday_and_says_so() -> None:
    workdays = OfficialWorkdays(DayCalendar("CN", festivals=False))
    assert workdays.is_workday(date(2099, 1, 1))  # a Thursday, 元旦 or not
    assert not workdays.is_workday(date(2099, 1, 3))  # a Saturday
    note = workdays.fallback_note([2026, 2099])
    assert note is not None and "2099" in note and "2026" not in note
    assert "Monday–Friday" in note and "holiday_feed" in note


def test_a_holiday_feed_decides_a_year_the_library_does_not_know() -> None:
    feed = {date(2099, 1, 1): Day("元旦", "holiday"), date(2099, 1, 3): Day("调休", "makeup")}
    calendar = DayCalendar("CN", festivals=False)
    assert calendar.calendar_known(2099, feed)
    assert not calendar.is_workday(date(2099, 1, 1), feed)
    assert calendar.is_workday(date(2099, 1, 3), feed)
    assert calendar.is_workday(date(2099, 1, 5), feed)  # an ordinary Monday


def test_planning_a_workdays_event_without_the_calendar_is_refused() -> None:
    start = datetime(2026, 9, 28, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="Workdays"):
        occurrences(STANDUP, start, start + timedelta(days=2))


def chime(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def test_show_lists_workday_occurrences_from_a_date(db_path: Path) -> None:
    added = chime(db_path, "add", "站会", "--at", "2026-09-01 09:30", "--every", "每个工作日",
                  "--json")
    assert added.exit_code == 0, added.output
    event_id = str(json.loads(added.stdout)["id"])
    shown = json.loads(chime(db_path, "show", event_id, "--json", "--from", "2026-09-28",
                             "--count", "6").stdout)
    assert [o["at"][5:10] for o in shown["occurrences"]] == [
        "09-28", "09-29", "09-30", "10-08", "10-09", "10-10"]
    assert shown["occurrences"][0]["at"] == "2026-09-28T09:30:00+08:00"
    assert shown["day_filter"] == WORKDAYS and shown["notes"] == []
    later = chime(db_path, "show", event_id, "--from", "2099-01-01", "--count", "2")
    assert "2099-01-01T09:30:00+08:00, 2099-01-02T09:30:00+08:00" in later.stdout
    assert "note: workdays: the official CN calendar of 2099 is not known yet" in later.stdout
    edited = chime(db_path, "edit", event_id, "--every", "周一到周五")
    assert edited.exit_code == 0
    shown = json.loads(chime(db_path, "show", event_id, "--json", "--from", "2026-10-01",
                             "--count", "1").stdout)
    assert shown["day_filter"] is None and shown["occurrences"][0]["at"].startswith("2026-10-01")


def test_unknown_every_on_the_command_line_is_one_line(db_path: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(db_path), "add", "x", "--at", "明天8点",
                                       "--every", "every monday please"])
    assert result.exit_code != 0
    assert "unknown recurrence 'every monday please': try" in result.output
    assert "Traceback" not in result.output and "unpack" not in result.output


def test_the_holiday_feed_decides_workdays_of_a_year_the_library_does_not_know(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/cn.ics").respond_with_data(FEED, content_type="text/calendar")
    config = tmp_path / "config.toml"
    config.write_text(f'[days]\nholiday_feed = "{httpserver.url_for("/cn.ics")}"\n',
                      encoding="utf-8")
    now = datetime(2026, 11, 28, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    app = App(load_settings(config, db=tmp_path / "chime.db"), FixedClock(now))
    try:
        app.context_source.refresh(now)  # the daemon does this; planning reads only the cache
        event = reminders.add(app, "站会", "2027-02-01 09:30", every="workdays")
        shown = reminders.show(app, event.id, count=12, start="2027-02-01")
        mornings = [datetime(2027, 2, day, 9, 0, tzinfo=now.tzinfo) for day in (5, 8, 20)]
        planned = [slot.at for morning in mornings for slot in plan(app, morning)]
    finally:
        app.db.close()
    assert [o["at"][5:10] for o in shown["occurrences"]] == [
        "02-01", "02-02", "02-03", "02-04", "02-05",  # 春节 假期 02-06..02-13 from the feed
        "02-15", "02-16", "02-17", "02-18", "02-19", "02-20", "02-22"]  # 02-20: 补班 Saturday
    assert shown["notes"] == []
    assert planned == [datetime(2027, 2, 5, 1, 30, tzinfo=timezone.utc),  # the daemon agrees
                       datetime(2027, 2, 20, 1, 30, tzinfo=timezone.utc)]


def test_an_export_rings_on_the_same_workdays_in_other_programs() -> None:
    import icalendar
    import recurring_ical_events

    from daemon.calendars.write import export_calendar
    from daemon.store.models import Event

    event = Event(id=1, task="站会", dtstart="2026-09-01T09:30:00", tz=SH, rrule="FREQ=DAILY",
                  day_filter=WORKDAYS, rdates=[], exdates=[], source="manual",
                  created_at=datetime(2026, 8, 1, tzinfo=timezone.utc))
    now = datetime(2026, 9, 1, tzinfo=timezone.utc)
    text = export_calendar([event], now, OfficialWorkdays(DayCalendar("CN", festivals=False)))
    calendar = icalendar.Calendar.from_ical(text)
    found = recurring_ical_events.of(calendar).between(date(2026, 9, 28), date(2026, 10, 14))
    assert sorted(e["DTSTART"].dt.strftime("%m-%d %H:%M") for e in found) == [
        f"{day} 09:30" for day in ("09-28", "09-29", "09-30", "10-08", "10-09", "10-10",
                                   "10-12", "10-13")]


@given(st.text(max_size=30) | st.text("每隔周一二三四五六日天月号日个两半十零小时分钟到至和、,0123456789 ",
                                      max_size=12))
def test_every_never_crashes(text: str) -> None:
    try:
        repeat = parse_every(text)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert repeat.rrule.startswith("FREQ=")
