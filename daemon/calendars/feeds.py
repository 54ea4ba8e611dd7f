"""Calendar subscriptions: a URL fetched every ``every_s`` seconds, its events kept in SQLite.

Fetching goes through :func:`daemon.http_cache.fetch_cached` (timeouts, retries with backoff,
ETag / Last-Modified, Retry-After, the body cached in ``http_cache``). A body is validated by
parsing it before it is cached, so a broken answer never replaces a good one. The events of a
subscription are re-derived from the newest good body only when that body (or the settings
that shape events: the zone and ``all_day_at``) differs from the one last applied — recorded as
a fingerprint in ``meta`` in the same transaction as the events — so a 304 Not Modified changes
nothing, and an apply interrupted by a crash is redone at the next sync even offline.

Any failure (404, refused connection, timeout, invalid body) is recorded in the subscription's
``last_error``; its events stay as they were, so reminders keep coming offline.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete, func, select

from daemon.config_values import is_http_url
from daemon.errors import ChimeError, InputError, NotFoundError
from daemon.http import FetchPolicy, describe_url
from daemon.http_cache import fetch_cached
from daemon.parts import Stored
from daemon.store import repo
from daemon.store.db import lock_for_write
from daemon.store.models import Event, HttpCache, Meta, Subscription
from daemon.timeparse import format_duration, parse_duration

if TYPE_CHECKING:
    from daemon.calendars.apply import Outcome
    from daemon.calendars.parse import Parsed
    from daemon.http_client import Client

log = logging.getLogger("daemon.calendars")

MIN_EVERY = timedelta(minutes=5)  # as config_checks says for [calendars] default_every
MAX_EVERY = timedelta(days=7)


@dataclass
class SyncResult:
    """What one subscription's sync did: ``status`` is changed, unchanged, error or waiting."""

    subscription_id: int
    url: str
    status: str
    outcome: Outcome | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {"id": self.subscription_id, "url": self.url, "status": self.status,
                "error": self.error, "outcome": self.outcome.view() if self.outcome else None}


