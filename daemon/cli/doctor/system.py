"""Doctor checks for the rest: Python, sensors, clock, outputs, database, daemon, weather."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import date, datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path

from daemon.cli.doctor.report import ERROR, OK, WARNING, Check, Doctor
from daemon.errors import ChimeError

CLOCK_FLOOR = datetime(2025, 1, 1, tzinfo=timezone.utc)
TIME_ERROR = 5  # adjtimex(): the kernel says the clock is not synchronized


def check_python(doc: Doctor) -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    missing, found = [], {}
    for req in metadata.requires("chime-reminder") or []:
        if "extra ==" in req:
            continue
        name = req.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if ";" not in req:  # environment markers (tomli on 3.10) may exclude it
                missing.append(name)
    chime = metadata.version("chime-reminder")
    if missing:
        return Check("python", ERROR, f"Python {version}; missing: {', '.join(missing)}",
                     "pip install --force-reinstall chime-reminder", found)
    return Check("python", OK, f"Python {version}, chime {chime}, {len(found)} packages",
                 data=found)


# --- the board --------------------------------------------------------------------------

def check_sensors(doc: Doctor) -> Check:
    from daemon.generation import guards

    assert doc.settings is not None
    from daemon.generation.supervisor import memory_need_mb

    info = guards.describe(doc.settings.guards, need_mb=memory_need_mb(doc.settings))
    temps = info["readings"].get("temps_c") or {}
    data = {**info["readings"], "notes": info["notes"]}
    zones = f"{len(temps)} thermal zone(s)"
    if info["sensor"] == "jtop":
        return Check("sensors", OK, f"jtop, {zones}", data=data)
    fix = ("on a Jetson: sudo pip3 install -U jetson-stats && sudo systemctl restart jtop; "
           "in Docker: -v /run/jtop.sock:/run/jtop.sock --group-add <jtop gid>")
    if temps:
        return Check("sensors", WARNING, f"no jtop; sysfs {zones}, hottest "
                     f"{max(temps.values()):.0f} °C", fix, data)
    return Check("sensors", WARNING, "no jtop and no thermal zones: the temperature guard "
                 "is off (the RAM guard still works)", fix, data)


def check_clock(doc: Doctor) -> Check:
    now = datetime.now(timezone.utc)
    floor = max(CLOCK_FLOOR, datetime.fromtimestamp(Path(__file__).stat().st_mtime,
                                                    timezone.utc))
    if now < floor:
        return Check("clock", ERROR, f"the clock says {now:%Y-%m-%d %H:%M} UTC, before this "
                     f"install ({floor:%Y-%m-%d})",
                     "set the time: sudo timedatectl set-ntp true (needs the network)")
    state = adjtimex_state()
    if state is None:
        return Check("clock", WARNING, f"{now:%Y-%m-%d %H:%M} UTC; sync state unknown",
                     "check with: timedatectl")
    if state == TIME_ERROR:
        return Check("clock", WARNING, f"{now:%Y-%m-%d %H:%M} UTC, not synchronized (NTP)",
                     "sudo timedatectl set-ntp true; on a board without an RTC battery, "
                     "reminders wait for the network time")
    return Check("clock", OK, f"{now:%Y-%m-%d %H:%M} UTC, synchronized")


def adjtimex_state() -> int | None:
    """The kernel's clock state from a read-only adjtimex(2), or None if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex with modes = 0: read only
        state = libc.adjtimex(timex)
    except (OSError, AttributeError):
        return None
    return None if state < 0 else int(state)


# --- outputs ----------------------------------------------------------------------------

def check_desktop(doc: Doctor) -> Check:
    status = doc.needed("desktop")
    hint = ("run chime as a user unit (chime service install --user) inside the desktop "
            "session")
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return Check("desktop", status, "no session D-Bus (DBUS_SESSION_BUS_ADDRESS unset)", hint)
    try:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg
    except ImportError:
        return Check("desktop", status, "jeepney is not installed",
                     "pip install 'chime-reminder[desktop]'")
    address = DBusAddress("/org/freedesktop/Notifications", "org.freedesktop.Notifications",
                          "org.freedesktop.Notifications")
    try:
        with open_dbus_connection(bus="SESSION") as conn:
            reply = conn.send_and_get_reply(new_method_call(address, "GetServerInformation"),
                                            timeout=5)
            name, vendor, version, _spec = unwrap_msg(reply)
    except DBusErrorResponse as exc:
        return Check("desktop", status, f"no notification server on the session bus ({exc.name})",
                     "start a notification daemon (dunst, mako, the desktop's own)")
    except (OSError, TimeoutError, ValueError) as exc:
        return Check("desktop", status, f"cannot reach the session bus: {exc}", hint)
    return Check("desktop", OK, f"notification server {name} {version} ({vendor})")


def check_speaker(doc: Doctor) -> Check:
    from daemon.outputs.speaker import SpeakerOutput, wav_seconds

    assert doc.settings is not None
    status = doc.needed("speaker")
    conf = doc.settings.speaker
    try:
        speaker = SpeakerOutput(doc.settings)
        with tempfile.TemporaryDirectory(prefix="chime-doctor-") as folder:
            wav = Path(folder) / "test.wav"
            speaker.synthesize("提醒测试", wav)
            seconds = wav_seconds(wav)
    except ChimeError as exc:
        return Check("speaker", status, str(exc),
                     "apt install espeak-ng, or set [speaker] engine/voice")
    player = shutil.which(conf.player)
    if player is None:
        return Check("speaker", status, f"{speaker.engine_label} works, but {conf.player} is "
                     "missing", "apt install alsa-utils (aplay) or pulseaudio-utils (paplay)")
    if Path(player).name == "aplay":
        cards = subprocess.run([player, "-l"], capture_output=True, text=True, timeout=10)
        if "no soundcards found" in cards.stderr + cards.stdout:
            return Check("speaker", status, f"{speaker.engine_label} works; no sound card",
                         "plug in a speaker; in Docker: --device /dev/snd --group-add audio")
    return Check("speaker", OK, f"{speaker.engine_label} ({seconds:.1f} s test phrase), "
                 f"player {player}")


