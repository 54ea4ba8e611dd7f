"""Calendars: import .ics files, subscribe to calendar URLs, export chime's events.

The pieces, one concern each:

* ``zones``  — calendar TZIDs (IANA, Windows, custom VTIMEZONE) → IANA names;
* ``split``, ``parse`` — iCalendar text → items in the Event row's shape (pure);
* ``apply``  — items → Event rows, idempotently by UID, in one transaction; ``import_file``;
* ``feeds``  — subscriptions fetched through ``daemon.http_cache`` and cached for offline use;
  ``sync_due(app, now)`` is the daemon's periodic hook;
* ``write``  — Event rows → iCalendar (``export``).

Recurrences are not expanded here: the spine's planner (``daemon.planning``) is the one place
that computes occurrences.

The names below are imported on first use: the daemon starts with ``feeds`` only, and the
iCalendar library (``parse``, ``write``) loads when a calendar is read or written.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.calendars.apply import Outcome, import_file, import_text
    from daemon.calendars.feeds import (
        SyncResult,
        subscribe,
        subscriptions,
        sync,
        sync_due,
        unsubscribe,
    )
    from daemon.calendars.write import export, export_calendar

_HOMES = {
    "Outcome": "apply",
    "import_file": "apply",
    "import_text": "apply",
    "export": "write",
    "export_calendar": "write",
    "SyncResult": "feeds",
    "subscribe": "feeds",
    "subscriptions": "feeds",
    "sync": "feeds",
    "sync_due": "feeds",
    "unsubscribe": "feeds",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
