"""The SQLite store: pragmas, schema version, migrations, refusal of newer or corrupt files."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from daemon.errors import NotFoundError, StoreError
from daemon.store import Database, repo
from daemon.store.db import MIGRATIONS, SCHEMA_VERSION
from daemon.store.models import Occurrence


def test_new_database_is_wal_with_version_and_migrations(db_path: Path) -> None:
    db = Database(db_path)
    assert db.schema_version() == SCHEMA_VERSION
    assert db.migrations()[0] == "0001_initial"
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    db.close()
    Database(db_path).close()  # reopening applies nothing twice
    assert Database(db_path).migrations() == [name for name, _ in MIGRATIONS]


def test_a_version_4_database_gets_the_day_filter_column(db_path: Path) -> None:
    Database(db_path).close()
    with sqlite3.connect(db_path) as conn:  # the schema as version 4 wrote it
        conn.execute("ALTER TABLE events DROP COLUMN day_filter")
        conn.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
        conn.execute("DELETE FROM migrations WHERE name = '0005_event_day_filter'")
        conn.execute("INSERT INTO events(task, dtstart, tz, rdates, exdates, paused, source, "
                     "created_at, updated_at) VALUES ('old', '2030-01-01T08:00:00', 'UTC', "
                     "'[]', '[]', 0, 'manual', '2026-01-01', '2026-01-01')")
    db = Database(db_path)
    assert db.migrations()[-1] == "0005_event_day_filter"
    assert db.schema_version() == SCHEMA_VERSION
    with db.session() as s:
        assert [(e.task, e.day_filter) for e in repo.list_events(s)] == [("old", None)]


def test_newer_schema_is_refused(db_path: Path) -> None:
    Database(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer than this chime"):
        Database(db_path)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="not a database"):
        Database(bad)


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        Database(blocker / "sub" / "chime.db")


def test_occurrence_unique_per_event_instant(db_path: Path) -> None:
    db = Database(db_path)
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with db.session() as s:
        event = repo.add_event(s, task="t", dtstart="2026-12-01T08:00:00", tz="UTC")
        first = repo.ensure_occurrence(s, event, at)
        assert repo.ensure_occurrence(s, event, at).id == first.id
    with pytest.raises(StoreError), db.session() as s:
        s.add(Occurrence(event_id=event.id, task="t", scheduled_at=at))
        s.flush()
    with db.session() as s:
        assert repo.claim(s, first.id) is True
        assert repo.claim(s, first.id) is False  # exactly one claimer wins
        assert repo.get_occurrence(s, first.id).scheduled_at == at  # aware UTC back


def test_unknown_ids(db_path: Path) -> None:
    db = Database(db_path)
    with db.session() as s:
        with pytest.raises(NotFoundError):
            repo.get_event(s, 42)
        with pytest.raises(NotFoundError):
            repo.get_occurrence(s, 42)


def test_removing_an_event_keeps_history(db_path: Path) -> None:
    db = Database(db_path)
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with db.session() as s:
        event = repo.add_event(s, task="t", dtstart="2026-12-01T08:00:00", tz="UTC")
        occ = repo.ensure_occurrence(s, event, at)
        occ.status = "delivered"
        pending = repo.ensure_occurrence(s, event, at.replace(day=2))
        pending_id = pending.id
    with db.session() as s:
        rev = repo.revision(s)
        repo.remove_event(s, repo.get_event(s, event.id))
    with db.session() as s:
        assert repo.revision(s) == rev + 1
        kept = repo.get_occurrence(s, occ.id)
        assert kept.event_id is None and kept.status == "delivered"
        assert s.get(Occurrence, pending_id) is None
