"""The desktop output on a private D-Bus session bus, with a notification server of our own."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dbus_fixtures import NotificationServer, private_bus

from daemon.config import Settings
from daemon.errors import ConfigError, OutputError
from daemon.outputs import base as outputs
from daemon.outputs.base import Reminder
from daemon.outputs.desktop import DesktopOutput

AT = datetime(2026, 11, 28, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


class Recorder:
    """An Actions object that records what the buttons asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, timedelta | None]] = []
        self.event = threading.Event()

    def snooze(self, occurrence_id: int, delay: timedelta | None = None) -> int | None:
        self.calls.append(("snooze", occurrence_id, delay))
        self.event.set()
        return 1000 + occurrence_id

    def done(self, occurrence_id: int) -> None:
        self.calls.append(("done", occurrence_id, None))
        self.event.set()

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[str, int, timedelta | None]]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            self.event.wait(0.05)
            self.event.clear()
        return list(self.calls)


@pytest.fixture
def server(bus: str) -> Iterator[NotificationServer]:
    srv = NotificationServer(bus)
    yield srv
    srv.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def desktop(settings: Settings, recorder: Recorder, bus: str) -> Iterator[DesktopOutput]:
    out = DesktopOutput(settings, recorder)
    yield out
    out.close()


def test_notify_carries_summary_body_actions_and_hints(
        settings: Settings, server: NotificationServer, recorder: Recorder) -> None:
    settings.desktop.urgency = "critical"
    settings.desktop.expire_ms = 30000
    out = outputs.create("desktop", settings, recorder)
    try:
        assert out.send(Reminder(7, "买咖啡", "早上好！该买咖啡啦。", AT)) == "notification 1"
    finally:
        out.close()
    (note,) = server.wait_for(1)
    assert (note.app_name, note.replaces_id, note.summary, note.body) == (
        "chime", 0, "买咖啡", "早上好！该买咖啡啦。")
    assert note.actions == ["done", "完成", "snooze", "稍后提醒"]
    assert note.hints == {"urgency": ("y", 2)}
    assert note.expire_timeout == 30000


def test_no_buttons_without_actions_or_for_a_test_send(
        settings: Settings, server: NotificationServer, recorder: Recorder) -> None:
    out = DesktopOutput(settings, recorder)
    out.send(Reminder(None, "试一试", "测试提醒", AT))  # chime test-output: nothing to snooze
    out.close()
    settings.desktop.actions = False
    out = DesktopOutput(settings, recorder)
    out.send(Reminder(8, "t", "m", AT))
    out.close()
    assert [n.actions for n in server.wait_for(2)] == [[], []]


def test_snooze_button_calls_actions_once(desktop: DesktopOutput, server: NotificationServer,
                                         recorder: Recorder) -> None:
    desktop.send(Reminder(7, "买咖啡", "该买咖啡啦", AT))
    desktop.send(Reminder(9, "喝水", "该喝水啦", AT))
    first, second = server.wait_for(2)
    server.emit_action(first.id, "snooze")
    server.emit_closed(first.id, 2)  # servers close the notification after a click
    server.emit_action(first.id, "snooze")  # a second click on a gone notification
    assert recorder.wait(1) == [("snooze", 7, None)]
    server.emit_action(second.id, "done")
    assert recorder.wait(2) == [("snooze", 7, None), ("done", 9, None)]
    time.sleep(0.5)  # nothing else trickles in
    assert len(recorder.calls) == 2


def test_dismissing_acknowledges_and_expiry_does_not(
        desktop: DesktopOutput, server: NotificationServer, recorder: Recorder) -> None:
    desktop.send(Reminder(3, "a", "a", AT))
    desktop.send(Reminder(4, "b", "b", AT))
    first, second = server.wait_for(2)
    server.emit_closed(first.id, 1)  # expired: the person may not have seen it
    server.emit_closed(second.id, 2)  # dismissed by the person
    assert recorder.wait(1) == [("done", 4, None)]
    time.sleep(0.5)
    assert recorder.calls == [("done", 4, None)]


def test_a_failing_action_does_not_stop_the_listener(
        settings: Settings, server: NotificationServer) -> None:
    class Flaky(Recorder):
        def snooze(self, occurrence_id: int, delay: timedelta | None = None) -> int | None:
            super().snooze(occurrence_id, delay)
            raise RuntimeError("database is locked")

    flaky = Flaky()
    out = DesktopOutput(settings, flaky)
    try:
        out.send(Reminder(1, "a", "a", AT))
        out.send(Reminder(2, "b", "b", AT))
        one, two = server.wait_for(2)
        server.emit_action(one.id, "snooze")
        assert flaky.wait(1) == [("snooze", 1, None)]
        server.emit_action(two.id, "done")
        assert flaky.wait(2)[1] == ("done", 2, None)
    finally:
        out.close()


