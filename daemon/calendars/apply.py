"""Parsed calendars → Event rows, idempotently, in one transaction.

Rows are matched by key (UID, or UID#RECURRENCE-ID) within a *scope*: one subscription's events,
or every event outside subscriptions for a plain import. A matched row is updated in place only
when a field differs (``repo.update_event``: open occurrences dropped, delivered history kept,
the event id unchanged), so importing the same file twice writes nothing and does not bump the
plan revision. A subscription's rows whose key left the feed are removed; a plain import removes
only what the file explicitly cancels (STATUS:CANCELLED). A key is unique within its scope (a
unique index); callers take the write lock before reading the scope, so two processes applying
at once (an import and the daemon's sync) wait for each other instead of both adding a row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.calendars.parse import Options, Parsed, Problem, parse_calendar
from daemon.errors import InputError
from daemon.parts import Stored
from daemon.store import repo
from daemon.store.db import lock_for_write
from daemon.store.models import Event

log = logging.getLogger("daemon.calendars")

MAX_FILE_BYTES = 32 * 1024 * 1024


@dataclass
class Outcome:
    """What one import or sync did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    past: int = 0
    skipped: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.removed} removed",
                 f"{self.unchanged} unchanged"]
        if self.past:
            parts.append(f"{self.past} past left out")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return ", ".join(parts)

    def view(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged, "past": self.past,
                "skipped": [str(p) for p in self.skipped], "notes": [str(p) for p in self.notes]}


def options(app: Stored, now: datetime) -> Options:
    """Parsing options from the settings ([daemon] timezone, [calendars] all_day_at)."""
    return Options(app.settings.daemon.timezone, app.settings.calendars.all_day_at, now)


def parse_checked(text: str, opts: Options) -> Parsed:
    """parse_calendar, refusing a calendar in which every event is broken (nothing usable)."""
    parsed = parse_calendar(text, opts)
    if parsed.skipped and not parsed.items and not parsed.past and not parsed.cancelled:
        raise InputError(f"none of its {parsed.total} event(s) can be read; the first: "
                         f"{parsed.skipped[0]}")
    return parsed


def event_key(event: Event) -> str:
    """The calendar key of a row: its UID, or a stable one made up for chime's own events."""
    if event.uid:
        return event.uid
    return f"chime-{event.id}-{int(event.created_at.timestamp())}@chime"


def scope(s: Session, subscription_id: int | None) -> list[Event]:
    """One subscription's events, or (None) every event outside subscriptions."""
    query = select(Event).order_by(Event.id)
    if subscription_id is None:
        query = query.where(Event.subscription_id.is_(None))
    else:
        query = query.where(Event.subscription_id == subscription_id)
    return list(s.scalars(query))


def apply(s: Session, parsed: Parsed, subscription_id: int | None = None) -> Outcome:
    """Make the scope's rows match ``parsed`` (see the module doc); returns the counts."""
    outcome = Outcome(past=parsed.past, skipped=list(parsed.skipped), notes=list(parsed.notes))
    existing: dict[str, Event] = {}
    for event in scope(s, subscription_id):
        existing.setdefault(event_key(event), event)
    seen: set[str] = set()
    for item in parsed.items:
        seen.add(item.key)
        fields = item.fields()
        match = existing.get(item.key)
        if match is None:
            source = "ics" if subscription_id is None else "feed"
            existing[item.key] = repo.add_event(s, **fields, uid=item.key, source=source,
                                                subscription_id=subscription_id)
            outcome.added += 1
            continue
        changes = {k: v for k, v in fields.items() if getattr(match, k) != v}
        if changes:
            repo.update_event(s, match, **changes)
            outcome.updated += 1
        else:
            outcome.unchanged += 1
    if subscription_id is None:  # a cancelled series takes its overrides along
        gone = {k for k in existing if k in parsed.cancelled
                or k.rpartition("#")[0] in parsed.cancelled}
    else:
        gone = set(existing)
    for key in sorted(gone - seen):
        if key in existing:
            repo.remove_event(s, existing[key])
            outcome.removed += 1
    return outcome


def import_text(app: Stored, text: str, now: datetime | None = None) -> Outcome:
    """Import an iCalendar document as chime events (never deletes other events)."""
    parsed = parse_checked(text, options(app, now or app.clock.now()))
    with app.db.session() as s:
        lock_for_write(s)  # another import or a sync may be applying the same UIDs
        outcome = apply(s, parsed)
    log.info("imported a calendar: %s", outcome.summary())
    return outcome


def import_file(app: Stored, path: Path | str, now: datetime | None = None) -> Outcome:
    """Read and import an .ics file; InputError for an unreadable or non-iCalendar file."""
    return import_text(app, read_text(Path(path)), now)


def read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode(data)


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM); undecodable bytes become U+FFFD."""
    return data.decode("utf-8-sig", errors="replace")