def check_ntfy(doc: Doctor) -> Check:
    from daemon.http import FetchPolicy, request
    from daemon.http_client import Client
    from daemon.outputs.ntfy import NtfyOutput

    assert doc.settings is not None
    status, conf, web = doc.needed("ntfy"), doc.settings.ntfy, doc.settings.web
    if not conf.topic and "ntfy" not in doc.outputs:
        return Check("ntfy", OK, "not used (phone push: set [ntfy] topic, add --output ntfy)")
    try:
        output = NtfyOutput(doc.settings)
    except ChimeError as exc:
        return Check("ntfy", status, str(exc), "see docs/outputs.md (ntfy)")
    output.close()
    policy = FetchPolicy(connect_timeout=3, read_timeout=5, retries=0, total_timeout=10)
    try:  # ntfy's health endpoint: publishes nothing
        with Client() as client:
            request(client, output.url + "v1/health", policy=policy)
    except ChimeError as exc:
        return Check("ntfy", status, f"server unreachable: {exc}",
                     "check [ntfy] url and the network; pushes fail until it answers")
    if not web.public_url:
        return Check("ntfy", WARNING, f"{output.host} reachable; no 完成/稍后提醒 buttons on the "
                     "phone: [web] public_url is not set",
                     "set [web] public_url to the address your phone reaches `chime web` at "
                     "(e.g. http://192.168.1.5:8765) and run chime web")
    return Check("ntfy", OK, f"{output.host} reachable; buttons call {web.public_url}")


# --- data and network -------------------------------------------------------------------

def check_database(doc: Doctor) -> Check:
    from daemon.store.db import SCHEMA_VERSION

    assert doc.settings is not None
    path = doc.settings.db_path
    if not path.exists():
        parent = next(p for p in [path.parent, *path.parents] if p.exists())
        if os.access(parent, os.W_OK | os.X_OK):
            return Check("database", OK, f"{path} will be created at the first start")
        return Check("database", ERROR, f"cannot create {path} ({parent} is not writable)",
                     "choose another place with --db or [daemon] db")
    if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        return Check("database", ERROR, f"{path} is not writable by this user",
                     f"run as its owner, or: sudo chown -R $USER {path.parent}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
    version = int(row[0]) if row else 0
    if check != "ok":
        return Check("database", ERROR, f"{path} is damaged: {check}",
                     "restore a backup (the daemon keeps none); chime will not repair it")
    if version > SCHEMA_VERSION:
        return Check("database", ERROR, f"schema {version} is newer than this chime "
                     f"({SCHEMA_VERSION})", "upgrade chime")
    if version < SCHEMA_VERSION:
        return Check("database", WARNING, f"schema {version}, migrates to {SCHEMA_VERSION} at "
                     "the next start", "chime run (or restart the service)")
    return Check("database", OK, f"{path} writable, schema {version} current")


def check_daemon(doc: Doctor) -> Check:
    from daemon.service import alive

    assert doc.settings is not None
    path = doc.settings.db_path
    beat = None
    if path.exists():
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='heartbeat'").fetchone()
        beat = json.loads(row[0]) if row else None
    if alive(beat, doc.settings.daemon.heartbeat):
        assert beat is not None
        return Check("daemon", OK, f"running (pid {beat['pid']}), heartbeat {beat['at']}")
    return Check("daemon", WARNING, "not running" + (f" (last heartbeat {beat['at']})"
                                                     if beat else ""),
                 "sudo systemctl enable --now chime (or: chime run)")


def check_weather(doc: Doctor) -> Check:
    from daemon.context.weather import OpenMeteo
    from daemon.http import FetchPolicy
    from daemon.http_client import Client

    s = doc.settings
    assert s is not None
    policy = FetchPolicy(connect_timeout=3, read_timeout=5, retries=0, total_timeout=10)
    with Client() as http:
        client = OpenMeteo(http, policy, base_url=s.weather.base_url, forecast_days=1)
        try:
            client.forecast(0.0, 0.0)  # reachability only: never the user's location
        except ChimeError as exc:
            return Check("weather", WARNING, f"forecast endpoint unreachable: {exc}",
                         "offline is fine: the last forecast is used, else no weather word")
    if s.location.latitude is None:
        return Check("weather", WARNING, "endpoint reachable, but no location is set",
                     "set [location] latitude and longitude")
    return Check("weather", OK, "forecast endpoint reachable; location set (redacted)")


def check_workdays(doc: Doctor) -> Check:
    """Whether ``--every workdays`` knows the official calendar for the coming months."""
    from daemon.context.workdays import OfficialWorkdays
    from daemon.store.db import Database

    s = doc.settings
    assert s is not None
    today = date.today()
    years = {today.year, (today + timedelta(days=90)).year}
    db = Database(s.db_path) if s.days.holiday_feed and s.db_path.is_file() else None
    try:
        workdays = OfficialWorkdays.from_settings(s.days, db, lambda: today)
        note = workdays.fallback_note(years)
    finally:
        if db is not None:
            db.close()
    if note:
        return Check("workdays", WARNING, note,
                     "set [days] holiday_feed to an ICS calendar of the official holidays, "
                     "or upgrade chinese-calendar once it has the new year")
    listed = "–".join(map(str, sorted(years)))
    return Check("workdays", OK, f"official {s.days.country} calendar known for {listed}")
