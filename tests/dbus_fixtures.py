"""A private D-Bus session bus and a small notification server, for the desktop tests.

``private_bus()`` starts ``dbus-daemon`` with its own config (no service activation, so no
real notification daemon can be started behind the test's back) and yields its address.
``NotificationServer`` owns ``org.freedesktop.Notifications`` on that bus, records every
``Notify`` call, and can emit ``ActionInvoked`` / ``NotificationClosed`` like a real one.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jeepney import DBusAddress, HeaderFields, MessageType, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.threading import DBusRouter, Proxy, ReceiveStopped, open_dbus_connection

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{listen}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
EMITTER = DBusAddress(PATH, interface=NAME)


def require_dbus_daemon() -> str:
    exe = shutil.which("dbus-daemon")
    if exe is None:
        raise AssertionError(
            "dbus-daemon is not installed; .ci/run installs it (Debian package 'dbus')"
        )
    return exe


@contextmanager
def private_bus(socket: Path | None = None) -> Iterator[str]:
    """Start a session bus of our own (at ``socket`` if given); yields its address."""
    exe = require_dbus_daemon()
    folder = Path(tempfile.mkdtemp(prefix="chime-bus-"))  # short: socket paths are limited
    config = folder / "bus.conf"
    listen = f"unix:path={socket}" if socket else f"unix:dir={folder}"
    config.write_text(BUS_CONFIG.format(listen=listen))
    proc = subprocess.Popen(
        [exe, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        if not address:
            raise AssertionError(f"dbus-daemon did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Notification:
    """One recorded Notify call."""

    id: int
    app_name: str
    replaces_id: int
    icon: str
    summary: str
    body: str
    actions: list[str]
    hints: dict[str, Any]
    expire_timeout: int
    sender: str
    received: float  # time.time() when the server got it


class NotificationServer:
    """A notification server in a thread: records Notify, emits signals on request."""

    def __init__(self, address: str, capabilities: tuple[str, ...] = ("actions", "body")) -> None:
        self.capabilities = list(capabilities)
        self.notifications: list[Notification] = []
        self._changed = threading.Condition()
        self._next_id = 1
        self.conn = open_dbus_connection(bus=address)
        with DBusRouter(self.conn) as router:
            reply = Proxy(message_bus, router, timeout=5).RequestName(NAME, 4)  # DO_NOT_QUEUE
        if reply != (1,):  # PRIMARY_OWNER
            raise AssertionError(f"could not own {NAME}: {reply}")
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                msg = self.conn.receive()
            except (ReceiveStopped, OSError, EOFError):
                return
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "Notify":
                with self._changed:
                    nid = self._next_id
                    self._next_id += 1
                    name, replaces, icon, summary, body, actions, hints, expire = msg.body
                    self.notifications.append(Notification(
                        nid, name, replaces, icon, summary, body, list(actions), dict(hints),
                        expire, msg.header.fields.get(HeaderFields.sender, ""), time.time(),
                    ))
                    self._changed.notify_all()
                self.conn.send(new_method_return(msg, "u", (nid,)))
            elif member == "GetCapabilities":
                self.conn.send(new_method_return(msg, "as", (self.capabilities,)))
            elif member == "GetServerInformation":
                self.conn.send(new_method_return(msg, "ssss", ("test", "chime", "1", "1.2")))
            elif member == "CloseNotification":
                self.conn.send(new_method_return(msg))
                self.emit_closed(msg.body[0], 3)
            else:
                self.conn.send(new_method_return(msg))

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Notification]:
        """Wait until ``count`` notifications arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.notifications) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} notification(s) within {timeout}s, got "
                        f"{len(self.notifications)}"
                    )
                self._changed.wait(left)
            return list(self.notifications)

    def emit_action(self, nid: int, key: str) -> None:
        """What a server sends when the person clicks a button."""
        self.conn.send(new_signal(EMITTER, "ActionInvoked", "us", (nid, key)))

    def emit_closed(self, nid: int, reason: int) -> None:
        """1 expired, 2 dismissed by the user, 3 closed by a call, 4 other."""
        self.conn.send(new_signal(EMITTER, "NotificationClosed", "uu", (nid, reason)))

    def close(self) -> None:
        self.conn.interrupt()  # the serving thread stops before the socket closes under it
        self._thread.join(timeout=5)
        self.conn.close()
