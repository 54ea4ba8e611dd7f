"""Delivery in-process: exactly once, per-output results, resume after a crash, catch-up."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from daemon.app import App
from daemon.clock import FixedClock
from daemon.delivery import Courier, Slot
from daemon.errors import OutputError
from daemon.outputs import base
from daemon.store import repo

sent: list[tuple[str, str]] = []


class Recorder:
    """A real output registered by name: records what it is sent."""

    name = "recorder"

    def __init__(self, settings: Any, actions: Any) -> None:
        pass

    def send(self, reminder: base.Reminder) -> str:
        sent.append((self.name, reminder.message))
        return "ok"

    def close(self) -> None:
        pass


class Broken(Recorder):
    name = "broken"

    def send(self, reminder: base.Reminder) -> str:
        raise OutputError("broken: the pipe is gone")


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    sent.clear()
    monkeypatch.setitem(base.REGISTRY, "recorder", f"{__name__}:Recorder")
    monkeypatch.setitem(base.REGISTRY, "broken", f"{__name__}:Broken")


AT = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)  # 08:00 in Shanghai


def add_event(app: App, outputs: list[str], at: datetime = AT, rule: str | None = None) -> int:
    local = at.astimezone(app.settings.tz).replace(tzinfo=None).isoformat()
    with app.db.session() as s:
        event = repo.add_event(s, task="买咖啡", dtstart=local, tz=app.settings.daemon.timezone,
                               rrule=rule, outputs=outputs, rdates=[], exdates=[])
        event.updated_at = at - timedelta(days=2)
        return event.id


def row(app: App, event_id: int, at: datetime = AT) -> Any:
    with app.db.session() as s:
        return repo.find_occurrences(s, [event_id], at, at + timedelta(seconds=1))[(event_id, at)]


def test_prepare_then_deliver_once_with_results(app: App) -> None:
    app.clock = FixedClock(AT - timedelta(minutes=5))
    event_id = add_event(app, ["recorder", "broken"])
    courier = Courier(app)
    slot = Slot(event_id, AT, AT - timedelta(minutes=5))
    assert courier.prepare([slot]) == 1
    assert courier.prepare([slot]) == 0  # already prepared
    prepared = row(app, event_id)
    assert prepared.status == "prepared" and "买咖啡" in prepared.message
    assert prepared.context["part_of_day"] == "上午" and prepared.generator == "template"
    app.clock = FixedClock(AT + timedelta(milliseconds=200))
    assert courier.deliver(slot) == "delivered"
    assert courier.deliver(slot) is None  # a second deliver finds it claimed
    done = row(app, event_id)
    assert sent == [("recorder", prepared.message)]
    assert done.results["recorder"]["ok"] is True
    assert done.results["broken"] == {"ok": False, "error": "broken: the pipe is gone",
                                      "at": done.results["broken"]["at"]}
    assert "broken: the pipe is gone" in done.error


def test_all_outputs_failing_is_failed_and_unprepared_text_is_made_at_delivery(app: App) -> None:
    app.clock = FixedClock(AT)
    event_id = add_event(app, ["broken"])
    assert Courier(app).deliver(Slot(event_id, AT, AT)) == "failed"
    failed = row(app, event_id)
    assert failed.status == "failed" and failed.message and failed.generator == "template"


def test_crash_mid_delivery_resumes_only_the_missing_outputs(app: App) -> None:
    app.clock = FixedClock(AT + timedelta(seconds=20))
    event_id = add_event(app, ["recorder", "console"])
    with app.db.session() as s:
        occ = repo.ensure_occurrence(s, repo.get_event(s, event_id), AT)
        occ.status, occ.message = "delivering", "早上好！该买咖啡啦。"
        occ.results = {"console": {"ok": True, "detail": "printed", "at": AT.isoformat()}}
    counts = Courier(app).catch_up(AT - timedelta(hours=1), app.clock.now(), startup=True)
    assert counts == {"late": 1, "missed": 0}
    assert sent == [("recorder", "早上好！该买咖啡啦。")]  # console is not printed twice
    resumed = row(app, event_id)
    assert resumed.status == "late" and set(resumed.results) == {"console", "recorder"}


def test_catch_up_marks_late_within_grace_and_missed_beyond(app: App) -> None:
    app.clock = FixedClock(AT + timedelta(hours=2, minutes=10))
    daily = add_event(app, ["recorder"], rule="FREQ=HOURLY")
    counts = Courier(app).catch_up(AT - timedelta(minutes=1), app.clock.now(), startup=True)
    # 00:00 and 01:00 are beyond the 30 min grace; 02:00 is 10 min late, within it.
    assert counts == {"late": 1, "missed": 2}
    with app.db.session() as s:
        statuses = [o.status for o in repo.event_history(s, daily, 10)]
    assert statuses == ["late", "missed", "missed"]
    assert len(sent) == 1
    again = Courier(app).catch_up(AT - timedelta(minutes=1), app.clock.now(), startup=True)
    assert again == {"late": 0, "missed": 0}  # nothing twice


def test_paused_and_removed_events_are_not_delivered(app: App) -> None:
    app.clock = FixedClock(AT)
    paused = add_event(app, ["recorder"])
    with app.db.session() as s:
        repo.update_event(s, repo.get_event(s, paused), paused=True)
    assert Courier(app).deliver(Slot(paused, AT, AT)) is None
    removed = add_event(app, ["recorder"], at=AT + timedelta(minutes=1))
    with app.db.session() as s:
        repo.remove_event(s, repo.get_event(s, removed))
    assert Courier(app).deliver(Slot(removed, AT + timedelta(minutes=1), AT)) is None
    assert sent == []


def test_snooze_makes_one_prepared_repeat_with_the_same_words(app: App) -> None:
    from daemon import reminders

    app.clock = FixedClock(AT)
    event_id = add_event(app, ["recorder"])
    courier = Courier(app)
    courier.deliver(Slot(event_id, AT, AT))
    first = row(app, event_id)
    repeat_id = reminders.snooze(app, first.id, timedelta(minutes=10))
    with app.db.session() as s:
        repeat = repo.get_occurrence(s, repeat_id)
        assert repeat.status == "prepared" and repeat.message == first.message
        assert repeat.snoozed_from == first.id
        assert repo.get_occurrence(s, first.id).acknowledged_at is not None
    later = AT + timedelta(minutes=10)
    app.clock = FixedClock(later)
    assert courier.deliver(Slot(event_id, later, later)) == "delivered"
    assert courier.deliver(Slot(event_id, later, later)) is None
    assert [m for _, m in sent] == [first.message, first.message]
