"""SQLite persistence: tables (models), opening and migrating (db), reading and writing (repo)."""

from daemon.store.db import Database
from daemon.store.models import Event, Occurrence

__all__ = ["Database", "Event", "Occurrence"]