def test_markup_is_escaped_only_for_servers_that_read_markup(
        settings: Settings, bus: str) -> None:
    text = "<b>加粗</b> & 1 < 2"
    for capabilities, expected in [(("actions", "body"), text),
                                   (("actions", "body", "body-markup"),
                                    "&lt;b&gt;加粗&lt;/b&gt; &amp; 1 &lt; 2")]:
        srv = NotificationServer(bus, capabilities)
        out = DesktopOutput(settings, None)
        try:
            out.send(Reminder(1, text, text, AT))
            (note,) = srv.wait_for(1)
            assert (note.summary, note.body) == (text, expected)
        finally:
            out.close()
            srv.close()


HOSTILE = ("他说\"别'忘'了\" $(touch {canary}) `touch {canary}` ; rm -rf {victim} \\n\\0 🎉🔔 "
           + "很长的提醒" * 2000)


def test_hostile_text_arrives_verbatim(desktop: DesktopOutput, server: NotificationServer,
                                       tmp_path: Path) -> None:
    canary, victim = tmp_path / "pwned", tmp_path / "victim"
    victim.mkdir()
    text = HOSTILE.format(canary=canary, victim=victim)
    desktop.send(Reminder(5, text[:80], text, AT))
    (note,) = server.wait_for(1)
    assert (note.summary, note.body) == (text[:80], text)
    assert not canary.exists() and victim.is_dir()


# --- failures ------------------------------------------------------------------------------------

def test_no_notification_server_is_a_clear_failure(desktop: DesktopOutput) -> None:
    with pytest.raises(OutputError) as err:
        desktop.send(Reminder(1, "t", "m", AT))
    message = str(err.value)
    assert "no notification server" in message and "org.freedesktop.Notifications" in message
    assert "DBUS_SESSION_BUS_ADDRESS" in message and "user unit" in message


def test_no_session_bus_is_a_clear_failure(settings: Settings, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # no bus socket in it
    out = DesktopOutput(settings, None)
    with pytest.raises(OutputError, match=r"DBUS_SESSION_BUS_ADDRESS is not set.*user unit"):
        out.send(Reminder(1, "t", "m", AT))


def test_finds_the_user_bus_in_xdg_runtime_dir(settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """As under a systemd user unit: $XDG_RUNTIME_DIR/bus, no DBUS_SESSION_BUS_ADDRESS."""
    runtime = Path(tempfile.mkdtemp(prefix="chime-run-"))
    try:
        with private_bus(runtime / "bus") as address:
            monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
            monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
            server = NotificationServer(address)
            out = DesktopOutput(settings, None)
            try:
                assert out.send(Reminder(1, "t", "via the user bus", AT)) == "notification 1"
                assert server.wait_for(1)[0].body == "via the user bus"
            finally:
                out.close()
                server.close()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_dead_bus_address_is_a_clear_failure(settings: Settings, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    out = DesktopOutput(settings, None)
    with pytest.raises(OutputError, match=r"cannot connect to the session bus.*"
                                          "DBUS_SESSION_BUS_ADDRESS"):
        out.send(Reminder(1, "t", "m", AT))


def test_reconnects_after_the_bus_restarts(settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = DesktopOutput(settings, None)
    try:
        for round_ in range(2):  # a new login session: a new bus, the same daemon
            with private_bus() as address:
                monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
                srv = NotificationServer(address)
                try:
                    assert out.send(Reminder(1, "t", f"round {round_}", AT)) == "notification 1"
                    assert srv.wait_for(1)[0].body == f"round {round_}"
                finally:
                    srv.close()
    finally:
        out.close()


def test_a_server_that_never_answers_times_out(settings: Settings, bus: str) -> None:
    from jeepney.bus_messages import message_bus
    from jeepney.io.threading import DBusRouter, Proxy, open_dbus_connection

    conn = open_dbus_connection(bus=bus)  # owns the name, then never reads a message
    with DBusRouter(conn) as router:
        Proxy(message_bus, router, timeout=5).RequestName("org.freedesktop.Notifications")
    settings.desktop.timeout = timedelta(seconds=1)
    out = DesktopOutput(settings, None)
    try:
        with pytest.raises(OutputError, match="did not answer GetCapabilities within 1s"):
            out.send(Reminder(1, "t", "m", AT))
    finally:
        out.close()
        conn.close()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("urgency", "urgent", r"\[desktop\] urgency"),
    ("expire_ms", -5, r"\[desktop\] expire_ms"),
    ("timeout", timedelta(0), r"\[desktop\] timeout"),
])
def test_bad_settings_are_config_errors(settings: Settings, key: str, value: object,
                                        message: str) -> None:
    setattr(settings.desktop, key, value)
    with pytest.raises(ConfigError, match=message):
        DesktopOutput(settings, None)
