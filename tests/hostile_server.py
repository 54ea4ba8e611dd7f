"""A loopback HTTP server that misbehaves on purpose, one way per path.

Raw sockets, so it can do what a well-behaved test server cannot: never answer, trickle one
byte per second, or stream a body of ``HUGE`` bytes generated lazily (never held in memory).
Every path answers in the way ``server.mode`` says (one of :data:`MODES`, or ``"good"``: the
body the test put in ``server.good`` for the path's kind, ``json`` or ``ics``), so a client can
first fill its cache and then meet the hostile answer at the same URL.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

HUGE = 1 << 30  # 1 GiB
LONG_LINE = 50 * 1024 * 1024
MANY_EVENTS = 100_000

MODES = ("silent", "trickle", "500", "429", "loop", "html", "wrong-shape", "huge",
         "many-events", "long-line")


def _many_events() -> Iterator[bytes]:
    yield b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//EN\r\n"
    for i in range(MANY_EVENTS):
        yield (f"BEGIN:VEVENT\r\nUID:{i}\r\nDTSTART:20300101T{i % 24:02d}0000Z\r\n"
               f"SUMMARY:e\r\nEND:VEVENT\r\n").encode()  # compact: 7.8 MB, under the size cap
    yield b"END:VCALENDAR\r\n"


def _repeat(total: int, head: bytes = b"", tail: bytes = b"") -> Iterator[bytes]:
    yield head
    block = b"x" * 65536
    left = total - len(head) - len(tail)
    while left > 0:
        yield block[: min(left, len(block))]
        left -= len(block)
    yield tail


class _Handler(socketserver.BaseRequestHandler):
    server: HostileServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(4096)
                if not data:
                    return
                head += data
            path = head.split(b" ", 2)[1].decode().split("?")[0]
            self.server.requests.append(path)
            self.answer(sock, path)
        except OSError:  # the client gave up: that is the point
            pass

    def answer(self, sock: socket.socket, path: str) -> None:
        mode = self.server.mode
        kind = "ics" if path.endswith(".ics") else "json"
        stop = self.server.stopping
        if mode == "good":
            return self.send(sock, 200, self.server.good[kind], f"text/{kind}")
        if mode == "silent":
            stop.wait(60)
            return None
        if mode == "trickle":
            body = self.server.good.get(kind, b"{}")
            reply = (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
            for i in range(len(reply)):
                if stop.wait(1.0):
                    return None
                sock.sendall(reply[i:i + 1])
            return None
        if mode == "500":
            return self.send(sock, 500, b"internal error", "text/plain")
        if mode == "429":
            return self.send(sock, 429, b"slow down", "text/plain", {"Retry-After": "3600"})
        if mode == "loop":
            return self.send(sock, 302, b"", "text/plain", {"Location": path})
        if mode == "html":
            return self.send(sock, 200, b"<!doctype html><html><body>Login</body></html>",
                             "text/html")
        if mode == "wrong-shape":
            return self.send(sock, 200, b'{"hourly": {"time": "soon"}, "events": [1, 2]}',
                             "application/json")
        if mode == "huge":
            return self.stream(sock, _repeat(HUGE), "application/octet-stream")
        if mode == "many-events":
            return self.stream(sock, _many_events(), "text/calendar")
        if mode == "long-line":
            head = b'{"reason": "' if kind == "json" else b"BEGIN:VCALENDAR\r\nX-LONG:"
            return self.stream(sock, _repeat(LONG_LINE, head, b'"}' if kind == "json" else b""),
                               "text/plain")
        return self.send(sock, 404, b"no such mode", "text/plain")

    def send(self, sock: socket.socket, status: int, body: bytes, ctype: str,
             headers: dict[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Type: {ctype}",
                 f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def stream(self, sock: socket.socket, parts: Iterator[bytes], ctype: str) -> None:
        """A close-delimited body (no Content-Length): the client must stream and stop."""
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nConnection: close\r\n\r\n"
                     .encode())
        for part in parts:
            if self.server.stopping.is_set():
                return
            sock.sendall(part)
            self.server.sent += len(part)


class HostileServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "good"
        self.good: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.sent = 0
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
