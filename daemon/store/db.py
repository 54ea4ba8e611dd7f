"""Opening the SQLite file: pragmas, schema version, named migrations.

The schema version lives in the database (``meta.schema_version``); each migration has a name
and is recorded in ``migrations`` when applied. A database written by a newer chime is refused.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from daemon.errors import StoreError, StoreReadOnlyError, StoreWriteError
from daemon.store import models
from daemon.store.models import Meta, Migration

log = logging.getLogger("daemon.store")

BUSY_TIMEOUT_MS = 10_000
SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL = 8, 10, 13
OPEN_ATTEMPTS = 4


def _initial(conn: Connection) -> None:
    tables = [
        models.Meta.__table__,
        models.Migration.__table__,
        models.Subscription.__table__,
        models.Event.__table__,
        models.Occurrence.__table__,
        models.Forecast.__table__,
        models.HttpCache.__table__,
    ]
    models.Base.metadata.create_all(conn, tables=tables)  # type: ignore[arg-type]


def _add_missing_columns(conn: Connection, table: str, columns: dict[str, str]) -> None:
    """``ALTER TABLE … ADD COLUMN`` for each column the table lacks (a database created by
    ``0001_initial`` from today's models already has them all)."""
    have = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, ddl in columns.items():
        if name not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


def _nag(conn: Connection) -> None:
    """Nagging until acknowledged: per-event interval, limit and priority; each repeat is its
    own occurrence row (``repeat``, ``repeat_of``); who acknowledged, and a snooze's end."""
    _add_missing_columns(conn, "events", {
        "nag_s": "INTEGER", "nag_max": "INTEGER", "priority": "INTEGER"})
    _add_missing_columns(conn, "occurrences", {
        "acknowledged_by": "VARCHAR(16)",
        "repeat": "INTEGER NOT NULL DEFAULT 0",
        "repeat_of": "INTEGER REFERENCES occurrences(id)",
        "snoozed_until": "DATETIME",
    })
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_occurrences_repeat_of "
                      "ON occurrences (repeat_of)"))


def _calendar_alarms(conn: Connection) -> None:
    """Calendar alarms ring at their time: an imported VALARM was kept as the lead time (when
    the text is prepared); it becomes ``events.alarm_s`` (when the reminder rings), and each
    occurrence remembers when its event starts."""
    _add_missing_columns(conn, "events", {"alarm_s": "INTEGER", "duration_s": "INTEGER"})
    _add_missing_columns(conn, "occurrences", {"starts_at": "DATETIME"})
    conn.execute(text("UPDATE events SET alarm_s = lead_s, lead_s = NULL "
                      "WHERE source IN ('ics', 'feed') AND lead_s IS NOT NULL"))


def _unique_calendar_uid(conn: Connection) -> None:
    """One row per calendar UID in each scope (a subscription, or plain imports): duplicates
    that racing imports made are merged into the oldest row, their history kept."""
    scope = "ifnull(subscription_id, 0)"
    groups = conn.execute(text(
        f"SELECT min(id), {scope}, uid FROM events WHERE uid IS NOT NULL "
        f"GROUP BY {scope}, uid HAVING count(*) > 1")).all()
    for keep, sub, uid in groups:
        dups = conn.execute(text(f"SELECT id FROM events WHERE {scope} = :sub AND uid = :uid "
                                 "AND id != :keep"), {"sub": sub, "uid": uid, "keep": keep})
        for (dup,) in dups.all():
            _merge_event(conn, keep, dup)
    conn.execute(text(f"CREATE UNIQUE INDEX IF NOT EXISTS uq_events_calendar_uid "
                      f"ON events({scope}, uid) WHERE uid IS NOT NULL"))


def _merge_event(conn: Connection, keep: int, dup: int) -> None:
    """Move ``dup``'s occurrences to ``keep`` (where ``keep`` has none at that instant; the
    rest stay as history without an event, open ones are dropped), then delete ``dup``."""
    args = {"keep": keep, "dup": dup}
    conn.execute(text(
        "UPDATE occurrences SET event_id = :keep WHERE event_id = :dup AND scheduled_at NOT IN "
        "(SELECT scheduled_at FROM occurrences WHERE event_id = :keep)"), args)
    conn.execute(text("DELETE FROM occurrences WHERE event_id = :dup "
                      "AND status IN ('pending', 'prepared')"), args)
    conn.execute(text("UPDATE occurrences SET event_id = NULL WHERE event_id = :dup"), args)
    conn.execute(text("DELETE FROM events WHERE id = :dup"), args)


def _day_filter(conn: Connection) -> None:
    """``--every workdays``: the day filter the planner applies to an event's rule."""
    _add_missing_columns(conn, "events", {"day_filter": "VARCHAR(16)"})


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_initial", _initial),
    ("0002_nag", _nag),
    ("0003_calendar_alarms", _calendar_alarms),
    ("0004_unique_calendar_uid", _unique_calendar_uid),
    ("0005_event_day_filter", _day_filter),
]
SCHEMA_VERSION = len(MIGRATIONS)


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # a delivered mark survives power loss
    cur.close()


