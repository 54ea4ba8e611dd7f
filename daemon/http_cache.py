"""Cached documents (holiday feed, calendar subscriptions) over :func:`daemon.http.request`.

:func:`fetch_cached` is a conditional GET (``If-None-Match`` / ``If-Modified-Since``) whose
document is kept in the ``http_cache`` table, made at most once per ``min_interval`` per URL
(also across restarts: the attempt is recorded *before* the request), honouring a server's
``Retry-After``, and serving the cached body when the network is gone or the answer is bad.
:func:`cached_document` reads that cache without touching the network.

One call is three steps, each its own short transaction or none: claim the attempt (or serve
the cache when none is due), ask the server (no transaction is open while the network is
slow), then record the failure or the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from daemon.errors import FetchError, FetchHTTPError, FetchPayloadError
from daemon.http import FetchPolicy, describe_url, request
from daemon.store.db import Database
from daemon.store.models import HttpCache

if TYPE_CHECKING:
    from daemon.http_client import Client

log = logging.getLogger("daemon.http")

CLOCK_SLACK = timedelta(minutes=1)  # an attempt "in the future" means the clock went back


@dataclass(frozen=True)
class Document:
    """What :func:`fetch_cached` or :func:`cached_document` knows about a URL.

    ``body`` is the newest body we have (just fetched or from the cache); None when nothing
    has ever arrived. ``source`` is ``"live"`` when the server answered in this call (200 or
    304), ``"cache"`` when no request was made (not due, rate limited) or it failed.
    ``changed`` is true when this call stored a body different from the one cached before.
    ``error`` is why this call's request failed (None when it succeeded or none was made).
    """

    url: str
    body: str | None
    source: str
    fetched_at: datetime | None  # when the server last gave or confirmed the body
    attempted_at: datetime | None
    changed: bool = False
    error: FetchError | None = None


def cached_document(db: Database, url: str) -> Document | None:
    """The cached document for ``url`` without touching the network; None if never attempted."""
    with db.session() as s:
        row = s.get(HttpCache, url)
        if row is None:
            return None
        return Document(url, row.body, "cache", row.fetched_at, row.attempted_at)


def next_attempt(
    attempted_at: datetime | None, retry_after: float | None, min_interval: timedelta
) -> datetime | None:
    """The earliest instant another request is allowed; None means now."""
    if attempted_at is None:
        return None
    wait = max(min_interval, timedelta(seconds=retry_after or 0.0))
    return attempted_at + wait


def is_due(
    now: datetime,
    attempted_at: datetime | None,
    retry_after: float | None,
    min_interval: timedelta,
) -> bool:
    """True when a new request is allowed at ``now`` (a clock that went back counts as due)."""
    if attempted_at is None or attempted_at > now + CLOCK_SLACK:
        return True
    allowed = next_attempt(attempted_at, retry_after, min_interval)
    return allowed is None or now >= allowed


def fetch_cached(
    db: Database,
    client: Client,
    url: str,
    *,
    now: datetime,
    policy: FetchPolicy,
    min_interval: timedelta = timedelta(0),
    force: bool = False,
    validate: Callable[[str], object] | None = None,
) -> Document:
    """Conditional GET of ``url`` through the ``http_cache`` table; never raises FetchError.

    * No request when the last attempt was less than ``min_interval`` ago (unless ``force``),
      or while a server's ``Retry-After`` runs (even with ``force``): the cache is served.
    * 200 stores the body with its ``ETag`` / ``Last-Modified``; 304 keeps the body and
      refreshes ``fetched_at``.
    * ``validate(body)`` may raise ``ValueError`` or ``FetchPayloadError`` to refuse a body
      (an HTML error page instead of a calendar): the previous body stays cached.
    * Any failure is returned in ``Document.error`` with the cached body, not logged: the
      caller records it once per refresh, in its own words.

    Raises only StoreError (the database itself failed).
    """
    cached = _claim_attempt(db, url, now, timedelta(0) if force else min_interval)
    if isinstance(cached, Document):
        return cached
    try:
        fresh = _ask(client, url, policy, cached, validate)
    except FetchError as exc:
        _record_failure(db, url, exc)
        return Document(url, cached.body, "cache", cached.fetched_at, now, error=exc)
    _record_answer(db, url, now, fresh)
    changed = not fresh.not_modified and fresh.body != cached.body
    log.debug("%s: %s", describe_url(url), "changed" if changed else "unchanged")
    return Document(url, fresh.body, "live", now, now, changed=changed)


@dataclass(frozen=True)
class _Cached:
    """The cache row as it was when this attempt was claimed."""

    body: str | None
    etag: str | None
    last_modified: str | None
    fetched_at: datetime | None


@dataclass(frozen=True)
class _Answer:
    body: str
    not_modified: bool  # 304: the cached body was confirmed
    etag: str | None
    last_modified: str | None


def _claim_attempt(db: Database, url: str, now: datetime,
                   min_interval: timedelta) -> _Cached | Document:
    """Record this attempt (committed before the request, so a crash loop cannot hammer a
    server) and return the cached state; or, when no request is due, the cached Document."""
    with db.session() as s:
        row = s.get(HttpCache, url)
        if row is None:
            row = HttpCache(url=url)
            s.add(row)
        if not is_due(now, row.attempted_at, row.retry_after, min_interval):
            return Document(url, row.body, "cache", row.fetched_at, row.attempted_at)
        row.attempted_at = now
        return _Cached(row.body, row.etag, row.last_modified, row.fetched_at)


def _ask(client: Client, url: str, policy: FetchPolicy, cached: _Cached,
         validate: Callable[[str], object] | None) -> _Answer:
    """The server's answer, validated; a FetchError for anything unusable."""
    headers: dict[str, str] = {}
    if cached.body is not None:
        if cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
    reply = request(client, url, policy=policy, headers=headers)
    if reply.status == 304:
        if cached.body is None:
            raise FetchPayloadError(f"{describe_url(url)}: HTTP 304 but nothing is cached")
        return _Answer(cached.body, True, cached.etag, cached.last_modified)
    body = reply.text()
    if validate is not None:
        try:
            validate(body)
        except ValueError as exc:
            raise FetchPayloadError(f"{describe_url(url)}: {exc}") from exc
    return _Answer(body, False, reply.headers.get("ETag"), reply.headers.get("Last-Modified"))


def _record_failure(db: Database, url: str, exc: FetchError) -> None:
    """Keep the cached body; remember a server's Retry-After."""
    with db.session() as s:
        row = s.get(HttpCache, url)
        if row is not None:
            row.retry_after = exc.retry_after if isinstance(exc, FetchHTTPError) else None


def _record_answer(db: Database, url: str, now: datetime, answer: _Answer) -> None:
    with db.session() as s:
        row = s.get(HttpCache, url) or HttpCache(url=url, attempted_at=now)
        s.add(row)
        row.body = answer.body
        row.fetched_at = now
        row.retry_after = None
        row.etag, row.last_modified = answer.etag, answer.last_modified
