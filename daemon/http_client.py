"""The connections under :func:`daemon.http.request`: pools, proxies, TLS and the deadline.

A :class:`Client` holds urllib3 connection pools: direct ones, and one set per proxy that the
environment names for a URL (``http_proxy``, ``https_proxy``, ``all_proxy``, ``no_proxy``,
upper case too, as curl reads them; ``user:password@`` in the proxy URL is sent as
``Proxy-Authorization``). TLS is verified against the system's CA certificates
(``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` choose others), or certifi's bundle where the system has
none; one TLS context serves the whole process, made on its first ``https`` connection.

A :class:`Deadline` is the end of one request call: every connection the call opens registers
with it (see :func:`watching`), and when it passes a watchdog thread shuts their sockets.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from urllib3 import PoolManager, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import make_headers
from urllib3.util.ssl_ import create_urllib3_context


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


_active = threading.local()  # the deadline of the call running in this thread


class Deadline:
    """The end of one :func:`daemon.http.request` call: from then on, the sockets it uses are shut.

    A blocked ``recv`` on a shut socket returns at once, so a server that trickles its headers
    or body one byte per second cannot hold the caller past the deadline.
    """

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="http-deadline", daemon=True)
        self._thread.start()

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def watch(self, connection: HTTPConnection) -> None:
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
