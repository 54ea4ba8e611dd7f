"""The tables. Instants are stored as naive UTC and come back timezone-aware (UTC).

Local wall times of events (``dtstart``, ``exdates``, ``rdates``) are stored as naive ISO
strings together with the event's IANA zone, as RFC 5545 does: recurrences are expanded in
local time, so that "every day at 8:00" stays at 8:00 across DST changes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC (sortable text in SQLite)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key/value facts about the database: schema version, plan revision, daemon heartbeat."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Migration(Base):
    """Every named migration applied to this database, in order."""

    __tablename__ = "migrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """A calendar URL that chime fetches every ``every_s`` seconds."""

    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text, unique=True)
    every_s: Mapped[int] = mapped_column(Integer)
    last_checked: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_changed: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """Something to be reminded of, once or on a recurrence."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(Text)
    dtstart: Mapped[str] = mapped_column(String(32))  # naive local ISO time
    tz: Mapped[str] = mapped_column(String(64))
    rrule: Mapped[str | None] = mapped_column(Text)
    # "workdays": the rule rings only on official working days (planning.WORKDAYS)
    day_filter: Mapped[str | None] = mapped_column(String(16))
    rdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    lead_s: Mapped[int | None] = mapped_column(Integer)  # None: the configured default
    # A calendar alarm: the reminder rings this long before the start (None: at the start).
    alarm_s: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[int | None] = mapped_column(Integer)  # a calendar event's length
    outputs: Mapped[list[str] | None] = mapped_column(JSON)  # None: the configured default
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    nag_s: Mapped[int | None] = mapped_column(Integer)  # repeat interval; None: default, 0: off
    nag_max: Mapped[int | None] = mapped_column(Integer)  # None: [daemon] nag_max
    priority: Mapped[int | None] = mapped_column(Integer)  # 1 (min) … 5 (max); None: default
    source: Mapped[str] = mapped_column(String(32), default="manual")  # manual | ics | feed
    uid: Mapped[str | None] = mapped_column(Text)  # calendar UID (+ RECURRENCE-ID)
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Occurrence(Base):
    """One instant of one event: prepared, then delivered exactly once (or missed/failed)."""

    __tablename__ = "occurrences"
    __table_args__ = (UniqueConstraint("event_id", "scheduled_at", name="uq_event_instant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("events.id", ondelete="SET NULL"), index=True
    )
    task: Mapped[str] = mapped_column(Text)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # when it rings
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: as scheduled_at
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    message: Mapped[str | None] = mapped_column(Text)
    generator: Mapped[str | None] = mapped_column(String(32))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prepared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # output name → result
    error: Mapped[str | None] = mapped_column(Text)
    snoozed_from: Mapped[int | None] = mapped_column(ForeignKey("occurrences.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(16))  # cli|desktop|web|push
    repeat: Mapped[int] = mapped_column(Integer, default=0)  # 0: the reminder; n: n-th nag
    repeat_of: Mapped[int | None] = mapped_column(ForeignKey("occurrences.id"), index=True)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # no nag before this
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Forecast(Base):
    """The last hourly forecast fetched for a location (one row per location key)."""

    __tablename__ = "forecasts"
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class HttpCache(Base):
    """A cached HTTP document (holiday feed, calendar) with its validators, for offline use."""

    __tablename__ = "http_cache"
    url: Mapped[str] = mapped_column(Text, primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_after: Mapped[float | None] = mapped_column(Float)
