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

import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from urllib3 import BaseHTTPResponse, Retry, Timeout
from urllib3.exceptions import (
    DecodeError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from daemon import __version__
from daemon.errors import (
    FetchConnectionError,
    FetchHTTPError,
    FetchPayloadError,
    FetchRateLimited,
    FetchTimeout,
)
from daemon.http_client import Client, Deadline, watching

log = logging.getLogger("daemon.http")

USER_AGENT = f"chime/{__version__} (+https://github.com/chime-reminder)"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
MAX_REDIRECTS = 5
CHUNK = 65536
SENT_HEADERS = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}


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
                f"{describe_url(self.url)}: the answer is not valid JSON ({_reason(exc)})"
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
    call = _Call(client, url, with_params(url, params), policy, deadline, method, headers,
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
class _Call:
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
        left = self.deadline.remaining()
        if left <= 0:
            raise FetchTimeout(f"{where}: no answer within {self.policy.total_timeout:g}s")
        if urlsplit(self.target).scheme.lower() not in ("http", "https"):
            raise FetchConnectionError(f"{where}: request failed (not an http or https URL)")
        sent = {**SENT_HEADERS, **(self.headers or {})}
        timeout = Timeout(connect=min(self.policy.connect_timeout, left),
                          read=min(self.policy.read_timeout, left))
        with watching(self.deadline):
            resp = self.send(sent, timeout, where)
            complete = False
            try:
                status, got_headers = resp.status, resp.headers
                if self.follow_redirects and resp.get_redirect_location():
                    raise FetchHTTPError(f"{where}: more than {MAX_REDIRECTS} redirects", status)
                content = _read_body(resp, self.policy, self.deadline, where)
                complete = True
            except (HTTPError, OSError) as exc:
                raise self.transport_error(exc, where, reading=True) from exc
            finally:
                if not complete:
                    resp.close()  # a half-read answer: its connection is not reused
                resp.release_conn()
        if self.deadline.expired():  # the watchdog cut a body that had no length
            raise FetchTimeout(f"{where}: the answer took longer than "
                               f"{self.policy.total_timeout:g}s")
        return _reply(self.url, status, got_headers, content, where)

    def send(self, sent: Mapping[str, str], timeout: Timeout, where: str) -> BaseHTTPResponse:
        """The answer's status and headers (its body not read yet); redirects followed."""
        try:
            pools = self.client.pools_for(self.target)
        except (ValueError, HTTPError) as exc:  # a proxy URL urllib3 cannot use
            raise FetchConnectionError(f"{where}: unusable proxy ({_reason(exc)})") from None
        retries = Retry(total=None, connect=0, read=0, status=0, other=0,
                        redirect=MAX_REDIRECTS, raise_on_redirect=False)
        try:
            return pools.urlopen(self.method, self.target, body=self.body, headers=sent,
                                 timeout=timeout, retries=retries,
                                 redirect=self.follow_redirects, preload_content=False,
                                 decode_content=True)
        except (HTTPError, OSError) as exc:
            raise self.transport_error(exc, where, reading=False) from exc

    def transport_error(self, exc: BaseException, where: str, *, reading: bool) -> Exception:
        if self.deadline.expired():
            return FetchTimeout(f"{where}: no complete answer within "
                                f"{self.policy.total_timeout:g}s")
        if isinstance(exc, MaxRetryError) and exc.reason is not None:
            exc = exc.reason
        if isinstance(exc, DecodeError):
            return FetchPayloadError(f"{where}: cannot decode the answer ({_reason(exc)})")
        if isinstance(exc, ReadTimeoutError):
            said = "the answer stalled" if reading else "no answer in time"
            return FetchTimeout(f"{where}: {said} ({_reason(exc)})")
        if isinstance(exc, (NewConnectionError, SSLError, ProxyError)) or (
                isinstance(exc, ProtocolError) and not reading):
            return FetchConnectionError(f"{where}: cannot connect ({_reason(exc)})")
        if isinstance(exc, Urllib3Timeout):  # connecting took too long
            return FetchTimeout(f"{where}: no answer in time ({_reason(exc)})")
        # broken chunking, a connection cut mid-body, a bad URL
        return FetchConnectionError(f"{where}: request failed ({_reason(exc)})")


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


def _read_body(resp: BaseHTTPResponse, policy: FetchPolicy, deadline: Deadline,
               where: str) -> bytes:
    """The body, streamed: refused beyond ``max_bytes`` or past the deadline."""
    declared = resp.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > policy.max_bytes:
        raise FetchPayloadError(f"{where}: the answer is larger than {policy.max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.stream(CHUNK, decode_content=True):
        size += len(chunk)
        if size > policy.max_bytes:
            raise FetchPayloadError(f"{where}: the answer is larger than {policy.max_bytes} bytes")
        if deadline.expired():
            raise FetchTimeout(f"{where}: the answer took longer than {policy.total_timeout:g}s")
        chunks.append(chunk)
    return b"".join(chunks)


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


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a urllib3 error (no URLs with queries)."""
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    text = str(reason if isinstance(reason, BaseException) else inner)
    if "Max retries exceeded" in text and ": " in text:  # urllib3's wrapper; keep its cause
        text = text.rsplit("(Caused by ", 1)[-1].rstrip(")")
    return " ".join(text.split())[:160] or type(inner).__name__
