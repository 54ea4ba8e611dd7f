"""The one way chime talks to remote servers (forecast, holiday feed, calendar subscriptions).

Two functions, both over a ``requests.Session`` that the caller owns and passes in:

* :func:`request` — one HTTP request with connect/read timeouts, the project's User-Agent,
  bounded retries with exponential backoff for transient failures, and every transport failure
  turned into a :class:`~daemon.errors.FetchError` subclass. It never raises anything else
  for network trouble.
* :func:`fetch_cached` — a conditional GET (``If-None-Match`` / ``If-Modified-Since``) whose
  document is kept in the ``http_cache`` table, made at most once per ``min_interval`` per URL
  (also across restarts: the attempt is recorded *before* the request), honouring a server's
  ``Retry-After``, and serving the cached body when the network is gone.
  :func:`cached_document` reads that cache without touching the network.

Error mapping (what :func:`request` raises):

==========================================  =====================================
transport failure                           error
==========================================  =====================================
connect or read timeout, body too slow      ``FetchTimeout``
refused, DNS, TLS, reset, bad URL           ``FetchConnectionError``
HTTP 429                                    ``FetchRateLimited`` (``retry_after`` s)
other HTTP 4xx/5xx                          ``FetchHTTPError`` (``status``)
body too large or undecodable, bad JSON     ``FetchPayloadError``
==========================================  =====================================

Timeouts, refused connections and HTTP 500/502/503/504 are retried ``policy.retries`` times,
waiting ``backoff``, ``2·backoff``, … (capped; a ``Retry-After`` longer than the cap ends the
retries). 429 and other 4xx are never retried. Messages name the host and the last path
segment only: query strings carry the location and calendar paths may carry secret tokens.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from daemon import __version__
from daemon.errors import (
    FetchConnectionError,
    FetchError,
    FetchHTTPError,
    FetchPayloadError,
    FetchRateLimited,
    FetchTimeout,
)
from daemon.store.db import Database
from daemon.store.models import HttpCache

log = logging.getLogger("daemon.http")

USER_AGENT = f"chime/{__version__} (+https://github.com/chime-reminder)"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
CLOCK_SLACK = timedelta(minutes=1)  # an attempt "in the future" means the clock went back


@dataclass(frozen=True)
class FetchPolicy:
    """How patient to be with a server. ``sleep`` is injectable so tests never really wait."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    retries: int = 2  # extra attempts after the first, for transient failures only
    backoff: float = 1.0  # seconds before the first retry; doubles each retry
    max_backoff: float = 30.0  # no single wait is longer; a longer Retry-After ends the retries
    total_timeout: float = 60.0  # one attempt, body included (guards against a trickling server)
    max_bytes: int = 8 * 1024 * 1024  # a bigger body is a FetchPayloadError
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        wait = min(self.backoff * (2**retry), self.max_backoff)
        return max(wait, retry_after or 0.0)


