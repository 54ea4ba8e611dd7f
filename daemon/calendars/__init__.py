"""Calendars: import .ics files, subscribe to calendar URLs, export chime's events.

The pieces, one concern each:

* ``zones``  — calendar TZIDs (IANA, Windows, custom VTIMEZONE) → IANA names;
* ``split``, ``parse`` — iCalendar text → items in the Event row's shape (pure);
* ``apply``  — items → Event rows, idempotently by UID, in one transaction; ``import_file``;
* ``feeds``  — subscriptions fetched through ``daemon.http_cache`` and cached for offline use;
  ``sync_due(app, now)`` is the daemon's periodic hook;
* ``export`` — Event rows → iCalendar.

Recurrences are not expanded here: the spine's planner (``daemon.planning``) is the one place
that computes occurrences.
"""

from __future__ import annotations

from daemon.calendars.apply import Outcome, import_file, import_text
from daemon.calendars.export import export, export_calendar
from daemon.calendars.feeds import (
    SyncResult,
    subscribe,
    subscriptions,
    sync,
    sync_due,
    unsubscribe,
)

__all__ = [
    "Outcome",
    "SyncResult",
    "export",
    "export_calendar",
    "import_file",
    "import_text",
    "subscribe",
    "subscriptions",
    "sync",
    "sync_due",
    "unsubscribe",
]
