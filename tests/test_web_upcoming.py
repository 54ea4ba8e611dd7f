"""The web's kept list of reminders equals ``reminders.upcoming`` through changes and time."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from daemon import calendars, reminders
from daemon.app import App
from daemon.clock import FixedClock
from daemon.web.upcoming import Upcoming

ICS = ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:u@x\nDTSTAMP:20261101T000000Z\n"
       "DTSTART;TZID=Asia/Shanghai:20261128T103000\nRRULE:FREQ=HOURLY\nSUMMARY:站起来\n"
       "END:VEVENT\nEND:VCALENDAR\n")


def test_kept_list_follows_changes_and_time(fixed_app: App) -> None:
    kept = Upcoming()
    assert kept(fixed_app) == reminders.upcoming(fixed_app) == []
    a = reminders.add(fixed_app, "喝水", "今天10点30", "每天")
    b = reminders.add(fixed_app, "开会", "今天11点")
    calendars.import_text(fixed_app, ICS)
    assert kept(fixed_app) == reminders.upcoming(fixed_app)
    reminders.edit(fixed_app, a.id, task="多喝水")
    reminders.set_paused(fixed_app, b.id, True)
    assert kept(fixed_app) == reminders.upcoming(fixed_app)
    assert [v["task"] for v in kept(fixed_app)] == ["多喝水", "开会", "站起来"]
    for minutes in (31, 61, 95, 24 * 60 + 1):  # each next instant passes in turn
        fixed_app.clock = FixedClock(datetime(2026, 11, 28, 10, 0, tzinfo=ZoneInfo(
            "Asia/Shanghai")) + timedelta(minutes=minutes))
        assert kept(fixed_app) == reminders.upcoming(fixed_app), minutes
    reminders.set_paused(fixed_app, b.id, False)
    reminders.remove(fixed_app, a.id)
    assert kept(fixed_app) == reminders.upcoming(fixed_app)
    assert [v["id"] for v in kept(fixed_app)] == [b.id, b.id + 1]
