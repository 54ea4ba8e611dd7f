"""parse.py and zones.py on small inline calendars: zones, alarms, overrides, odd shapes."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest
from icalendar import Component

from daemon.calendars.parse import Item, Options, Parsed, parse_calendar
from daemon.calendars.split import split_calendar
from daemon.calendars.zones import UnknownZone, ZoneResolver
from daemon.errors import InputError
from daemon.planning import Recurrence, occurrences
from tests.calendar_fixtures import NOW, independent

OPTS = Options("Asia/Shanghai", time(8), NOW)

ODD_ZONE = """BEGIN:VTIMEZONE
TZID:Odd Standard Time
BEGIN:STANDARD
DTSTART:19701011T020000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=2SU
TZOFFSETFROM:+0615
TZOFFSETTO:+0515
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700412T020000
RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=2SU
TZOFFSETFROM:+0515
TZOFFSETTO:+0615
END:DAYLIGHT
END:VTIMEZONE
"""


def cal(*events: str, head: str = "", zones: str = "") -> str:
    body = "".join(f"BEGIN:VEVENT\nDTSTAMP:20261120T000000Z\n{e.strip()}\nEND:VEVENT\n"
                   for e in events)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{head}{zones}{body}END:VCALENDAR\n"


def parse(text: str, opts: Options = OPTS) -> Parsed:
    return parse_calendar(text, opts)


def only(parsed: Parsed) -> Item:
    assert parsed.skipped == [] and len(parsed.items) == 1, (parsed.skipped, parsed.items)
    return parsed.items[0]


@pytest.mark.parametrize(
    ("tzid", "iana"),
    [
        ("Asia/Shanghai", "Asia/Shanghai"),
        ("China Standard Time", "Asia/Shanghai"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Eastern Standard Time", "America/New_York"),
        ("/freeassociation.sourceforge.net/Tzfile/Europe/Berlin", "Europe/Berlin"),
        ("/mozilla.org/20070129_1/America/Argentina/Buenos_Aires",
         "America/Argentina/Buenos_Aires"),
        ("UTC", "UTC"),
    ],
)
def test_known_tzids(tzid: str, iana: str) -> None:
    assert ZoneResolver({}, "Asia/Shanghai", 2026).resolve(tzid).name == iana


def test_unknown_tzid() -> None:
    with pytest.raises(UnknownZone, match="unknown time zone 'Mars/Olympus'"):
        ZoneResolver({}, "Asia/Shanghai", 2026).resolve("Mars/Olympus")
    with pytest.raises(UnknownZone):
        ZoneResolver({}, "Asia/Shanghai", 2026).resolve("../../etc/passwd")


def test_custom_vtimezone_with_x_lic_location() -> None:
    block = Component.from_ical("BEGIN:VTIMEZONE\r\nTZID:Home\r\nX-LIC-LOCATION:Asia/Tokyo\r\n"
                                "BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
                                "TZOFFSETFROM:+0900\r\nTZOFFSETTO:+0900\r\nEND:STANDARD\r\n"
                                "END:VTIMEZONE\r\n")
    assert ZoneResolver({"Home": block}, "Asia/Shanghai", 2026).resolve("Home").name == "Asia/Tokyo"


def test_custom_zone_without_iana_match_is_kept_in_utc() -> None:
    text = cal("UID:odd-1\nSUMMARY:Odd one-off\nDTSTART;TZID=Odd Standard Time:20261215T090000",
               "UID:odd-2\nSUMMARY:Odd weekly\nDTSTART;TZID=Odd Standard Time:20261216T090000\n"
               "RRULE:FREQ=WEEKLY;COUNT=3", zones=ODD_ZONE)
    parsed = parse(text)
    one, weekly = parsed.items
    assert (one.tz, one.dtstart) == ("UTC", "2026-12-15T03:45:00")  # 09:00 at +05:15
    assert (weekly.tz, weekly.dtstart) == ("UTC", "2026-12-16T03:45:00")
    assert [n.reason for n in parsed.notes] == [
        "its time zone matches no IANA zone; its times are kept in UTC"]
    window = (NOW, NOW + timedelta(days=60))
    ours = {(i.task, at) for i in parsed.items for at in occurrences(
        Recurrence(i.dtstart, i.tz, i.rrule, i.rdates, i.exdates), *window)}
    assert ours == independent(text, *window)


def test_alarms() -> None:
    def lead(alarm: str, action: str = "DISPLAY") -> int | None:
        event = ("UID:a\nSUMMARY:x\nDTSTART:20261215T090000Z\nDTEND:20261215T100000Z\n"
                 f"BEGIN:VALARM\nACTION:{action}\n{alarm}\nEND:VALARM")
        return only(parse(cal(event))).alarm_s

    assert lead("TRIGGER:-PT15M") == 900
    assert lead("TRIGGER;RELATED=END:-PT90M") == 1800  # 90 min before the end, 1 h long
    assert lead("TRIGGER:PT5M") == 0  # after the start: remind at the start
    assert lead("TRIGGER:-P10D") == 7 * 86400  # capped like --lead
    assert lead("TRIGGER;VALUE=DATE-TIME:20261215T084500Z") == 900
    assert lead("TRIGGER:-PT5M", action="NONE") is None  # Apple's "no alert"
    assert only(parse(cal("UID:a\nSUMMARY:x\nDTSTART:20261215T090000Z"))).alarm_s is None


def test_floating_time_without_calendar_zone_uses_the_configured_one() -> None:
    item = only(parse(cal("UID:f\nSUMMARY:x\nDTSTART:20261215T090000")))
    assert (item.tz, item.dtstart) == ("Asia/Shanghai", "2026-12-15T09:00:00")
    berlin = Options("Europe/Berlin", time(8), NOW)
    assert only(parse(cal("UID:f\nSUMMARY:x\nDTSTART:20261215T090000"), berlin)).tz == (
        "Europe/Berlin")


def test_rdates_exdates_in_other_zones() -> None:
    item = only(parse(cal(
        "UID:r\nSUMMARY:x\nDTSTART;TZID=Europe/Berlin:20261201T090000\nRRULE:FREQ=WEEKLY\n"
        "EXDATE:20261208T080000Z\n"  # 09:00 Berlin, written in UTC
        "RDATE;VALUE=PERIOD:20261210T080000Z/PT1H,20261211T080000Z/20261211T090000Z\n"
        "RDATE;TZID=Asia/Shanghai:20261212T160000")))
    assert item.exdates == ["2026-12-08T09:00:00"]
    assert item.fields()["rdates"] == ["2026-12-10T09:00:00", "2026-12-11T09:00:00",
                                       "2026-12-12T09:00:00"]


def test_dtstart_off_the_rule_is_still_an_instance() -> None:
    item = only(parse(cal("UID:d\nSUMMARY:x\nDTSTART;TZID=Asia/Shanghai:20261201T090000\n"
                          "RRULE:FREQ=WEEKLY;BYDAY=MO")))  # 12-01 is a Tuesday
    assert item.rdates == ["2026-12-01T09:00:00"]
    sched = Recurrence(item.dtstart, item.tz, item.rrule, item.rdates, item.exdates)
    firsts = occurrences(sched, NOW, NOW + timedelta(days=10))
    assert [t.astimezone(NOW.tzinfo).day for t in firsts] == [1, 7]


def test_overrides_without_master_and_of_cancelled_series() -> None:
    orphan = parse(cal("UID:o\nSUMMARY:Invited once\nRECURRENCE-ID:20261210T020000Z\n"
                       "DTSTART:20261210T030000Z"))
    assert [i.key for i in orphan.items] == ["o#2026-12-10T02:00:00Z"]
    gone = parse(cal("UID:c\nSUMMARY:x\nSTATUS:CANCELLED\nDTSTART:20261201T020000Z\n"
                     "RRULE:FREQ=DAILY",
                     "UID:c\nSUMMARY:x\nRECURRENCE-ID:20261203T020000Z\n"
                     "DTSTART:20261203T050000Z"))
    assert gone.items == [] and gone.cancelled == {"c"}


def test_duplicate_uid_takes_the_higher_sequence() -> None:
    parsed = parse(cal("UID:dup\nSEQUENCE:3\nSUMMARY:new\nDTSTART:20261210T020000Z",
                       "UID:dup\nSEQUENCE:1\nSUMMARY:old\nDTSTART:20261209T020000Z"))
    assert only(parsed).task == "new"


def test_missing_uid_is_stable_and_long_summary_is_cut() -> None:
    event = "SUMMARY:" + "很长" * 150 + "\nDTSTART:20261210T020000Z"
    first = only(parse(cal(event)))
    second = only(parse(cal(event).replace("DTSTAMP:20261120T000000Z", "DTSTAMP:20261121T0Z")))
    assert first.key == second.key and first.key.startswith("chime-")
    assert len(first.task) == 200 and first.task.endswith("…")


def test_past_series_and_todos() -> None:
    parsed = parse(cal("UID:p\nSUMMARY:old\nDTSTART:20250101T020000Z\nRRULE:FREQ=DAILY;COUNT=3",
                       "UID:q\nSUMMARY:leap day\nDTSTART;VALUE=DATE:20240229\n"
                       "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"))
    assert parsed.past == 1 and [i.key for i in parsed.items] == ["q"]  # next: 2028-02-29
    assert parsed.items[0].dtstart == "2024-02-29T08:00:00"


def test_several_calendars_bom_and_folding() -> None:
    one = cal("UID:1\nSUMMARY:first\nDTSTART:20261210T020000Z")
    two = cal("UID:2\nSUMMARY:sec\n ond\nDTSTART:20261211T020000Z")
    parsed = parse("\ufeff" + one.replace("\n", "\r\n") + two)
    assert [(i.key, i.task) for i in parsed.items] == [("1", "first"), ("2", "second")]


def test_split_reports_structure_errors() -> None:
    with pytest.raises(InputError, match="BEGIN:VEVENT outside a VCALENDAR"):
        split_calendar("BEGIN:VCALENDAR\nEND:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\n")
    props, blocks = split_calendar(cal("UID:1\nSUMMARY:a\nDTSTART:20261210T020000Z",
                                       head="X-WR-TIMEZONE:Europe/Paris\n"))
    assert props["X-WR-TIMEZONE"] == "Europe/Paris" and [b.name for b in blocks] == ["VEVENT"]


def test_now_matters_only_for_what_is_past() -> None:
    text = cal("UID:1\nSUMMARY:a\nDTSTART:20261210T020000Z")
    later = Options("Asia/Shanghai", time(8), datetime(2026, 12, 11, tzinfo=timezone.utc))
    assert parse(text, later).past == 1 and parse(text).past == 0


def test_exchange_spaces_in_byday_are_read() -> None:
    item = only(parse(cal(
        "UID:ex\nSUMMARY:standup\nDTSTART;TZID=China Standard Time:20261130T093000\n"
        "RRULE:FREQ=WEEKLY;UNTIL=20270601T013000Z;INTERVAL=1;BYDAY=MO, TU, WE, TH, FR,;WKST=SU")))
    assert item.rrule is not None and "BYDAY=MO,TU,WE,TH,FR" in item.rrule
    firsts = occurrences(Recurrence(item.dtstart, item.tz, item.rrule), NOW,
                         NOW + timedelta(days=7))
    assert [t.astimezone(NOW.tzinfo).day for t in firsts] == [30, 1, 2, 3, 4]
