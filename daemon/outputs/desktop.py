"""Desktop output: freedesktop notifications on the session D-Bus (through jeepney).

Each reminder is one ``org.freedesktop.Notifications.Notify`` call (``susssasa{sv}i``): app
name, summary = the task, body = the message, an urgency hint and the expire timeout from
``[desktop]``. With ``[desktop] actions`` the notification carries 完成 (done) and 稍后提醒
(snooze) buttons; a listener thread turns ``ActionInvoked`` into ``actions.done`` /
``actions.snooze``, and a notification the person dismissed (``NotificationClosed`` with reason
2) into ``actions.done``. A missing bus or notification server raises ``OutputError`` with the
fix, so the failure is recorded and the other outputs still deliver.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from queue import Empty, Queue
from typing import TYPE_CHECKING, Any

from jeepney import DBusAddress, HeaderFields, MatchRule, Message, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.common import RouterClosed
from jeepney.io.threading import DBusRouter, Proxy, open_dbus_connection
from jeepney.wrappers import DBusErrorResponse, unwrap_msg

from daemon.config_checks import require
from daemon.errors import OutputError
from daemon.outputs.base import Actions, Reminder

if TYPE_CHECKING:
    from daemon.config import Settings

log = logging.getLogger("daemon.outputs.desktop")

BUS_NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"
URGENCY = {"low": 0, "normal": 1, "critical": 2}
DONE, SNOOZE = "done", "snooze"
LABELS = {DONE: "完成", SNOOZE: "稍后提醒"}
DISMISSED = 2  # NotificationClosed reason: dismissed by the user
REMEMBERED = 512  # notification ids kept for their buttons
HINT = ("set DBUS_SESSION_BUS_ADDRESS to the desktop session's bus, or run chime as a user "
        "unit (systemctl --user) inside the graphical session")


class DesktopOutput:
    """Shows each reminder as a desktop notification, with 完成 / 稍后提醒 buttons."""

    name = "desktop"

    def __init__(self, settings: Settings, actions: Actions | None = None) -> None:
        require(settings, "desktop")
        conf = settings.desktop
        self.conf = conf
        self.actions = actions
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._pending: OrderedDict[int, int] = OrderedDict()  # notification id → occurrence id
        self._pending_lock = threading.Lock()

    def send(self, reminder: Reminder) -> str:
        with self._lock:
            link, capabilities = self._connect()
            body = reminder.message
            if "body-markup" in capabilities:  # the server would read < and & as markup
                body = html.escape(body, quote=False)
            buttons = (self.conf.actions and self.actions is not None
                       and reminder.occurrence_id is not None)
            actions = [k for key in (DONE, SNOOZE) for k in (key, LABELS[key])] if buttons else []
            hints = {"urgency": ("y", URGENCY[self.conf.urgency])}
            args = (self.conf.app_name, 0, self.conf.icon, reminder.task, body, actions, hints,
                    self.conf.expire_ms)
            # Remember before the reply: a fast click may arrive right behind it.
            with self._pending_lock:
                try:
                    (nid,) = link.call("Notify", "susssasa{sv}i", args)
                except _Gone as exc:
                    self._drop()
                    raise OutputError(f"desktop: lost the session bus connection ({exc}); "
                                      f"{HINT}") from exc
                if buttons and reminder.occurrence_id is not None:
                    self._remember(int(nid), reminder.occurrence_id)
        return f"notification {nid}"

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        """Close the connection; the ids it showed mean nothing to the next server."""
        if self._link is not None:
            self._link.close()
            self._link = None
        with self._pending_lock:
            self._pending.clear()

    # --- connection -----------------------------------------------------------------------

    def _connect(self) -> tuple[_Link, list[str]]:
        """The live connection and the server's capabilities; reconnects a dead one once."""
        try:
            return self._capabilities()
        except _Gone:  # the bus went away since the last reminder (a new login): reconnect
            self._drop()
        try:
            return self._capabilities()
        except _Gone as exc:
            self._drop()
            raise OutputError(f"desktop: lost the session bus connection ({exc}); {HINT}") \
                from exc

    def _capabilities(self) -> tuple[_Link, list[str]]:
        if self._link is None:
            self._link = _Link(self.conf.timeout.total_seconds(), self._on_signal)
        return self._link, list(self._link.call("GetCapabilities")[0])

    # --- signals (listener thread) --------------------------------------------------------

    def _remember(self, nid: int, occurrence_id: int) -> None:
        self._pending[nid] = occurrence_id
        while len(self._pending) > REMEMBERED:
            self._pending.popitem(last=False)

    def _on_signal(self, msg: Message) -> None:
        member = msg.header.fields.get(HeaderFields.member)
        if member == "ActionInvoked":
            nid, key = msg.body
        elif member == "NotificationClosed":
            nid, reason = msg.body
            key = DONE if reason == DISMISSED else ""
        else:
            return
        with self._pending_lock:
            occurrence_id = self._pending.pop(int(nid), None)
        if occurrence_id is None or self.actions is None or not key:
            return
        try:
            if key == SNOOZE:
                repeat = self.actions.snooze(occurrence_id, None)
                log.info("occurrence %s snoozed from the desktop (repeat %s)", occurrence_id,
                         repeat)
            elif key == DONE:
                self.actions.done(occurrence_id)
                log.info("occurrence %s acknowledged on the desktop", occurrence_id)
            else:
                log.debug("ignoring action %r on notification %s", key, nid)
        except Exception:  # a failed button must not stop the listener
            log.exception("desktop action %r for occurrence %s failed", key, occurrence_id)


