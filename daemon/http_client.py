"""The connections under :func:`daemon.http.request`: pools, proxies, TLS and the deadline.

A :class:`Client` holds urllib3 connection pools: direct ones, and one set per proxy that the
environment names for a URL (``http_proxy``, ``https_proxy``, ``all_proxy``, ``no_proxy``,
upper case too, as curl reads them; ``user:password@`` in the proxy URL is sent as
``Proxy-Authorization``). TLS is verified against the system's CA certificates
(``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` choose others), or certifi's bundle where the system has
none; one TLS context serves the whole process, made on its first ``https`` connection.

:meth:`Client.exchange` is one attempt of a :class:`daemon.http.Call`: every connection it
opens registers with the call's deadline (see :func:`watching`), which shuts their sockets when
it passes; urllib3's failures become the FetchErrors of :mod:`daemon.http`'s table. Only this
module imports urllib3: a daemon that fetches nothing never loads it.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from urllib3 import BaseHTTPResponse, PoolManager, ProxyManager, Retry, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
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
from urllib3.util import make_headers
from urllib3.util.ssl_ import create_urllib3_context

from daemon.errors import FetchConnectionError, FetchHTTPError, FetchPayloadError, FetchTimeout
from daemon.http import MAX_REDIRECTS, USER_AGENT, reason

if TYPE_CHECKING:
    from daemon.http import Call, Deadline

CHUNK = 65536
SENT_HEADERS = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}


class Client:
    """The connection pools a request goes through: one client per owner, shared by its threads.

    Pools are made on first use, one set for direct connections and one per proxy that the
    environment names; :meth:`close` drops their connections (a later request reconnects).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._managers: dict[str, PoolManager] = {}  # "" = direct, else the proxy URL

    def pools_for(self, url: str) -> PoolManager:
        """The pool manager for ``url``: direct, or through the environment's proxy for it."""
        proxy = environment_proxy(url) or ""
        with self._lock:
            manager = self._managers.get(proxy)
            if manager is None:
                manager = self._managers[proxy] = _manager(proxy)
            return manager

    def exchange(self, call: Call, where: str) -> tuple[int, Mapping[str, str], bytes]:
        """One attempt of ``call``: status, headers and the whole body (redirects followed);
        a FetchError for any transport failure (see :mod:`daemon.http`)."""
        left = call.deadline.remaining()
        timeout = Timeout(connect=min(call.policy.connect_timeout, left),
                          read=min(call.policy.read_timeout, left))
        with watching(call.deadline):
            resp = self._send(call, timeout, where)
            complete = False
            try:
                status, headers = resp.status, resp.headers
                if call.follow_redirects and resp.get_redirect_location():
                    raise FetchHTTPError(f"{where}: more than {MAX_REDIRECTS} redirects", status)
                content = _read_body(resp, call, where)
                complete = True
            except (HTTPError, OSError) as exc:
                raise _transport_error(exc, call, where, reading=True) from exc
            finally:
                if not complete:
                    resp.close()  # a half-read answer: its connection is not reused
                resp.release_conn()
        return status, headers, content

    def _send(self, call: Call, timeout: Timeout, where: str) -> BaseHTTPResponse:
        """The answer's status and headers (its body not read yet); redirects followed."""
        try:
            pools = self.pools_for(call.target)
        except (ValueError, HTTPError) as exc:  # a proxy URL urllib3 cannot use
            raise FetchConnectionError(f"{where}: unusable proxy ({reason(exc)})") from None
        retries = Retry(total=None, connect=0, read=0, status=0, other=0,
                        redirect=MAX_REDIRECTS, raise_on_redirect=False)
        try:
            return pools.urlopen(call.method, call.target, body=call.body,
                                 headers={**SENT_HEADERS, **(call.headers or {})},
                                 timeout=timeout, retries=retries,
                                 redirect=call.follow_redirects, preload_content=False,
                                 decode_content=True)
        except (HTTPError, OSError) as exc:
            raise _transport_error(exc, call, where, reading=False) from exc

    def close(self) -> None:
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def environment_proxy(url: str) -> str | None:
    """The proxy URL the environment names for ``url``, or None (none set, or ``no_proxy``)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()  # the environment's, on Linux
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or not parts.hostname:
        return None
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if urllib.request.proxy_bypass(host):  # no_proxy
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _read_body(resp: BaseHTTPResponse, call: Call, where: str) -> bytes:
    """The body, streamed: refused beyond ``max_bytes`` or past the deadline."""
    policy = call.policy
    declared = resp.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > policy.max_bytes:
        raise FetchPayloadError(f"{where}: the answer is larger than {policy.max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.stream(CHUNK, decode_content=True):
        size += len(chunk)
        if size > policy.max_bytes:
            raise FetchPayloadError(f"{where}: the answer is larger than {policy.max_bytes} bytes")
        if call.deadline.expired():
            raise FetchTimeout(f"{where}: the answer took longer than {policy.total_timeout:g}s")
        chunks.append(chunk)
    return b"".join(chunks)


def _transport_error(exc: BaseException, call: Call, where: str, *, reading: bool) -> Exception:
    """The FetchError for a urllib3 failure (the table in :mod:`daemon.http`)."""
    if call.deadline.expired():
        return FetchTimeout(f"{where}: no complete answer within "
                            f"{call.policy.total_timeout:g}s")
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, DecodeError):
        return FetchPayloadError(f"{where}: cannot decode the answer ({reason(exc)})")
    if isinstance(exc, ReadTimeoutError):
        said = "the answer stalled" if reading else "no answer in time"
        return FetchTimeout(f"{where}: {said} ({reason(exc)})")
    if isinstance(exc, (NewConnectionError, SSLError, ProxyError)) or (
            isinstance(exc, ProtocolError) and not reading):
        return FetchConnectionError(f"{where}: cannot connect ({reason(exc)})")
    if isinstance(exc, Urllib3Timeout):  # connecting took too long
        return FetchTimeout(f"{where}: no answer in time ({reason(exc)})")
    # broken chunking, a connection cut mid-body, a bad URL
    return FetchConnectionError(f"{where}: request failed ({reason(exc)})")


_active = threading.local()  # the deadline of the call running in this thread


@contextlib.contextmanager
def watching(deadline: Deadline) -> Iterator[None]:
    """Connections this thread uses meanwhile are shut when ``deadline`` passes."""
    _active.deadline = deadline
    try:
        yield
    finally:
        _active.deadline = None


class _Watched:
    """A urllib3 connection that registers itself with the deadline of the running call."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = getattr(_active, "deadline", None)
        if deadline is not None:
            deadline.watch(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = kwargs.get("ssl_context") or tls_context()
        super().__init__(*args, **kwargs)


POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


def _manager(proxy: str) -> PoolManager:
    """Pools of watched connections: direct (``proxy`` empty) or through ``proxy``."""
    manager: PoolManager
    if not proxy:
        manager = PoolManager(num_pools=8)
    else:
        parts = urlsplit(proxy)
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"a {parts.scheme}:// proxy is not supported; use an http:// one")
        auth = unquote(f"{parts.username}:{parts.password or ''}") if parts.username else None
        manager = ProxyManager(proxy, num_pools=8,
                               proxy_headers=make_headers(proxy_basic_auth=auth) if auth
                               else None)
    manager.pool_classes_by_scheme = POOLS  # type: ignore[assignment]
    return manager


_tls_lock = threading.Lock()
_tls: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The one TLS context of the process (the CA store costs ~1.5 MB): verifying, with the
    system's CA certificates, or certifi's bundle where the system has none."""
    global _tls
    with _tls_lock:
        if _tls is None:
            context = create_urllib3_context()
            if _system_has_ca_certificates():
                context.load_default_certs()
            else:
                import certifi

                context.load_verify_locations(certifi.where())
            _tls = context
        return _tls


def _system_has_ca_certificates() -> bool:
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return True
    return bool(paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath))
