"""The long-running daemon: scheduler, change detection, heartbeat, sd_notify, signals.

The main thread owns the loop: every ``[daemon] poll`` it re-plans if the plan revision in
the database changed (the CLI bumps it on every change), pings the systemd watchdog only while
the scheduler's own heartbeat job keeps ticking, and handles SIGHUP (reload) and SIGTERM/SIGINT
(finish in-flight deliveries, then exit 0).

The clock: on a board without an RTC the daemon first waits for the clock to be synchronised
(``[daemon] wait_for_time_sync``, at most ``time_sync_max_wait``). Until then it delivers on
time what falls after its last heartbeat, but delivers nothing late and records nothing as
missed: the catch-up after downtime waits for a clock it can trust. A step of the wall clock
(seen against the monotonic clock) re-plans at once; after a forward step the jumped span goes
through the catch-up (late within the grace window, else missed), after a backward step the
periodic jobs are rescheduled from the new now and delivered rows stay delivered.

The watchdog proves real liveness: the heartbeat job must run in the scheduler's executor
*and* write its row to the database. If the scheduler stalls, or the database stays locked
(hold ``BEGIN EXCLUSIVE`` on it to see this), the ticks stop, the pings stop, and systemd
restarts the service after ``WatchdogSec``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any

from daemon import __version__
from daemon.app import App
from daemon.calendars import sync_due
from daemon.config import Settings, load_settings
from daemon.delivery import Courier, lookback_start
from daemon.errors import ChimeError, StoreError, StoreWriteError
from daemon.notify import Notifier
from daemon.reminders import AppActions
from daemon.scheduler import Planner
from daemon.store import repo
from daemon.timesync import JumpDetector, TimeSync, should_wait

log = logging.getLogger("daemon.service")

SETTLE = timedelta(seconds=30)  # a deliver job this late is the catch-up's to handle
REPLAN_EVERY = 60.0  # seconds: the horizon moves forward at least this often
ROW_EVERY = timedelta(minutes=15)  # the heartbeat row is rewritten at least this often (SD wear)


class Service:
    """One running daemon."""

    def __init__(self, settings: Settings, config: str | None = None, db: str | None = None):
        self.config_arg, self.db_arg = config, db
        self.app = App(settings)
        self.notifier = Notifier()
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.last_tick = time.monotonic()
        self.row: dict[str, Any] = {}
        self.row_written = 0.0
        self.beat = settings.daemon.heartbeat
        self.timesync = TimeSync(False, timedelta(0))
        self.actions = AppActions(self.app)  # the buttons' target; follows a reload
        self.courier = Courier(self.app, self.actions)
        self.planner = Planner(self.app, self.courier)

    # --- jobs that run inside the scheduler ------------------------------------------------

    def heartbeat(self) -> None:
        """Proves the scheduler runs jobs and the database takes its write lock, then ticks.

        The heartbeat row is written when the daemon's state changes (not merely its next
        reminders) and every ``ROW_EVERY``: an SD card should not take a write every few
        seconds. Deliveries kept in memory while
        the disk refused writes are recorded here, within seconds of it taking them again."""
        self.courier.record_kept()
        self.app.db.check_write_lock()  # a locked database stops the ticks (and the pings)
        upcoming = self.planner.upcoming(3)
        info = {
            "pid": os.getpid(),
            "version": __version__,
            "started": self.started.isoformat(),
            "clock": self.timesync.state,
            "every": int(ROW_EVERY.total_seconds()),
            "next": [{"event_id": s.event_id, "at": s.at.isoformat()} for s in upcoming],
        }
        due = time.monotonic() - self.row_written >= ROW_EVERY.total_seconds()
        changed = {k: v for k, v in info.items() if k != "next"} != self.row
        if changed or due:
            try:
                with self.app.db.session() as s:
                    repo.write_heartbeat(s, {**info, "at": self.app.clock.now().isoformat()})
                self.row = {k: v for k, v in info.items() if k != "next"}
                self.row_written = time.monotonic()
                self.app.db.note_write_ok()
            except StoreWriteError as exc:  # a full or failing disk: a restart would not help
                self.app.db.note_write_failure(exc)
        self.last_tick = time.monotonic()
        if upcoming:
            self.notifier.status(f"next reminder at {upcoming[0].at.astimezone().isoformat()}")
        else:
            self.notifier.status("no reminders planned")

    def maintenance(self) -> None:
        """Periodic: record what slipped past, refresh the context caches, sync calendars."""
        now = self.app.clock.now()
        grace = self.app.settings.daemon.grace
        if self.timesync.trusted:
            try:
                self.courier.catch_up(now - grace - timedelta(minutes=5), now - SETTLE,
                                      startup=False)
            except StoreError as exc:  # logged once per episode; tried again next minute
                self.app.db.note_write_failure(exc)
        try:
            self.app.context_source.refresh(now)
        except Exception:  # never let a cache refresh stop the maintenance job
            log.exception("refreshing the context failed")
        try:
            sync_due(self.app, now)
        except Exception:  # sync_due logs per subscription; this is the last line of defence
            log.exception("syncing calendars failed")

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        self.started = self.app.clock.now()
        self._signals()
        db = self.app.db  # opens and migrates: fails early with a clear message
        db.read_only_check()
        log.info("chime %s starting; database %s", __version__, db.path)
        with db.session() as s:
            heartbeat = repo.read_heartbeat(s)
            revision = repo.revision(s)
        daemon = self.app.settings.daemon
        self.timesync = TimeSync(should_wait(daemon.wait_for_time_sync), daemon.time_sync_max_wait,
                                 daemon.time_sync_flag)
        now = self.app.clock.now()
        self.lookback = lookback_start(now, heartbeat, daemon.grace)
        counts = {"late": 0, "missed": 0}
        retry_catch_up = False
        if self.timesync.trusted:
            try:
                counts = self.courier.catch_up(self.lookback, now, startup=True)
            except StoreError as exc:  # a failing disk: again in the scheduler, in a moment
                db.note_write_failure(exc)
                retry_catch_up = True
        else:
            last = datetime.fromisoformat(heartbeat["at"]) if heartbeat else now
            self.planner.hold_before = max(last, now)
            log.warning("waiting for the system clock to be synchronised (at most %s): until "
                        "then nothing is delivered late or recorded as missed",
                        daemon.time_sync_max_wait)
        self.planner.start()
        self.planner.replan()
        if retry_catch_up:
            self._catch_up(self.lookback, now)
        self._periodic()
        self.notifier.ready()
        log.info("ready: %d slot(s) planned; after downtime %d late, %d missed",
                 len(self.planner.slots), counts["late"], counts["missed"])
        planned = time.monotonic()
        jumps = JumpDetector(self.app.clock)
        while not self.stop.wait(self.app.settings.daemon.poll.total_seconds()):
            if self.reload.is_set():
                self.reload.clear()
                self._reload()
            try:
                force = self._clock_changed(jumps)
                with self.app.db.session() as s:
                    current = repo.revision(s)
                if force or current != revision or time.monotonic() - planned >= REPLAN_EVERY:
                    if current != revision:
                        log.info("schedule changed; re-planning")
                    revision, planned = current, time.monotonic()
                    self.planner.replan()
            except ChimeError as exc:
                log.error("%s", exc)
            if time.monotonic() - self.last_tick < 3 * self.beat.total_seconds():
                self.notifier.watchdog()
        log.info("stopping: finishing in-flight deliveries")
        self.notifier.stopping()
        self.planner.shutdown()
        self._record_before_exit()
        self.courier.close()
        self.app.generator.close()  # a warm model worker exits now, not after keep_warm
        return 0

    def _record_before_exit(self) -> None:
        """Give deliveries kept in memory a last few chances to be recorded."""
        for delay in (0.5, 1.0, 2.0):
            if not self.courier.record_kept():
                return
            time.sleep(delay)
        log.error("%d delivery(ies) could not be recorded (the database refuses writes); "
                  "a restart may send them again", self.courier.record_kept())

    def _periodic(self) -> None:
        """(Re)start the heartbeat and maintenance jobs, first run now."""
        self.beat = self.app.settings.daemon.heartbeat
        if self.notifier.watchdog_interval:
            self.beat = min(self.beat, timedelta(seconds=self.notifier.watchdog_interval))
        self.planner.every(self.beat, self.heartbeat, "heartbeat", executor="heartbeat")
        self.planner.every(timedelta(minutes=1), self.maintenance, "maintenance")

    def _clock_changed(self, jumps: JumpDetector) -> bool:
        """Handle a step of the wall clock and the clock becoming trusted; True to re-plan."""
        jumped = jumps.check()
        now = self.app.clock.now()
        if jumped:
            before, step = jumped
            log.warning("the system clock stepped %s by %s; re-planning",
                        "forward" if step > timedelta(0) else "backward",
                        timedelta(seconds=round(abs(step).total_seconds())))
            self.row = {}  # the heartbeat row is rewritten on the new clock
            try:
                self.planner.replan()
            finally:
                if step < timedelta(0):
                    self._periodic()  # interval jobs would otherwise wait out the step
            if step > timedelta(0) and self.timesync.trusted:
                self._catch_up(before - SETTLE, now)
        if self.timesync.check():
            self.planner.hold_before = None
            self._catch_up(self.lookback, now)
            return True
        return False

    def _catch_up(self, since: datetime, until: datetime) -> None:
        """Run the catch-up for [since, until) now, in the maintenance executor."""
        self.planner.scheduler.add_job(self._run_catch_up, args=[since, until],
                                       executor="maintenance", misfire_grace_time=None)

    def _run_catch_up(self, since: datetime, until: datetime) -> None:
        try:
            self.courier.catch_up(since, until, startup=True)
        except StoreError as exc:  # slots within the grace window stay for the next minute
            self.app.db.note_write_failure(exc)

    def _reload(self) -> None:
        self.notifier.reloading()
        try:
            settings = load_settings(self.config_arg, self.db_arg)
        except ChimeError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            self.notifier.ready()
            return
        old = self.app.settings
        self.app.close(keep_db=True)  # a warm model worker: the [model] settings may change
        same_db = settings.db_path == self.app.db.path
        new_app = App(settings, self.app.clock, db=self.app.db if same_db else None)
        self.app = self.planner.app = self.actions.app = new_app
        self.courier.rebind(new_app)  # unchanged outputs stay: their buttons keep working
        logging.getLogger().setLevel(settings.daemon.log_level)
        self._periodic()  # [daemon] heartbeat; poll is read on every turn of the loop
        for line in restart_needed(old, settings):
            log.warning("reloaded, but %s", line)
        log.info("configuration reloaded")
        self.planner.replan(everything=True)  # [daemon] lead, grace, horizon, timezone…
        self.notifier.ready()

    def _signals(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self.reload.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)


# Read once at start-up (the clock's trust is decided then); [web] is read by `chime web`.
RESTART_KEYS = {("daemon", "wait_for_time_sync"), ("daemon", "time_sync_max_wait"),
                ("daemon", "time_sync_flag")}


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """What a reload cannot apply, one line per changed key: ``[section] key: who restarts``."""
    lines = []
    for section in dataclasses.fields(Settings):
        before, after = getattr(old, section.name), getattr(new, section.name)
        if not dataclasses.is_dataclass(before) or before == after:
            continue
        for key in dataclasses.fields(before):
            if getattr(before, key.name) == getattr(after, key.name):
                continue
            if section.name == "web":
                lines.append(f"[web] {key.name}: restart chime web to apply it")
            elif (section.name, key.name) in RESTART_KEYS:
                lines.append(f"[{section.name}] {key.name}: restart chime to apply it")
    return lines


def alive(heartbeat: dict | None, interval: timedelta, now: datetime | None = None) -> bool:  # type: ignore[type-arg]
    """Is the daemon that wrote this heartbeat still running? It rewrites the row every
    ``every`` seconds (recorded in it) or, for an older daemon, every ``interval``."""
    if not heartbeat:
        return False
    now = now or datetime.now(timezone.utc)
    age = now - datetime.fromisoformat(heartbeat["at"])
    every = timedelta(seconds=heartbeat["every"]) if "every" in heartbeat else 3 * interval
    if age > every + interval + timedelta(seconds=5):
        return False
    try:
        os.kill(int(heartbeat["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, KeyError):
        pass
    return True
