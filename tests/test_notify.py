"""sd_notify: the client against a real datagram socket, then the daemon's protocol for real."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.notify import Notifier
from tests.daemon_fixtures import Daemon


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound SOCK_DGRAM unix socket, as systemd's notification socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_messages_on_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready()
    assert sock.recv(4096) == b"READY=1"
    assert n.ready("3 reminders\nplanned")
    assert sock.recv(4096) == b"READY=1\nSTATUS=3 reminders planned"
    assert n.status("next: 08:00  喝水")
    assert sock.recv(4096).decode() == "STATUS=next: 08:00 喝水"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    first, second = sock.recv(4096).decode().split("\n")
    assert first == "RELOADING=1"
    usec = int(second.removeprefix("MONOTONIC_USEC="))
    assert before <= usec <= before + 5_000_000
    n.close()


def test_abstract_namespace_socket() -> None:
    name = f"chime-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


@pytest.mark.parametrize("value", ["", "vsock:2:1234", "@", "relative/path"])
def test_no_usable_socket_is_a_no_op(value: str) -> None:
    n = Notifier({"NOTIFY_SOCKET": value} if value else {})
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not n.status("x") and not n.stopping()
    assert not n.reloading()


def test_the_real_environment_is_read(monkeypatch: pytest.MonkeyPatch,
                                      listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    n = Notifier()
    assert n.watchdog_interval == 10.0
    assert n.ready()
    assert sock.recv(4096) == b"READY=1"


def test_a_gone_socket_logs_and_returns_false(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        assert not n.watchdog()
    assert "sd_notify" in caplog.text


@pytest.mark.parametrize(("env", "expected"), [
    ({"WATCHDOG_USEC": "3000000"}, 1.5),
    ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
    ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert Notifier(env).watchdog_interval == expected


# --- the daemon speaks the protocol -----------------------------------------------------

WATCHDOG_USEC = 4_000_000  # WatchdogSec=4s: the daemon must ping at least every 2 s


def schema_version(db: Path) -> int:
    with sqlite3.connect(db, timeout=5) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0])


class Messages:
    """What arrived on the socket, with arrival times."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.log: list[tuple[float, str]] = []

    def until(self, predicate: str, timeout: float) -> float | None:
        """Receive until a datagram containing ``predicate`` arrives; its arrival time."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            now = time.monotonic()
            self.log.append((now, data))
            if predicate in data.split("\n"):
                return now
        return None

    def pings(self, since: float) -> list[float]:
        return [t for t, d in self.log if t >= since and "WATCHDOG=1" in d.split("\n")]



@pytest.mark.slow
def test_daemon_notifies_ready_pings_and_stops_pinging_when_hung(
        tmp_path: Path, listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    db = tmp_path / "x.db"
    started = time.monotonic()
    daemon = Daemon(db, NOTIFY_SOCKET=path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    messages = Messages(sock)
    try:
        ready = messages.until("READY=1", timeout=5)
        assert ready is not None, f"no READY=1 within 5 s:\n{daemon.err.read_text()}"
        assert schema_version(db) > 0  # the database was open (and migrated) before READY

        # Alive: pings at about half the interval (the loop polls every second).
        messages.until("never", timeout=8)
        pings = messages.pings(ready)
        assert len(pings) >= 3, messages.log
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) < WATCHDOG_USEC / 1e6, gaps
        assert sum(gaps) / len(gaps) <= WATCHDOG_USEC / 2e6 * 1.25, gaps
        assert any(d.startswith("STATUS=") for _, d in messages.log)

        # Hang the scheduler: its heartbeat job cannot write while another process holds the
        # database's write lock. The pings must stop, so systemd would restart the service.
        lock = sqlite3.connect(db, timeout=1, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        hung = time.monotonic()
        messages.until("never", timeout=16)
        last = max(messages.pings(ready))
        assert last - hung < 10, "pings went on while the scheduler could not tick"
        silence = time.monotonic() - last
        assert silence > WATCHDOG_USEC / 1e6 + 2, silence

        lock.execute("ROLLBACK")
        lock.close()
        resumed = messages.until("WATCHDOG=1", timeout=20)
        assert resumed is not None, "pings did not resume after the hang ended"

        daemon.proc.send_signal(signal.SIGHUP)
        assert messages.until("RELOADING=1", timeout=10) is not None
        assert messages.until("READY=1", timeout=10) is not None

        daemon.proc.send_signal(signal.SIGTERM)
        assert messages.until("STOPPING=1", timeout=20) is not None
        assert daemon.proc.wait(30) == 0
    finally:
        daemon.stop()
    assert time.monotonic() - started < 120
