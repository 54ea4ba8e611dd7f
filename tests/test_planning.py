"""Planning is pure: occurrences between two instants, in the event's zone, across DST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from daemon.planning import Recurrence, local_times, next_occurrence, occurrences

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def local(instants: list[datetime], tz: ZoneInfo) -> list[str]:
    return [i.astimezone(tz).strftime("%m-%d %H:%M %Z") for i in instants]


def test_one_off_inside_and_outside_window() -> None:
    r = Recurrence(dtstart="2026-12-01T08:00:00", tz="Asia/Shanghai")
    start = datetime(2026, 11, 30, tzinfo=UTC)
    assert occurrences(r, start, start + timedelta(days=2)) == [datetime(2026, 12, 1, 0, 0, tzinfo=UTC)]
    assert occurrences(r, start + timedelta(days=2), start + timedelta(days=3)) == []


def test_spring_forward_gap_is_shifted_not_skipped_new_york() -> None:
    r = Recurrence(dtstart="2026-03-06T02:30:00", tz="America/New_York", rrule="FREQ=DAILY")
    got = occurrences(r, datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))
    # 2026-03-08 02:30 does not exist in New York: RFC 5545 reads it with the offset before
    # the gap, i.e. 03:30 EDT. One occurrence each day, none skipped.
    assert local(got, NY) == ["03-06 02:30 EST", "03-07 02:30 EST", "03-08 03:30 EDT", "03-09 02:30 EDT"]


def test_fall_back_ambiguous_hour_once_new_york() -> None:
    r = Recurrence(dtstart="2026-10-30T01:30:00", tz="America/New_York", rrule="FREQ=DAILY")
    got = occurrences(r, datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    # 01:30 happens twice on 2026-11-01: the first (EDT) one, once.
    assert local(got, NY) == ["10-30 01:30 EDT", "10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST"]


def test_berlin_dst_both_ways() -> None:
    spring = Recurrence(dtstart="2026-03-27T02:15:00", tz="Europe/Berlin", rrule="FREQ=DAILY")
    got = occurrences(spring, datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    assert local(got, BERLIN) == ["03-27 02:15 CET", "03-28 02:15 CET", "03-29 03:15 CEST", "03-30 02:15 CEST"]
    autumn = Recurrence(dtstart="2026-10-23T02:15:00", tz="Europe/Berlin", rrule="FREQ=DAILY")
    got = occurrences(autumn, datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC))
    assert local(got, BERLIN) == ["10-23 02:15 CEST", "10-24 02:15 CEST", "10-25 02:15 CEST", "10-26 02:15 CET"]


def test_wall_clock_is_kept_across_dst() -> None:
    r = Recurrence(dtstart="2026-03-01T08:00:00", tz="Europe/Berlin", rrule="FREQ=WEEKLY")
    got = occurrences(r, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 10, tzinfo=UTC))
    assert {i.astimezone(BERLIN).strftime("%H:%M") for i in got} == {"08:00"}
    assert len(got) == 6


def test_exdates_and_rdates() -> None:
    r = Recurrence(dtstart="2026-12-01T09:30:00", tz="Asia/Shanghai",
                   rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
                   exdates=["2026-12-02T09:30:00"], rdates=["2026-12-05T11:00:00"])
    got = occurrences(r, datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC))
    assert local(got, ZoneInfo("Asia/Shanghai")) == [
        "12-01 09:30 CST", "12-03 09:30 CST", "12-04 09:30 CST", "12-05 11:00 CST"]


def test_window_is_half_open_and_count_is_honoured() -> None:
    r = Recurrence(dtstart="2026-12-01T08:00:00", tz="UTC", rrule="FREQ=DAILY;COUNT=3")
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert len(occurrences(r, start, start + timedelta(days=10))) == 3
    assert occurrences(r, start, start + timedelta(days=1)) == [start]


def test_next_occurrence() -> None:
    r = Recurrence(dtstart="2020-01-01T07:00:00", tz="Asia/Shanghai", rrule="FREQ=DAILY",
                   exdates=["2026-11-29T07:00:00"])
    after = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert next_occurrence(r, after) == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # 30th 07:00
    once = Recurrence(dtstart="2026-01-01T07:00:00", tz="Asia/Shanghai")
    assert next_occurrence(once, after) is None
    rd = Recurrence(dtstart="2026-01-01T07:00:00", tz="UTC", rdates=["2026-12-24T18:00:00"])
    assert next_occurrence(rd, after) == datetime(2026, 12, 24, 18, tzinfo=UTC)


RULES = ["FREQ=DAILY", "FREQ=DAILY;INTERVAL=3;BYHOUR=8,20", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
         "FREQ=HOURLY;INTERVAL=5", "FREQ=MINUTELY;INTERVAL=45", "FREQ=WEEKLY;BYDAY=SA,SU;BYMINUTE=0,30",
         "FREQ=DAILY;UNTIL=20270101T000000", "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=DAILY;COUNT=500"]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("zone_name", ["Asia/Shanghai", "America/New_York"])
def test_moving_the_start_forward_changes_no_occurrence(rule: str, zone_name: str) -> None:
    """rule_near() skips whole intervals: the result must equal a walk from the real start."""
    from dateutil.rrule import rrulestr

    start = datetime(2025, 1, 7, 9, 17)
    window = (datetime(2026, 3, 1), datetime(2026, 3, 20))
    expected = list(rrulestr(rule, dtstart=start).between(*window, inc=True))
    got = list(local_times(Recurrence(start.isoformat(), zone_name, rule), *window))
    assert got == expected
    assert next_occurrence(Recurrence(start.isoformat(), zone_name, rule),
                           datetime(2026, 3, 1, tzinfo=UTC)) is not None or rule.endswith("COUNT=500")


@pytest.mark.parametrize("zone_name", ["Europe/Berlin", "America/New_York", "Asia/Shanghai"])
@pytest.mark.parametrize("rule", ["FREQ=MINUTELY;INTERVAL=30", "FREQ=HOURLY", "FREQ=DAILY"])
def test_next_occurrence_agrees_with_occurrences_around_dst_changes(zone_name: str,
                                                                    rule: str) -> None:
    """next_occurrence skips its DST slack away from a change: it must still find the same
    instant as the full expansion, on both sides of both 2026 changes."""
    r = Recurrence("2026-01-01T02:30:00", zone_name, rule)
    for change in (datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 29, 1, tzinfo=UTC),
                   datetime(2026, 10, 25, 1, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)):
        for minutes in range(-300, 301, 10):
            after = change + timedelta(minutes=minutes)
            expected = occurrences(r, after + timedelta(microseconds=1), after + timedelta(2))
            assert next_occurrence(r, after) == expected[0], after
