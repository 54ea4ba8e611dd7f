"""The one HTTP request function of chime, with one error mapping for every caller.

:func:`request` sends one request (GET by default; an output POSTs its ``body``) through a
:class:`Client` (urllib3 connection pools) that the caller owns and passes in, with the
project's User-Agent, bounded retries with exponential backoff for transient failures, and
every transport failure turned into a :class:`~daemon.errors.FetchError` subclass. It never
raises anything else for network trouble. Cached documents (conditional GET, offline use) live
in :mod:`daemon.http_cache`; the client (pools, proxies, TLS) in :mod:`daemon.http_client`.

A hostile or broken server cannot hold a caller longer than ``policy.total_timeout``: that is
one deadline for the whole call — connecting, every attempt, every backoff wait, the headers
and the body — not a per-read timeout that a server answering one byte per second would never
trip. When it passes, a watchdog shuts the call's sockets. Bodies are streamed (gzip and
deflate decoded) and refused beyond ``policy.max_bytes`` (a ``Content-Length`` above it is
refused before reading), so memory stays bounded whatever the server sends. Redirects are
followed at most :data:`MAX_REDIRECTS` times; ``Authorization`` is not sent on to another host.

The client uses the environment's proxies (``http_proxy``, ``https_proxy``, ``no_proxy``…) and
verifies TLS against the system's CA certificates (see :mod:`daemon.http_client`).

Error mapping:

==========================================  =====================================
transport failure                           error
==========================================  =====================================
timeout, a body too slow, the deadline      ``FetchTimeout``
refused, DNS, TLS, proxy, reset, bad URL    ``FetchConnectionError``
HTTP 429                                    ``FetchRateLimited`` (``retry_after`` s)
other HTTP 4xx/5xx, 3xx, a redirect loop    ``FetchHTTPError`` (``status``)
body too large or undecodable, bad JSON     ``FetchPayloadError``
==========================================  =====================================

Timeouts, refused connections and HTTP 500/502/503/504 are retried ``policy.retries`` times,
waiting ``backoff``, ``2·backoff``, … (capped; a ``Retry-After`` longer than the cap, or a wait
past the deadline, ends the retries). 429 and other 4xx are never retried. Messages name the
host and the last path segment only: query strings carry the location and calendar paths may
carry secret tokens.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from daemon import __version__
from daemon.errors import (
    FetchConnectionError,
    FetchHTTPError,
    FetchPayloadError,
    FetchRateLimited,
    FetchTimeout,
)

if TYPE_CHECKING:
    from daemon.http_client import Client

log = logging.getLogger("daemon.http")

USER_AGENT = f"chime/{__version__} (+https://github.com/chime-reminder)"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchPolicy:
    """How patient to be with a server. ``sleep`` is injectable so tests never really wait."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    retries: int = 2  # extra attempts after the first, for transient failures only
    backoff: float = 1.0  # seconds before the first retry; doubles each retry
    max_backoff: float = 30.0  # no single wait is longer; a longer Retry-After ends the retries
    total_timeout: float = 60.0  # the whole call: every attempt, wait, header and body byte
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
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    content: bytes

    def text(self) -> str:
        """The body as text: the charset the server names, else UTF-8 (never Latin-1)."""
        try:
            return self.content.decode(_charset(self.headers) or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON, or FetchPayloadError."""
        try:
            return json.loads(self.content)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise FetchPayloadError(
                f"{describe_url(self.url)}: the answer is not valid JSON ({reason(exc)})"
            ) from exc


def describe_url(url: str) -> str:
    """``host/…/last-segment`` — safe for logs and messages (no query, no secret path parts)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:  # a port that is not a number
        pass
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return host
    return f"{host}/{segments[0]}" if len(segments) == 1 else f"{host}/…/{segments[-1]}"


def request(
    client: Client,
    url: str,
    *,
    policy: FetchPolicy,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    follow_redirects: bool = True,
) -> Reply:
    """Send one request with retries; return the Reply or raise a FetchError (see module)."""
    deadline = Deadline(policy.total_timeout)
    call = Call(client, url, with_params(url, params), policy, deadline, method, headers,
                 body, follow_redirects)
    try:
        return call.run()
    finally:
        deadline.close()


def with_params(url: str, params: Mapping[str, Any] | None) -> str:
    """``url`` with ``params`` added to its query (form-encoded; None values left out)."""
    if not params:
        return url
    parts = urlsplit(url)
    added = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
    query = "&".join(q for q in (parts.query, added) if q)
    return urlunsplit(parts._replace(query=query, fragment=""))


@dataclass
class Call:
    """One :func:`request` call: its attempts share one deadline."""

    client: Client
    url: str  # as the caller gave it: the Reply's url
    target: str  # with the params
    policy: FetchPolicy
    deadline: Deadline
    method: str
    headers: Mapping[str, str] | None
    body: bytes | None
    follow_redirects: bool

    def run(self) -> Reply:
        retry = 0
        while True:
            try:
                return self.attempt()
            except (FetchTimeout, FetchConnectionError, FetchHTTPError) as exc:
                wait = self.retry_wait(exc, retry)
                if wait is None:
                    raise
                log.info("%s; retrying in %.1fs (%d/%d)", exc, wait, retry + 1,
                         self.policy.retries)
                self.policy.sleep(wait)
                retry += 1

    def retry_wait(self, exc: Exception, retry: int) -> float | None:
        """Seconds to wait before the next attempt, or None when there is none."""
        retry_after = getattr(exc, "retry_after", None)
        transient = not isinstance(exc, FetchHTTPError) or (
            exc.status in RETRY_STATUSES
            and (retry_after is None or retry_after <= self.policy.max_backoff)
        )
        if not transient or retry >= self.policy.retries or self.deadline.expired():
            return None
        wait = self.policy.delay(retry, retry_after)
        return wait if wait < self.deadline.remaining() else None

    def attempt(self) -> Reply:
        where = describe_url(self.url)
        if self.deadline.remaining() <= 0:
            raise FetchTimeout(f"{where}: no answer within {self.policy.total_timeout:g}s")
        if urlsplit(self.target).scheme.lower() not in ("http", "https"):
            raise FetchConnectionError(f"{where}: request failed (not an http or https URL)")
        status, headers, content = self.client.exchange(self, where)
        if self.deadline.expired():  # the watchdog cut a body that had no length
            raise FetchTimeout(f"{where}: the answer took longer than "
                               f"{self.policy.total_timeout:g}s")
        return _reply(self.url, status, headers, content, where)


def _reply(url: str, status: int, headers: Mapping[str, str], content: bytes,
           where: str) -> Reply:
    """The Reply for a 2xx/304 answer; the FetchError for any other status."""
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After"))
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
            parse_retry_after(headers.get("Retry-After")),
        )
    if status >= 300 and status != 304:
        raise FetchHTTPError(f"{where}: unexpected HTTP {status}", status)
    return Reply(url=url, status=status, headers=headers, content=content)