def normalize_url(url: str) -> str:
    """``webcal://`` (Apple, Google links) → ``https://``; InputError unless http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() in ("webcal", "webcals"):
        parts = parts._replace(scheme="https")
    normal = urlunsplit(parts)
    if not is_http_url(normal):  # the one URL check, as the config's
        web = parts.scheme.lower() in ("http", "https")
        raise InputError(f"{url!r} has no host" if web else
                         f"{url!r} is not an http(s) or webcal URL")
    return normal


def check_every(text: str | None, default: timedelta) -> int:
    every = parse_duration(text) if text else default
    if not MIN_EVERY <= every <= MAX_EVERY:
        raise InputError(f"the refresh interval must be between {format_duration(MIN_EVERY)} "
                         f"and {format_duration(MAX_EVERY)}")
    return int(every.total_seconds())


def subscribe(app: Stored, url: str, every: str | None = None) -> Subscription:
    """Record a subscription (its first sync is the caller's next step)."""
    clean = normalize_url(url)
    every_s = check_every(every, app.settings.calendars.default_every)
    with app.db.session() as s:
        known = s.scalars(select(Subscription).where(Subscription.url == clean)).first()
        if known is not None:
            raise InputError(f"already subscribed to that URL (subscription {known.id})")
        sub = Subscription(url=clean, every_s=every_s)
        s.add(sub)
        s.flush()
        return sub


def unsubscribe(app: Stored, subscription_id: int) -> int:
    """Remove a subscription with its events (delivered history stays); returns the count."""
    with app.db.session() as s:
        sub = s.get(Subscription, subscription_id)
        if sub is None:
            raise NotFoundError(f"no subscription with id {subscription_id}")
        events = list(s.scalars(select(Event).where(Event.subscription_id == sub.id)))
        for event in events:
            repo.remove_event(s, event)
        s.execute(delete(HttpCache).where(HttpCache.url == sub.url))
        s.execute(delete(Meta).where(Meta.key == _fingerprint_key(sub.id)))
        s.delete(sub)
        repo.bump_revision(s)
        return len(events)


def subscriptions(app: Stored) -> list[dict[str, Any]]:
    """Every subscription with its state and event count."""
    with app.db.session() as s:
        counts = dict(s.execute(
            select(Event.subscription_id, func.count(Event.id)).group_by(Event.subscription_id)
        ).all())
        subs = list(s.scalars(select(Subscription).order_by(Subscription.id)))
        return [_view(sub, counts.get(sub.id, 0), app) for sub in subs]


def sync(app: Stored, now: datetime, ids: list[int] | None = None, *, force: bool = False,
         client: Client | None = None,
         policy: FetchPolicy | None = None) -> list[SyncResult]:
    """Sync the given subscriptions (all when None); ``force`` ignores the interval."""
    with app.db.session() as s:
        query = select(Subscription).order_by(Subscription.id)
        subs = list(s.scalars(query if ids is None else query.where(Subscription.id.in_(ids))))
    missing = set(ids or ()) - {sub.id for sub in subs}
    if missing:
        raise NotFoundError(f"no subscription with id {min(missing)}")
    from daemon.http_client import Client  # urllib3: loaded only when something is fetched

    owned = client is None
    http = client or Client()
    try:
        return [sync_one(app, sub, now, http, policy or FetchPolicy(), force) for sub in subs]
    finally:
        if owned:
            http.close()


def sync_due(app: Stored, now: datetime, policy: FetchPolicy | None = None) -> None:
    """The daemon's periodic hook: sync every subscription whose interval has passed.

    Never raises; each subscription's outcome or failure is logged once, on its own.
    """
    try:
        with app.db.session() as s:
            due = [sub.id for sub in s.scalars(select(Subscription))
                   if sub.last_checked is None or sub.last_checked > now
                   or now >= sub.last_checked + timedelta(seconds=sub.every_s)]
        if not due:
            return
        for result in sync(app, now, due, policy=policy):
            if result.status == "error":
                error = result.error or "?"
                log.warning("calendar %s", error if error.startswith(result.url)
                            else f"{result.url}: {error}")
            elif result.outcome is not None:
                level = logging.INFO if result.outcome.changed else logging.DEBUG
                log.log(level, "calendar %s: %s", result.url, result.outcome.summary())
    except Exception:
        log.exception("syncing calendar subscriptions failed")


def sync_one(app: Stored, sub: Subscription, now: datetime, client: Client,
             policy: FetchPolicy, force: bool = False) -> SyncResult:
    """Fetch one subscription (when due or forced) and apply its body if it is new."""
    where = describe_url(sub.url)
    from daemon.calendars import apply as calendar  # the iCalendar parser: only when syncing

    checked: dict[str, Parsed] = {}

    def validate(body: str) -> None:
        try:
            checked[body] = calendar.parse_checked(body, opts)
        except InputError as exc:
            raise ValueError(str(exc)) from exc

    try:
        opts = calendar.options(app, now)
        doc = fetch_cached(app.db, client, sub.url, now=now, policy=policy,
                           min_interval=timedelta(seconds=sub.every_s), force=force,
                           validate=validate)
        fingerprint = _fingerprint(doc.body, opts) if doc.body is not None else None
        with app.db.session() as s:
            applied = repo.get_meta(s, _fingerprint_key(sub.id))
        parsed = None
        if doc.body is not None and fingerprint != applied:
            parsed = checked.get(doc.body) or calendar.parse_checked(doc.body, opts)
        with app.db.session() as s:
            lock_for_write(s)  # an import or another sync may be applying at the same time
            row = s.get(Subscription, sub.id)
            if row is None:  # unsubscribed meanwhile
                return SyncResult(sub.id, where, "error", error="unsubscribed")
            if doc.error is not None:
                row.last_checked, row.last_error = now, str(doc.error)
            elif doc.source == "live":
                row.last_checked, row.last_error = now, None
            outcome = None
            if parsed is not None and fingerprint is not None:
                outcome = calendar.apply(s, parsed, sub.id)
                repo.set_meta(s, _fingerprint_key(sub.id), fingerprint)
                row.last_changed = now
    except ChimeError as exc:  # a database failure, or a cached body that no longer parses
        return SyncResult(sub.id, where, "error", error=str(exc))
    if doc.error is not None:
        return SyncResult(sub.id, where, "error", outcome, str(doc.error))
    if doc.source != "live" and outcome is None:
        return SyncResult(sub.id, where, "waiting")
    status = "changed" if outcome is not None and outcome.changed else "unchanged"
    return SyncResult(sub.id, where, status, outcome)


def _fingerprint_key(subscription_id: int) -> str:
    return f"calendar_applied:{subscription_id}"


def _fingerprint(body: str, opts: Any) -> str:
    """What the events were derived from: the body and the settings that shape events."""
    digest = hashlib.sha256()
    for part in (body, opts.default_tz, opts.all_day_at.isoformat()):
        digest.update(part.encode("utf-8", errors="replace") + b"\0")
    return digest.hexdigest()


def _view(sub: Subscription, events: int, app: Stored) -> dict[str, Any]:
    tz = app.settings.tz

    def iso(t: datetime | None) -> str | None:
        return t.astimezone(tz).isoformat() if t else None

    nxt = sub.last_checked + timedelta(seconds=sub.every_s) if sub.last_checked else None
    return {"id": sub.id, "url": sub.url,
            "every": format_duration(timedelta(seconds=sub.every_s)),
            "events": events, "last_checked": iso(sub.last_checked),
            "last_changed": iso(sub.last_changed), "last_error": sub.last_error,
            "next_check": iso(nxt)}