class Database:
    """One SQLite file; ``session()`` gives a transaction that commits on success."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for database {self.path}: {exc}") from exc
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"database {self.path} is not a file")
        self.engine = create_engine(f"sqlite:///{self.path}", future=True)
        event.listen(self.engine, "connect", _on_connect)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_error: str | None = None
        self._health = threading.Lock()
        for attempt in range(OPEN_ATTEMPTS):  # a failing SD card's errors come and go
            try:
                self._migrate()
                break
            except StoreReadOnlyError:
                raise
            except StoreWriteError as exc:
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                log.warning("%s; trying again", exc)
                time.sleep(0.2 * 2 ** attempt)

    def _migrate(self) -> None:
        try:
            with self.engine.begin() as conn:
                has_meta = inspect(conn).has_table("meta")
                version = 0
                if has_meta:
                    row = conn.execute(
                        text("SELECT value FROM meta WHERE key='schema_version'")
                    ).first()
                    version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"database {self.path} has schema version {version}, newer than this "
                        f"chime understands ({SCHEMA_VERSION}); upgrade chime"
                    )
                for name, apply in MIGRATIONS[version:]:
                    log.info("applying migration %s to %s", name, self.path)
                    apply(conn)
                    conn.execute(
                        models.Migration.__table__.insert().values(name=name)  # type: ignore[attr-defined]
                    )
                if version < SCHEMA_VERSION:
                    conn.execute(
                        text(
                            "INSERT INTO meta(key, value) VALUES('schema_version', :v) "
                            "ON CONFLICT(key) DO UPDATE SET value=excluded.value"
                        ),
                        {"v": str(SCHEMA_VERSION)},
                    )
        except StoreError:
            raise
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            self.read_only_check()
            kind = StoreWriteError if _primary_code(exc) == SQLITE_IOERR else StoreError
            raise kind(f"cannot open database {self.path}: {_reason(exc)}") from exc

    def read_only_check(self) -> None:
        """Raise StoreReadOnlyError when the file, its folder or its file system is read-only
        (SQLite's WAL mode needs to write beside the file, even to read)."""
        folder = self.path.parent
        try:
            if os.statvfs(folder).f_flag & os.ST_RDONLY:
                raise StoreReadOnlyError(f"database {self.path} is on a read-only file system")
        except OSError:
            return
        for place, what in ((folder, "folder"), (self.path, "file")):
            if place.exists() and not os.access(place, os.W_OK):
                raise StoreReadOnlyError(
                    f"database {what} {place} is read-only for this user; chime needs to write "
                    "the database and its -wal/-shm files beside it")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise self._error(exc) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _error(self, exc: SQLAlchemyError) -> StoreError:
        """Our error for a failed unit of work, saying when the disk refused a write."""
        primary = _primary_code(exc)
        reason = _reason(exc)
        if primary == SQLITE_FULL:
            return StoreWriteError(f"database {self.path}: the disk is full ({reason})")
        if primary == SQLITE_IOERR:
            return StoreWriteError(f"database {self.path}: the disk failed a write ({reason})")
        if primary == SQLITE_READONLY:
            return StoreWriteError(f"database {self.path} cannot be written ({reason})")
        return StoreError(f"database {self.path}: {reason}")

    def check_write_lock(self) -> None:
        """Take and release the write lock without writing anything (StoreError if locked)."""
        try:
            with self.engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("ROLLBACK")
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise StoreError(f"database {self.path}: {_reason(exc)}") from exc

    def note_write_failure(self, exc: StoreError) -> None:
        """Log a failed write once per episode (then at debug level), not once per attempt."""
        with self._health:
            first, self._write_error = self._write_error is None, str(exc)
        if first:
            log.error("%s; reminders are still delivered, and recorded when the database can "
                      "be written again (retrying)", exc)
        else:
            log.debug("still failing: %s", exc)

    def note_write_ok(self) -> None:
        """A write went through: log the end of a failure episode."""
        with self._health:
            failed, self._write_error = self._write_error, None
        if failed:
            log.warning("database %s can be written again", self.path)

    def schema_version(self) -> int:
        with self.session() as s:
            value = s.get(Meta, "schema_version")
            return int(value.value) if value else 0

    def migrations(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Migration.name).order_by(Migration.id)))

    def close(self) -> None:
        self.engine.dispose()


def _primary_code(exc: BaseException) -> int | None:
    """SQLite's primary result code (SQLITE_FULL, SQLITE_IOERR…) behind an error, if any."""
    code = getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


def lock_for_write(s: Session) -> None:
    """Take SQLite's write lock now (``BEGIN IMMEDIATE``; waits up to the busy timeout), so
    that what this transaction reads next stays true until it commits: a use case that reads,
    then writes what it read (a calendar import or sync) cannot race another process.
    Must be the session's first statement."""
    s.connection().exec_driver_sql("BEGIN IMMEDIATE")