def session_bus_address() -> str | None:
    """``$DBUS_SESSION_BUS_ADDRESS``, else the user bus socket as sd-bus finds it."""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "").strip()
    if address:
        return address
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.exists(os.path.join(runtime, "bus")):
        return f"unix:path={os.path.join(runtime, 'bus')}"
    return None


class _Gone(Exception):
    """The connection died (bus restarted); safe to reconnect and retry an idempotent call."""


class _Router(DBusRouter):
    """jeepney's router, quiet when the bus goes away (a logout): pending calls still fail."""

    def _receiver(self) -> None:
        try:
            super()._receiver()
        except (OSError, EOFError, ValueError) as exc:
            log.info("session bus connection closed: %s", exc)


class _Link:
    """One connection to the session bus, with a thread that reads notification signals."""

    def __init__(self, timeout: float, on_signal: Callable[[Message], None]) -> None:
        self.timeout = timeout
        self.address = DBusAddress(PATH, bus_name=BUS_NAME, interface=INTERFACE)
        bus = session_bus_address()
        if bus is None:
            raise OutputError(f"desktop: no session bus (DBUS_SESSION_BUS_ADDRESS is not set "
                              f"and there is no $XDG_RUNTIME_DIR/bus); {HINT}")
        try:
            self.conn = open_dbus_connection(bus=bus, auth_timeout=timeout)
        except (OSError, RuntimeError, ValueError, TimeoutError) as exc:
            raise OutputError(f"desktop: cannot connect to the session bus: {exc}; {HINT}") \
                from exc
        self.router = _Router(self.conn)
        rule = MatchRule(type="signal", interface=INTERFACE, path=PATH)
        self.queue: Queue[Message] = Queue(maxsize=256)
        self.filter = self.router.filter(rule, queue=self.queue)
        self.on_signal = on_signal
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._listen, name="chime-desktop-signals",
                                       daemon=True)
        self.thread.start()
        try:
            Proxy(message_bus, self.router, timeout=timeout).AddMatch(rule)
        except (DBusErrorResponse, TimeoutError, RouterClosed, OSError) as exc:
            self.close()
            raise OutputError(f"desktop: the session bus refused a signal subscription: {exc}") \
                from exc

    def call(self, method: str, signature: str | None = None, body: tuple[Any, ...] = ()
             ) -> tuple[Any, ...]:
        """Call a Notifications method; OutputError with the reason, _Gone if the bus died."""
        msg = new_method_call(self.address, method, signature, body)
        try:
            reply = self.router.send_and_get_reply(msg, timeout=self.timeout)
            result: tuple[Any, ...] = unwrap_msg(reply)
            return result
        except DBusErrorResponse as exc:
            if exc.name in ("org.freedesktop.DBus.Error.ServiceUnknown",
                            "org.freedesktop.DBus.Error.NameHasNoOwner"):
                raise OutputError(
                    f"desktop: no notification server on the session bus ({BUS_NAME}); start "
                    f"the desktop session or a notification daemon (dunst, mako), or {HINT}"
                ) from None
            raise OutputError(f"desktop: {method} failed: {exc.name}: {exc.data}") from None
        except TimeoutError:
            raise OutputError(f"desktop: the notification server did not answer {method} "
                              f"within {self.timeout:g}s") from None
        except (RouterClosed, OSError) as exc:
            raise _Gone(str(exc) or type(exc).__name__) from exc

    def _listen(self) -> None:
        while not self.stop.is_set():
            try:
                msg = self.queue.get(timeout=0.2)
            except Empty:
                continue
            self.on_signal(msg)

    def close(self) -> None:
        """Stop the listener and close the connection."""
        self.stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
        self.filter.close()
        try:
            self.router.close()
        finally:
            self.conn.close()