@dataclass(frozen=True)
class Reply:
    """A successful answer (2xx, or 304 for a conditional request), body fully read."""

    url: str
    status: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    content: bytes

    def text(self) -> str:
        """The body as text: the charset the server names, else UTF-8 (never Latin-1)."""
        return self.content.decode(_charset(self.headers) or "utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON, or FetchPayloadError."""
        try:
            return json.loads(self.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FetchPayloadError(
                f"{describe_url(self.url)}: the answer is not valid JSON ({exc})"
            ) from exc


def describe_url(url: str) -> str:
    """``host/…/last-segment`` — safe for logs and messages (no query, no secret path parts)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return host
    return f"{host}/{segments[0]}" if len(segments) == 1 else f"{host}/…/{segments[-1]}"


def request(
    session: requests.Session,
    url: str,
    *,
    policy: FetchPolicy,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    data: bytes | None = None,
) -> Reply:
    """GET ``url`` (or ``method`` with ``data``, redirects not followed: a token must not go
    elsewhere) with retries; return the Reply or raise a FetchError subclass (see module).
    A request that is not idempotent should come with ``policy.retries`` = 0."""
    retry = 0
    while True:
        try:
            return _attempt(session, url, policy, params, headers, method, data)
        except (FetchTimeout, FetchConnectionError, FetchHTTPError) as exc:
            retry_after = getattr(exc, "retry_after", None)
            transient = not isinstance(exc, FetchHTTPError) or (
                exc.status in RETRY_STATUSES
                and (retry_after is None or retry_after <= policy.max_backoff)
            )
            if not transient or retry >= policy.retries:
                raise
            wait = policy.delay(retry, retry_after)
            log.info("%s; retrying in %.1fs (%d/%d)", exc, wait, retry + 1, policy.retries)
            policy.sleep(wait)
            retry += 1


def _attempt(
    session: requests.Session,
    url: str,
    policy: FetchPolicy,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    method: str = "GET",
    data: bytes | None = None,
) -> Reply:
    where = describe_url(url)
    sent = {"User-Agent": USER_AGENT, **(headers or {})}
    try:
        with session.request(
            method,
            url,
            params=params,
            headers=sent,
            data=data,
            timeout=(policy.connect_timeout, policy.read_timeout),
            stream=True,
            allow_redirects=method == "GET",
        ) as resp:
            status, got_headers = resp.status_code, resp.headers
            content = _read_body(resp, policy, where)
    except requests.Timeout as exc:
        raise FetchTimeout(f"{where}: no answer in time ({_reason(exc)})") from exc
    except requests.exceptions.ContentDecodingError as exc:
        raise FetchPayloadError(f"{where}: cannot decode the answer ({_reason(exc)})") from exc
    except requests.ConnectionError as exc:
        if any(isinstance(a, ReadTimeoutError) for a in exc.args):
            raise FetchTimeout(f"{where}: the answer stalled ({_reason(exc)})") from exc
        raise FetchConnectionError(f"{where}: cannot connect ({_reason(exc)})") from exc
    except requests.RequestException as exc:  # broken chunking, bad URL, too many redirects
        raise FetchConnectionError(f"{where}: request failed ({_reason(exc)})") from exc
    if status == 429:
        retry_after = parse_retry_after(got_headers.get("Retry-After"))
        raise FetchRateLimited(
            f"{where}: rate limited (HTTP 429"
            + (f", retry after {retry_after:.0f}s)" if retry_after is not None else ")"),
            status,
            retry_after,
        )
    if status >= 400:
        raise FetchHTTPError(
            f"{where}: HTTP {status}{_excerpt(content)}",
            status,
            parse_retry_after(got_headers.get("Retry-After")),
        )
    if status >= 300 and status != 304:
        raise FetchHTTPError(f"{where}: unexpected HTTP {status}", status)
    return Reply(url=url, status=status, headers=got_headers, content=content)


def _read_body(resp: requests.Response, policy: FetchPolicy, where: str) -> bytes:
    deadline = time.monotonic() + policy.total_timeout
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > policy.max_bytes:
            raise FetchPayloadError(f"{where}: the answer is larger than {policy.max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchTimeout(f"{where}: the answer took longer than {policy.total_timeout}s")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _charset(headers: Mapping[str, str]) -> str | None:
    for param in headers.get("Content-Type", "").split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"').strip()
    return None


def _excerpt(content: bytes) -> str:
    """A short, single-line reason from an error body (Open-Meteo sends {"reason": …})."""
    text = content[:2000].decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("reason"), str):
            text = data["reason"]
    except ValueError:
        pass
    line = " ".join(text.split())[:160]
    return f": {line}" if line and not line.startswith("<") else ""


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a requests/urllib3 error (no URLs with queries)."""
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    text = str(reason if isinstance(reason, BaseException) else inner)
    if "Max retries exceeded" in text and ": " in text:  # urllib3's wrapper; keep its cause
        text = text.rsplit("(Caused by ", 1)[-1].rstrip(")")
    return " ".join(text.split())[:160] or type(inner).__name__


# ---------------------------------------------------------------------------------------------
# Conditional GET with the http_cache table


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
    session: requests.Session,
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
    * The attempt time is committed before the request, so a crash loop cannot hammer a server.
    * 200 stores the body with its ``ETag`` / ``Last-Modified``; 304 keeps the body and
      refreshes ``fetched_at``.
    * ``validate(body)`` may raise ``ValueError`` or ``FetchPayloadError`` to refuse a body
      (an HTML error page instead of a calendar): the previous body stays cached.
    * Any failure is logged and returned in ``Document.error`` with the cached body, if any.

    Raises only StoreError (the database itself failed).
    """
    with db.session() as s:
        row = s.get(HttpCache, url)
        if row is None:
            row = HttpCache(url=url)
            s.add(row)
        old_body, etag, modified = row.body, row.etag, row.last_modified
        if not is_due(now, row.attempted_at, row.retry_after,
                      timedelta(0) if force else min_interval):
            return Document(url, row.body, "cache", row.fetched_at, row.attempted_at)
        row.attempted_at = now
        fetched_at = row.fetched_at
    headers: dict[str, str] = {}
    if old_body is not None:
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
    try:
        reply = request(session, url, policy=policy, headers=headers)
        body = old_body if reply.status == 304 else reply.text()
        if body is None:  # 304 without anything cached: the server misbehaved
            raise FetchPayloadError(f"{describe_url(url)}: HTTP 304 but nothing is cached")
        if reply.status != 304 and validate is not None:
            try:
                validate(body)
            except ValueError as exc:
                raise FetchPayloadError(f"{describe_url(url)}: {exc}") from exc
    except FetchError as exc:
        log.warning("%s", exc)
        retry_after = exc.retry_after if isinstance(exc, FetchHTTPError) else None
        with db.session() as s:
            row = s.get(HttpCache, url)
            if row is not None:
                row.retry_after = retry_after
        return Document(url, old_body, "cache", fetched_at, now, error=exc)
    changed = reply.status != 304 and body != old_body
    with db.session() as s:
        row = s.get(HttpCache, url) or HttpCache(url=url, attempted_at=now)
        s.add(row)
        row.body = body
        row.fetched_at = now
        row.retry_after = None
        if reply.status != 304:
            row.etag = reply.headers.get("ETag")
            row.last_modified = reply.headers.get("Last-Modified")
    log.debug("%s: %s", describe_url(url), "changed" if changed else "unchanged")
    return Document(url, body, "live", now, now, changed=changed)
