"""Repository functions: the shared ways to read and write events, occurrences, the plan
revision, the heartbeat and the meta rows.

Not every query lives here: a module that owns a table of its own queries it itself — the
forecast cache (context/weather.py), the HTTP cache (http_cache.py), subscriptions and feed
bookkeeping (calendars/feeds.py), guard decisions (generation/guards.py) — and a use case
that needs one special query on events or occurrences (nag.py, delivery.py, reminders.py,
calendars/apply.py) writes it beside its only caller.

Each function takes an open ``Session`` (a transaction from ``Database.session()``), so that a
use case can combine several in one atomic unit of work.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from daemon.errors import NotFoundError
from daemon.store.models import Event, Meta, Occurrence, utcnow

OPEN_STATUSES = ("pending", "prepared")  # not yet delivered; may still change or be replanned


# --- meta -------------------------------------------------------------------------------------

def get_meta(s: Session, key: str) -> str | None:
    row = s.get(Meta, key)
    return row.value if row else None


def set_meta(s: Session, key: str, value: str) -> None:
    s.execute(
        sqlite_insert(Meta).values(key=key, value=value)
        .on_conflict_do_update(index_elements=["key"], set_={"value": value})
    )


def revision(s: Session) -> int:
    """A counter bumped by every change that the daemon must re-plan for."""
    return int(get_meta(s, "revision") or 0)


def bump_revision(s: Session) -> None:
    set_meta(s, "revision", str(revision(s) + 1))


def write_heartbeat(s: Session, info: dict[str, Any]) -> None:
    set_meta(s, "heartbeat", json.dumps(info, ensure_ascii=False))


def read_heartbeat(s: Session) -> dict[str, Any] | None:
    raw = get_meta(s, "heartbeat")
    return json.loads(raw) if raw else None


# --- events -----------------------------------------------------------------------------------

def add_event(s: Session, **fields: Any) -> Event:
    event = Event(**fields)
    s.add(event)
    s.flush()
    bump_revision(s)
    return event


def get_event(s: Session, event_id: int) -> Event:
    event = s.get(Event, event_id)
    if event is None:
        raise NotFoundError(f"no reminder with id {event_id}")
    return event


def list_events(s: Session, *, include_paused: bool = True) -> list[Event]:
    query = select(Event).order_by(Event.id)
    if not include_paused:
        query = query.where(Event.paused.is_(False))
    return list(s.scalars(query))


def update_event(s: Session, event: Event, **fields: Any) -> Event:
    for key, value in fields.items():
        setattr(event, key, value)
    event.updated_at = utcnow()
    drop_open_occurrences(s, event.id)
    s.flush()
    bump_revision(s)
    return event


def remove_event(s: Session, event: Event) -> None:
    drop_open_occurrences(s, event.id, keep_snoozes=False)
    s.delete(event)
    s.flush()
    bump_revision(s)


def drop_open_occurrences(s: Session, event_id: int, *, keep_snoozes: bool = True) -> None:
    """Forget prepared texts that a change made stale; delivered history stays, and so do
    snoozed and nag repeats of reminders already delivered (unless ``keep_snoozes`` is off)."""
    query = delete(Occurrence).where(
        Occurrence.event_id == event_id, Occurrence.status.in_(OPEN_STATUSES)
    )
    if keep_snoozes:
        query = query.where(Occurrence.snoozed_from.is_(None), Occurrence.repeat_of.is_(None))
    s.execute(query)


# --- occurrences ------------------------------------------------------------------------------

def ensure_occurrence(s: Session, event: Event, scheduled_at: datetime,
                      starts_at: datetime | None = None) -> Occurrence:
    """The row for (event, instant it rings), created pending if it does not exist yet;
    ``starts_at`` is when the event starts, if that is not when it rings (an alarm)."""
    s.execute(
        sqlite_insert(Occurrence)
        .values(event_id=event.id, task=event.task, scheduled_at=scheduled_at,
                starts_at=starts_at if starts_at != scheduled_at else None,
                status="pending", created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["event_id", "scheduled_at"])
    )
    found = s.scalars(
        select(Occurrence).where(
            Occurrence.event_id == event.id, Occurrence.scheduled_at == scheduled_at
        )
    ).one()
    return found


def get_occurrence(s: Session, occurrence_id: int) -> Occurrence:
    occ = s.get(Occurrence, occurrence_id)
    if occ is None:
        raise NotFoundError(f"no occurrence with id {occurrence_id}")
    return occ


def find_occurrences(
    s: Session, event_ids: Sequence[int], start: datetime, end: datetime
) -> dict[tuple[int, datetime], Occurrence]:
    """Rows of these events scheduled in [start, end), keyed by (event id, instant)."""
    rows = s.scalars(
        select(Occurrence).where(
            Occurrence.event_id.in_(event_ids),
            Occurrence.scheduled_at >= start,
            Occurrence.scheduled_at < end,
        )
    )
    return {(o.event_id, o.scheduled_at): o for o in rows if o.event_id is not None}


def open_occurrences(s: Session, before: datetime) -> list[Occurrence]:
    """Undelivered rows (pending, prepared, interrupted mid-delivery) due before ``before``."""
    return list(s.scalars(
        select(Occurrence)
        .where(Occurrence.status.in_((*OPEN_STATUSES, "delivering")),
               Occurrence.scheduled_at < before)
        .order_by(Occurrence.scheduled_at)
    ))


def claim(s: Session, occurrence_id: int) -> bool:
    """Atomically move an open row to ``delivering``; False if someone else delivered it."""
    result = s.execute(
        update(Occurrence)
        .where(Occurrence.id == occurrence_id, Occurrence.status.in_(OPEN_STATUSES))
        .values(status="delivering")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def recent_occurrences(s: Session, limit: int) -> list[Occurrence]:
    return list(s.scalars(
        select(Occurrence)
        .order_by(Occurrence.scheduled_at.desc(), Occurrence.id.desc())
        .limit(limit)
    ))


def event_history(s: Session, event_id: int, limit: int) -> list[Occurrence]:
    return list(s.scalars(
        select(Occurrence).where(Occurrence.event_id == event_id)
        .order_by(Occurrence.scheduled_at.desc()).limit(limit)
    ))