# --- the deadline ----------------------------------------------------------------------------

class Deadline:
    """The end of one :func:`daemon.http.request` call: from then on, the sockets it uses are shut.

    A blocked ``recv`` on a shut socket returns at once, so a server that trickles its headers
    or body one byte per second cannot hold the caller past the deadline.
    """

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self._connections: list[Any] = []  # urllib3 connections (their ``sock``)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="http-deadline", daemon=True)
        self._thread.start()

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def watch(self, connection: Any) -> None:
        with self._lock:
            self._connections.append(connection)

    def close(self) -> None:
        """The call is over: stop watching (its connections go back to the pool)."""
        self._done.set()

    def _watch(self) -> None:
        if self._done.wait(max(0.0, self.remaining())):
            return
        while True:  # shut every socket of the call, including one still being connected
            with self._lock:
                connections = list(self._connections)
            for connection in connections:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            if self._done.wait(0.05):
                return


# --- helpers ---------------------------------------------------------------------------------

def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
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


def reason(exc: BaseException) -> str:
    """The innermost useful words of an error, urllib3's included (no URLs with queries)."""
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    cause = getattr(inner, "reason", None)
    text = str(cause if isinstance(cause, BaseException) else inner)
    if "Max retries exceeded" in text and ": " in text:  # urllib3's wrapper; keep its cause
        text = text.rsplit("(Caused by ", 1)[-1].rstrip(")")
    return " ".join(text.split())[:160] or type(inner).__name__
