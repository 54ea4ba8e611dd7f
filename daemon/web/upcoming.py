"""``reminders.upcoming`` kept between requests, so that listing 1 000 reminders stays fast.

Computing each event's next occurrence is the cost (dateutil walks its rule). A view stays
right until its event changes (the store's revision moves and its ``updated_at`` with it) or
until its next instant passes; only those views are computed again. The answer is the same list
``reminders.upcoming`` gives (tests/test_web_upcoming.py holds them equal).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sqlalchemy import select

from daemon import reminders
from daemon.app import App
from daemon.store import repo
from daemon.store.models import Event


class Upcoming:
    """Every reminder with its next occurrence, ordered by id, recomputed only where stale."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision: int | None = None
        self._events: dict[int, Event] = {}
        self._stamps: dict[int, datetime] = {}
        self._views: dict[int, dict[str, Any]] = {}
        self._next: dict[int, datetime | None] = {}

    def __call__(self, app: App) -> list[dict[str, Any]]:
        now = app.clock.now()
        with self._lock:
            self._refresh(app, now)
            for event_id, at in self._next.items():
                if at is not None and at <= now:
                    self._compute(app, self._events[event_id], now)
            return [self._views[i] for i in sorted(self._views)]

    def _refresh(self, app: App, now: datetime) -> None:
        """Load the events that changed since the last call (cheap when none did)."""
        with app.db.session() as s:
            revision = repo.revision(s)
            if revision == self._revision:
                return
            stamps: dict[int, datetime] = {
                i: at for i, at in s.execute(select(Event.id, Event.updated_at))}
            for gone in set(self._events) - set(stamps):
                for table in (self._events, self._stamps, self._views, self._next):
                    table.pop(gone, None)
            stale = [i for i, at in stamps.items() if self._stamps.get(i) != at]
            for start in range(0, len(stale), 500):
                ids = stale[start:start + 500]
                for event in s.scalars(select(Event).where(Event.id.in_(ids))):
                    self._events[event.id] = event
                    self._stamps[event.id] = stamps[event.id]
                    self._compute(app, event, now)
            self._revision = revision

    def _compute(self, app: App, event: Event, now: datetime) -> None:
        view = reminders.event_view(event, now, app.workdays)
        self._views[event.id] = view
        self._next[event.id] = datetime.fromisoformat(view["next"]) if view["next"] else None
