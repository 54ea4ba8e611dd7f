"""Nagging in-process: repeats as their own deliveries, acknowledgement, snooze, supersession,
downtime, crash resume, the limit, and the schema migration that brought the columns."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from daemon import reminders
from daemon.app import App
from daemon.clock import FixedClock
from daemon.delivery import Courier, Slot
from daemon.errors import InputError
from daemon.outputs import base
from daemon.store import Database, repo
from daemon.store.db import SCHEMA_VERSION
from daemon.store.models import Occurrence

sent: list[tuple[int, int, str]] = []  # (occurrence id, repeat, message)


class Recorder:
    """A real output registered by name: records what it is sent."""

    name = "recorder"

    def __init__(self, settings: Any, actions: Any) -> None:
        pass

    def send(self, reminder: base.Reminder) -> str:
        assert reminder.occurrence_id is not None
        sent.append((reminder.occurrence_id, reminder.repeat, reminder.message))
        return "ok"

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    sent.clear()
    monkeypatch.setitem(base.REGISTRY, "recorder", f"{__name__}:Recorder")


AT = datetime(2026, 12, 1, 12, 30, tzinfo=timezone.utc)  # 20:30 in Shanghai
MINUTE = timedelta(minutes=1)


def add_event(app: App, nag_s: int | None = 60, nag_max: int | None = 2,
              rule: str | None = None) -> int:
    local = AT.astimezone(app.settings.tz).replace(tzinfo=None).isoformat()
    with app.db.session() as s:
        event = repo.add_event(s, task="吃药", dtstart=local, tz=app.settings.daemon.timezone,
                               rrule=rule, outputs=["recorder"], rdates=[], exdates=[],
                               nag_s=nag_s, nag_max=nag_max)
        event.updated_at = AT - timedelta(days=2)
        return event.id


def rows(app: App, event_id: int) -> list[Occurrence]:
    with app.db.session() as s:
        return sorted(repo.event_history(s, event_id, 100), key=lambda o: (o.scheduled_at, o.id))


def deliver_at(app: App, courier: Courier, event_id: int, at: datetime) -> str | None:
    app.clock = FixedClock(at)
    return courier.deliver(Slot(event_id, at, at))


def test_repeats_until_the_limit_then_unacknowledged(app: App) -> None:
    event_id = add_event(app, nag_s=60, nag_max=2)
    courier = Courier(app)
    assert deliver_at(app, courier, event_id, AT) == "delivered"
    root, first = rows(app, event_id)
    assert (first.repeat, first.repeat_of, first.status) == (1, root.id, "prepared")
    assert first.scheduled_at == AT + MINUTE
    assert first.message == "还没吃药吗？20:30 的提醒" and first.generator == "follow-up"
    assert deliver_at(app, courier, event_id, AT + MINUTE) == "delivered"
    assert deliver_at(app, courier, event_id, AT + MINUTE) is None  # each repeat once
    second = rows(app, event_id)[2]
    assert (second.repeat, second.scheduled_at) == (2, AT + 2 * MINUTE)
    assert deliver_at(app, courier, event_id, AT + 2 * MINUTE) == "delivered"
    history = rows(app, event_id)
    assert len(history) == 3  # two repeats, then no more
    assert history[0].status == "unacknowledged"
    assert [(r, m) for _, r, m in sent] == [(0, history[0].message), (1, first.message),
                                            (2, first.message)]
    view = reminders.occurrence_view(history[2], "Asia/Shanghai")
    assert (view["repeat"], view["repeat_of"], view["acknowledged_by"]) == (2, root.id, None)
    assert view["delivered_at"] == "2026-12-01T20:32:00+08:00"


def test_done_on_a_repeat_acknowledges_the_reminder_and_stops_nagging(app: App) -> None:
    event_id = add_event(app, nag_s=60, nag_max=5)
    courier = Courier(app)
    deliver_at(app, courier, event_id, AT)
    deliver_at(app, courier, event_id, AT + MINUTE)
    repeat_one = rows(app, event_id)[1]
    app.clock = FixedClock(AT + MINUTE + timedelta(seconds=20))
    reminders.done(app, repeat_one.id, by="web")
    reminders.done(app, repeat_one.id, by="cli")  # the first acknowledgement stays
    root, repeat, cancelled = rows(app, event_id)
    assert (cancelled.repeat, cancelled.status) == (2, "cancelled")
    assert cancelled.error == "not sent: acknowledged (web)"
    assert (root.acknowledged_by, root.acknowledged_at) == ("web", app.clock.now())
    assert root.status == "delivered" and repeat.acknowledged_by == "web"
    app.clock = FixedClock(cancelled.scheduled_at)  # a deliver job planned before the ack
    assert courier.deliver(Slot(event_id, cancelled.scheduled_at, AT)) is None
    assert len(rows(app, event_id)) == 3 and len(sent) == 2
    with pytest.raises(InputError, match="acknowledger"):
        reminders.done(app, root.id, by="fax")


def test_snooze_moves_the_next_repeat_without_acknowledging(app: App) -> None:
    event_id = add_event(app, nag_s=60, nag_max=5)
    courier = Courier(app)
    deliver_at(app, courier, event_id, AT)
    root, upcoming = rows(app, event_id)
    moved = reminders.snooze(app, root.id, timedelta(minutes=10), by="push")
    root, cancelled, upcoming = rows(app, event_id)
    assert (cancelled.status, upcoming.id, upcoming.status) == ("cancelled", moved, "prepared")
    assert (upcoming.repeat, upcoming.message) == (1, cancelled.message)
    assert upcoming.scheduled_at == AT + 10 * MINUTE and root.acknowledged_at is None
    # Snoozed while a repeat is being delivered: the one after it honours the snooze.
    app.clock = FixedClock(AT + 10 * MINUTE)
    with app.db.session() as s:
        assert repo.claim(s, upcoming.id)
    assert reminders.snooze(app, upcoming.id, timedelta(minutes=30), by="desktop") == root.id
    assert courier.deliver(Slot(event_id, upcoming.scheduled_at, AT), resume=True) == "delivered"
    after = rows(app, event_id)[3]
    assert (after.repeat, after.scheduled_at) == (2, AT + 40 * MINUTE)


def test_snooze_without_nagging_repeats_once_and_acknowledges(app: App) -> None:
    event_id = add_event(app, nag_s=0)
    courier = Courier(app)
    deliver_at(app, courier, event_id, AT)
    (root,) = rows(app, event_id)
    again = reminders.snooze(app, root.id, timedelta(minutes=5), by="desktop")
    root, copy = rows(app, event_id)
    assert copy.id == again and copy.snoozed_from == root.id and copy.repeat == 0
    assert root.acknowledged_by == "desktop"
    deliver_at(app, courier, event_id, AT + 5 * MINUTE)
    assert len(rows(app, event_id)) == 2  # no nagging for this event


def test_the_next_occurrence_stops_the_previous_chain(app: App) -> None:
    event_id = add_event(app, nag_s=600, nag_max=10, rule="FREQ=HOURLY")
    courier = Courier(app)
    deliver_at(app, courier, event_id, AT)
    deliver_at(app, courier, event_id, AT + 10 * MINUTE)
    assert deliver_at(app, courier, event_id, AT + 60 * MINUTE) == "delivered"
    history = rows(app, event_id)
    first, repeat, cancelled, second, next_repeat = history
    assert first.status == "unacknowledged" and repeat.status == "delivered"
    assert (cancelled.repeat_of, cancelled.status) == (first.id, "cancelled")
    assert next_repeat.repeat_of == second.id and next_repeat.status == "prepared"


def test_a_repeat_in_flight_when_the_next_occurrence_came_does_not_continue(app: App) -> None:
    event_id = add_event(app, nag_s=600, nag_max=10, rule="FREQ=HOURLY")
    courier = Courier(app)
    deliver_at(app, courier, event_id, AT)
    upcoming = rows(app, event_id)[1]
    app.clock = FixedClock(AT + 10 * MINUTE)
    with app.db.session() as s:
        assert repo.claim(s, upcoming.id)  # being delivered when the next hour arrives
    deliver_at(app, courier, event_id, AT + 60 * MINUTE)
    assert courier.deliver(Slot(event_id, upcoming.scheduled_at, AT), resume=True) == "late"
    chains = [o.repeat_of for o in rows(app, event_id) if o.repeat_of]
    assert chains.count(rows(app, event_id)[0].id) == 1  # no second repeat for 20:30


def test_repeats_after_downtime_follow_the_grace_rules(app: App) -> None:
    event_id = add_event(app, nag_s=60, nag_max=5)
    courier = Courier(app)
    deliver_at(app, courier, event_id, AT)
    app.clock = FixedClock(AT + 5 * MINUTE)  # down for 5 min: within the 30 min grace
    assert courier.catch_up(AT, app.clock.now(), startup=True) == {"late": 1, "missed": 0}
    _, late, upcoming = rows(app, event_id)
    assert late.status == "late" and late.repeat == 1
    assert upcoming.scheduled_at == AT + 6 * MINUTE and upcoming.repeat == 2
    app.clock = FixedClock(AT + 3 * 60 * MINUTE)  # down for hours: beyond it
    assert courier.catch_up(AT, app.clock.now(), startup=True) == {"late": 0, "missed": 1}
    history = rows(app, event_id)
    assert [o.status for o in history] == ["unacknowledged", "late", "missed"]
    assert len(sent) == 2


def test_a_crash_mid_repeat_resumes_it_once_and_plans_one_next(app: App) -> None:
    event_id = add_event(app, nag_s=60, nag_max=5)
    with app.db.session() as s:
        repo.get_event(s, event_id).outputs = ["recorder", "console"]
    courier = Courier(app)
    deliver_at(app, courier, event_id, AT)
    upcoming = rows(app, event_id)[1]
    with app.db.session() as s:  # killed after console printed repeat 1, before the recorder
        row = repo.get_occurrence(s, upcoming.id)
        row.status = "delivering"
        row.results = {"console": {"ok": True, "detail": "printed", "at": AT.isoformat()}}
    sent.clear()
    app.clock = FixedClock(AT + MINUTE + timedelta(seconds=5))
    assert Courier(app).catch_up(AT, app.clock.now(), startup=True) == {"late": 1, "missed": 0}
    assert Courier(app).catch_up(AT, app.clock.now(), startup=True) == {"late": 0, "missed": 0}
    assert [(r, m) for _, r, m in sent] == [(1, upcoming.message)]
    history = rows(app, event_id)
    assert [(o.repeat, o.status) for o in history] == [(0, "delivered"), (1, "late"),
                                                       (2, "prepared")]


def test_cli_options_and_edit_nag_none(app: App) -> None:
    app.clock = FixedClock(AT - timedelta(hours=1))
    event = reminders.add(app, "吃药", "2026-12-01T20:30", every="daily", nag="5m",
                          nag_max=3, priority="high")
    view = reminders.show(app, event.id)
    assert (view["nag"], view["nag_max"], view["priority"]) == ("5m", 3, "high")
    for bad in ({"nag": "0.5s"}, {"nag": "2d"}, {"nag_max": 0}, {"priority": "loud"}):
        with pytest.raises(InputError):
            reminders.edit(app, event.id, **bad)  # type: ignore[arg-type]
    with app.db.session() as s:
        assert repo.get_event(s, event.id).nag_s == 300  # bad input changed nothing
    with app.db.session() as s:
        repo.get_event(s, event.id).outputs = ["recorder"]
    courier = Courier(app)
    deliver_at(app, courier, event.id, AT)
    reminders.edit(app, event.id, task="吃药（两粒）")  # other edits keep the nagging
    assert [o.status for o in rows(app, event.id)] == ["delivered", "prepared"]
    reminders.edit(app, event.id, nag="none")
    assert [o.status for o in rows(app, event.id)] == ["delivered", "cancelled"]
    assert reminders.show(app, event.id)["nag"] == "none"


def test_configured_default_nags_every_event(tmp_path: Path) -> None:
    from daemon.config import load_settings

    config = tmp_path / "config.toml"
    config.write_text('[daemon]\nnag = "2m"\nnag_max = 1\n')
    application = App(load_settings(config, tmp_path / "c.db"))
    event_id = add_event(application, nag_s=None, nag_max=None)
    courier = Courier(application)
    deliver_at(application, courier, event_id, AT)
    assert rows(application, event_id)[1].scheduled_at == AT + 2 * MINUTE
    deliver_at(application, courier, event_id, AT + 2 * MINUTE)
    assert rows(application, event_id)[0].status == "unacknowledged"
    bad = tmp_path / "bad.toml"
    bad.write_text('[daemon]\nnag = "0.2s"\nnag_max = 0\n[ntfy]\npriority = "loud"\n'
                   'user = "me"\n')
    from daemon.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_settings(bad, tmp_path / "c.db")
    for key in ("[daemon] nag:", "[daemon] nag_max:", "[ntfy] priority:", "[ntfy] user"):
        assert key in str(info.value)


def test_a_database_from_before_nagging_is_migrated(db_path: Path) -> None:
    Database(db_path).close()
    with sqlite3.connect(db_path) as conn:  # make it look like a version-1 file
        for column in ("nag_s", "nag_max", "priority"):
            conn.execute(f"ALTER TABLE events DROP COLUMN {column}")
        (create,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'occurrences'").fetchone()
        new = ["acknowledged_by", "repeat", "repeat_of", "snoozed_until"]
        kept = [line for line in create.splitlines()
                if not any(line.strip().startswith((f"{c} ", f"FOREIGN KEY({c})")) for c in new)]
        conn.execute("DROP INDEX ix_occurrences_repeat_of")
        conn.execute("ALTER TABLE occurrences RENAME TO old")
        conn.execute(re.sub(r",\s*\)\s*$", ")", "\n".join(kept)))
        conn.execute("DROP TABLE old")
        conn.execute("DELETE FROM migrations WHERE name != '0001_initial'")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
        conn.execute("INSERT INTO events(task, dtstart, tz, rdates, exdates, paused, source, "
                     "created_at, updated_at) VALUES ('旧的', '2026-12-01T08:00:00', 'UTC', "
                     "'[]', '[]', 0, 'manual', '2026-11-01', '2026-11-01')")
    db = Database(db_path)
    assert db.schema_version() == SCHEMA_VERSION and "0002_nag" in db.migrations()
    with db.session() as s:
        event = repo.list_events(s)[0]
        assert (event.task, event.nag_s, event.priority) == ("旧的", None, None)
    db.close()


def test_a_repeat_never_takes_an_instant_the_event_rings_at(app: App) -> None:
    event_id = add_event(app, nag_s=3600, nag_max=3, rule="FREQ=HOURLY")
    courier = Courier(app)
    deliver_at(app, courier, event_id, AT)
    repeat = rows(app, event_id)[1]
    assert repeat.scheduled_at == AT + timedelta(hours=1, seconds=1)  # 21:30 is the next ring
