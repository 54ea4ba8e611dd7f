"""Guards around the generation worker: temperature and free RAM, read through jtop or sysfs/psutil.

The generation code sees only ``WorkerGuard``: ``admit`` before starting the worker (it may
wait and re-check until a deadline), ``check`` while the worker runs (about every second).
A decision that is not ok carries the reason, which is recorded on the occurrence.

Readings come from a ``Sensor``: ``JtopSensor`` (jetson-stats, on a Jetson with the jtop
service) or ``SysfsSensor`` (``/sys/class/thermal`` plus psutil, any Linux box). A reading that
fails is "unknown" (logged once) and never blocks: an unknown temperature or RAM figure admits
the worker, because the template text is the only thing a refusal could give instead.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psutil

if TYPE_CHECKING:
    from daemon.config import GuardSettings
    from daemon.store.db import Database

log = logging.getLogger("daemon.generation.guards")

DEFAULT_START_C = 75.0  # start limit when the board has no passive trip point
DEFAULT_ABORT_C = 85.0  # abort limit when the board has no passive trip point
DECISIONS_KEY = "guard_decisions"  # meta key holding the last decisions (JSON list)
PLAUSIBLE_C = (-40.0, 200.0)  # a zone outside this is offline (jtop's -256) or garbage
TRIP_RANGE_C = (30.0, 150.0)  # passive trips outside this are disabled (e.g. 0 on x86_pkg_temp)


@dataclass(frozen=True)
class GuardDecision:
    """The outcome of one guard check."""

    ok: bool
    reason: str = ""  # empty when ok
    readings: dict[str, Any] = field(default_factory=dict)


class WorkerGuard(Protocol):
    """What the generation worker's supervisor asks before and while it runs."""

    def admit(self, deadline: float) -> GuardDecision:
        """May the worker start? Waits and re-checks until ``deadline`` (time.monotonic())."""
        ...

    def check(self) -> GuardDecision:
        """May the running worker go on? Instant; called about every second."""
        ...


# --- readings and sensors -----------------------------------------------------------------------

@dataclass(frozen=True)
class Readings:
    """One look at the board. ``None`` or an empty ``temps_c`` means unknown."""

    source: str
    temps_c: dict[str, float] = field(default_factory=dict)
    ram_total_mb: int | None = None
    ram_available_mb: int | None = None
    swap_total_mb: int | None = None
    swap_used_mb: int | None = None
    gpu_load_pct: float | None = None

    def hottest(self) -> tuple[str, float] | None:
        """The hottest zone and its temperature, or None when no zone could be read."""
        if not self.temps_c:
            return None
        name = max(self.temps_c, key=lambda k: self.temps_c[k])
        return name, self.temps_c[name]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        hot = self.hottest()
        data["hottest"] = {"zone": hot[0], "temp_c": hot[1]} if hot else None
        return data


class Sensor(Protocol):
    """Reads temperatures and memory. ``read`` never raises: what fails is unknown."""

    name: str

    def read(self) -> Readings: ...

    def passive_trip_c(self) -> float | None:
        """The board's lowest passive trip point (where it starts throttling), if known."""
        ...


class _Once:
    """Says each distinct problem once, so a sensor read every second does not flood the log.

    With ``notes`` (``describe``: ``chime status`` and ``chime doctor``) the problems are
    collected there for the command to show, instead of logged.
    """

    def __init__(self, notes: list[str] | None = None) -> None:
        self.seen: set[str] = set()
        self.notes = notes

    def __call__(self, key: str, msg: str, *args: Any, level: int = logging.WARNING) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        if self.notes is None:
            log.log(level, msg, *args)
        elif level >= logging.WARNING:
            self.notes.append(msg % args)


def _ignored(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name.casefold(), p.casefold()) for p in patterns)


def _zone_number(path: Path) -> int:
    digits = re.sub(r"\D", "", path.name)
    return int(digits) if digits else -1


class SysfsSensor:
    """``<root>/class/thermal/thermal_zone*`` (m°C) for temperatures, psutil for memory.

    Zones whose type matches an ``ignore`` pattern are skipped (the Nano's ``PMIC-Die`` always
    reads 100 °C). The GPU load is read from devfreq where a GPU node exposes ``load`` (‰).
    """

    name = "sysfs"

    def __init__(self, root: str | Path = "/sys", ignore: Iterable[str] = (),
                 notes: list[str] | None = None) -> None:
        self.root = Path(root)
        self.ignore = tuple(ignore)
        self._once = _Once(notes)
        self._trip: float | None = None
        self._trip_read = False

    def _zones(self) -> list[tuple[str, Path]]:
        """(name, folder) of every zone not ignored, in zone order, names made unique."""
        base = self.root / "class" / "thermal"
        found: list[tuple[str, Path]] = []
        names: set[str] = set()
        for path in sorted(base.glob("thermal_zone*"), key=_zone_number):
            try:
                kind = (path / "type").read_text().strip() or path.name
            except (OSError, UnicodeDecodeError):
                kind = path.name
            if _ignored(kind, self.ignore):
                continue
            name = kind if kind not in names else f"{kind}#{_zone_number(path)}"
            names.add(name)
            found.append((name, path))
        return found

    def _temps(self) -> dict[str, float]:
        zones = self._zones()
        if not zones:
            self._once("nozones", "no thermal zones under %s: temperature unknown",
                       self.root / "class" / "thermal")
        temps: dict[str, float] = {}
        for name, path in zones:
            try:
                value = int((path / "temp").read_text().strip()) / 1000.0
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self._once(f"temp:{path}", "cannot read %s/temp (%s): zone %s unknown",
                           path, exc, name)
                continue
            if not PLAUSIBLE_C[0] < value < PLAUSIBLE_C[1]:
                self._once(f"range:{path}", "zone %s reads %.1f °C (offline?): ignored",
                           name, value)
                continue
            temps[name] = value
        return temps

    def _gpu_load(self) -> float | None:
        for load in sorted((self.root / "class" / "devfreq").glob("*/device/load")):
            node = load.parent / "of_node" / "name"
            try:
                label = node.read_text().strip() if node.exists() else load.parent.parent.name
                if "gpu" in label.lower() or "gpu" in load.parent.parent.name.lower():
                    return int(load.read_text().strip()) / 10.0
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self._once(f"gpu:{load}", "cannot read GPU load %s (%s)", load, exc)
        return None

    def read(self) -> Readings:
        ram: dict[str, int | None] = dict.fromkeys(
            ("ram_total_mb", "ram_available_mb", "swap_total_mb", "swap_used_mb"))
        try:
            vm, sw = psutil.virtual_memory(), psutil.swap_memory()
            ram.update(ram_total_mb=vm.total >> 20, ram_available_mb=vm.available >> 20,
                       swap_total_mb=sw.total >> 20, swap_used_mb=sw.used >> 20)
        except (OSError, RuntimeError) as exc:
            self._once("psutil", "cannot read memory through psutil (%s): RAM unknown", exc)
        return Readings(source=self.name, temps_c=self._temps(), gpu_load_pct=self._gpu_load(),
                        **ram)

    def passive_trip_c(self) -> float | None:
        if not self._trip_read:
            self._trip_read = True
            self._trip = min(self._passive_trips(), default=None)
        return self._trip

    def _passive_trips(self) -> list[float]:
        trips: list[float] = []
        for _, path in self._zones():
            for kind_file in path.glob("trip_point_*_type"):
                try:
                    if kind_file.read_text().strip() != "passive":
                        continue
                    temp_file = path / kind_file.name.replace("_type", "_temp")
                    value = int(temp_file.read_text().strip()) / 1000.0
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    self._once(f"trip:{kind_file}", "cannot read trip point %s (%s)",
                               kind_file, exc)
                    continue
                if TRIP_RANGE_C[0] <= value <= TRIP_RANGE_C[1]:
                    trips.append(value)
        return trips


class JtopSensor:
    """Reads a running jtop client (jetson-stats); any failure reads ``fallback`` instead.

    ``client`` is a started ``jtop.jtop`` (or anything with its attributes: ``ok(spin=True)``,
    ``temperature`` ``{name: {online, temp}}`` in °C with −256 offline, ``memory['RAM']`` and
    ``memory['SWAP']`` in KB, ``gpu`` ``{name: {status: {load}}}``). The passive trip point
    comes from the fallback's sysfs tree, which jtop does not expose.
    """

    name = "jtop"

    def __init__(self, client: Any, fallback: SysfsSensor) -> None:
        self.client = client
        self.fallback = fallback
        self._once = _Once(fallback._once.notes)

    @classmethod
    def connect(cls, fallback: SysfsSensor, interval: float = 1.0) -> JtopSensor:
        """Start a long-lived jtop client. Raises ImportError or ``jtop.JtopException``."""
        from jtop import jtop  # lazy: jetson-stats is the optional ``jetson`` extra

        client = jtop(interval=interval)
        try:
            client.start()
        except BaseException:
            client.close()
            raise
        return cls(client, fallback)

    def read(self) -> Readings:
        try:
            if not self.client.ok(spin=True):
                raise RuntimeError("the jtop client stopped")
            temps = {}
            for name, zone in self.client.temperature.items():
                value = float(zone["temp"])  # -256 when the zone is offline
                if (zone.get("online", True) and PLAUSIBLE_C[0] < value < PLAUSIBLE_C[1]
                        and not _ignored(str(name), self.fallback.ignore)):
                    temps[str(name)] = value
            ram, swap = self.client.memory["RAM"], self.client.memory["SWAP"]
            available_kb = int(ram["free"]) + int(ram["buffers"]) + int(ram["cached"])
            loads = [g["status"]["load"] for g in self.client.gpu.values()
                     if "load" in g.get("status", {})]
            return Readings(
                source=self.name, temps_c=temps,
                ram_total_mb=int(ram["tot"]) >> 10,
                ram_available_mb=available_kb >> 10,
                swap_total_mb=int(swap["tot"]) >> 10, swap_used_mb=int(swap["used"]) >> 10,
                gpu_load_pct=float(loads[0]) if loads else None,
            )
        except Exception as exc:  # jtop raises its own errors from its reader thread
            self._once("read", "jtop read failed (%s); reading sysfs and psutil instead",
                       str(exc).replace("\n", " "))
            return self.fallback.read()

    def passive_trip_c(self) -> float | None:
        return self.fallback.passive_trip_c()

    def close(self) -> None:
        self.client.close()


def make_sensor(settings: GuardSettings, notes: list[str] | None = None) -> Sensor:
    """jtop when enabled and its service answers, else sysfs + psutil (saying why, once:
    logged, or appended to ``notes`` when given)."""
    sysfs = SysfsSensor(settings.sysfs_root, settings.ignore_zones, notes)
    if not settings.use_jtop:
        return sysfs
    try:
        from jtop import JtopException
    except ImportError:
        log.debug("jetson-stats is not installed; reading sysfs and psutil")
        return sysfs
    try:
        return JtopSensor.connect(sysfs, settings.check_every.total_seconds())
    except JtopException as exc:
        sysfs._once("jtop", "jtop is not available: %s — reading sysfs and psutil instead "
                    "(or set [guards] use_jtop = false)", " ".join(str(exc).split()))
    except Exception as exc:  # a broken socket or service must not stop the daemon
        sysfs._once("jtop", "jtop failed to start (%s: %s); reading sysfs and psutil instead",
                    type(exc).__name__, exc)
    return sysfs


# --- policies ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """The resolved limits, and where the temperature limits came from."""

    start_c: float
    abort_c: float
    temp_from: str  # "config", "passive trip 97.0 °C" or "default"
    need_mb: int | None
    ram_start_mb: int  # available RAM needed to start: need + margin
    ram_floor_mb: int  # available RAM under which a running worker is stopped

    @classmethod
    def resolve(cls, s: GuardSettings, trip_c: float | None, need_mb: int | None) -> Limits:
        if trip_c is not None:
            start, abort = trip_c - s.start_margin, trip_c - s.abort_margin
            origin = f"passive trip {trip_c:.1f} °C"
        else:
            start, abort, origin = DEFAULT_START_C, DEFAULT_ABORT_C, "default"
        if s.start_temp is not None or s.abort_temp is not None:
            origin = "config" if None not in (s.start_temp, s.abort_temp) else f"config, {origin}"
        start = s.start_temp if s.start_temp is not None else start
        abort = max(s.abort_temp if s.abort_temp is not None else abort, start)
        return cls(start, abort, origin, need_mb, (need_mb or 0) + s.ram_margin_mb,
                   s.ram_floor_mb)


class Guard:
    """The policies: start only when cool and with RAM to spare; stop when hot or short of RAM.

    ``record`` receives every ``admit`` outcome and every ``check`` that stops the worker.
    """

    def __init__(
        self,
        settings: GuardSettings,
        need_mb: int | None,
        sensor: Sensor | None = None,
        record: Callable[[GuardDecision], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sensor = sensor if sensor is not None else make_sensor(settings)
        self.limits = Limits.resolve(settings, self.sensor.passive_trip_c(), need_mb)
        self.record = record
        self.sleep = sleep
        self.monotonic = monotonic

    def peek(self) -> GuardDecision:
        """Would the worker be admitted now? Instant, not recorded."""
        return self._start_decision(self.sensor.read())

    def admit(self, deadline: float) -> GuardDecision:
        began = self.monotonic()
        step = self.settings.wait_step.total_seconds()
        while True:
            decision = self._start_decision(self.sensor.read())
            now = self.monotonic()
            if decision.ok or now >= deadline:
                break
            log.info("waiting to start the model: %s", decision.reason)
            self.sleep(min(step, deadline - now))
        waited = round(now - began, 1)
        readings = {**decision.readings, "waited_s": waited}
        reason = decision.reason
        if not decision.ok:
            reason = f"{reason}; gave up after waiting {waited:.0f} s"
            log.warning("not starting the model: %s", reason)
        decision = GuardDecision(decision.ok, reason, readings)
        self._record(decision)
        return decision

    def check(self) -> GuardDecision:
        decision = self._running_decision(self.sensor.read())
        if not decision.ok:
            log.warning("stopping the model: %s", decision.reason)
            self._record(decision)
        return decision

    def _start_decision(self, r: Readings) -> GuardDecision:
        lim, hot = self.limits, r.hottest()
        readings = {"phase": "start", **r.as_dict()}
        if hot and hot[1] >= lim.start_c:
            return GuardDecision(False, f"too hot to start the model: {hot[0]} at {hot[1]:.1f} °C, "
                                 f"start limit {lim.start_c:.1f} °C", readings)
        if r.ram_available_mb is not None and r.ram_available_mb < lim.ram_start_mb:
            return GuardDecision(False, f"not enough free RAM to start the model: "
                                 f"{r.ram_available_mb} MB available, {lim.ram_start_mb} MB needed "
                                 f"(model {lim.need_mb or 0} MB + margin "
                                 f"{self.settings.ram_margin_mb} MB)", readings)
        return GuardDecision(True, "", readings)

    def _running_decision(self, r: Readings) -> GuardDecision:
        lim, hot = self.limits, r.hottest()
        readings = {"phase": "running", **r.as_dict()}
        if hot and hot[1] >= lim.abort_c:
            return GuardDecision(False, f"too hot to go on: {hot[0]} at {hot[1]:.1f} °C, "
                                 f"abort limit {lim.abort_c:.1f} °C", readings)
        if r.ram_available_mb is not None and r.ram_available_mb < lim.ram_floor_mb:
            return GuardDecision(False, f"free RAM fell to {r.ram_available_mb} MB, under the "
                                 f"floor of {lim.ram_floor_mb} MB", readings)
        return GuardDecision(True, "", readings)

    def _record(self, decision: GuardDecision) -> None:
        if self.record is None:
            return
        try:
            self.record(decision)
        except Exception as exc:  # recording is bookkeeping; it must not stop a reminder
            log.warning("cannot record the guard decision: %s", exc)


# --- history and status -----------------------------------------------------------------------

def decision_dict(decision: GuardDecision) -> dict[str, Any]:
    """A decision as JSON-ready data (for ``chime preview --json``'s ``guard`` object)."""
    return {"decision": "ok" if decision.ok else "refused", "ok": decision.ok,
            "reason": decision.reason, "readings": decision.readings}


class DecisionLog:
    """The last ``keep`` guard decisions, newest first, in the database's ``meta`` table."""

    def __init__(self, db: Database, keep: int = 20,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.db, self.keep, self.now = db, keep, now

    def record(self, decision: GuardDecision) -> None:
        from daemon.store import repo

        entry = {"at": self.now().isoformat(timespec="seconds"), **decision_dict(decision)}
        with self.db.session() as s:
            old = _parse(repo.get_meta(s, DECISIONS_KEY))
            repo.set_meta(s, DECISIONS_KEY, json.dumps([entry, *old][: self.keep],
                                                       ensure_ascii=False))

    def recent(self) -> list[dict[str, Any]]:
        from daemon.store import repo

        with self.db.session() as s:
            return _parse(repo.get_meta(s, DECISIONS_KEY))


def _parse(raw: str | None) -> list[dict[str, Any]]:
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        log.warning("the stored guard decisions are not valid JSON; starting afresh")
        return []
    return value if isinstance(value, list) else []


def describe(settings: GuardSettings, *, need_mb: int | None = None, db: Database | None = None,
             sensor: Sensor | None = None) -> dict[str, Any]:
    """Current readings, limits, whether a worker would start now, the last decisions, and
    ``notes``: what the machine lacks (no jtop, no thermal zones), for the command to show."""
    own = sensor is None
    notes: list[str] = []
    guard = Guard(settings, need_mb, sensor=sensor or make_sensor(settings, notes))
    try:
        now = guard.peek()
    finally:
        if own and isinstance(guard.sensor, JtopSensor):
            guard.sensor.close()
    return {
        "sensor": guard.sensor.name,
        "readings": {k: v for k, v in now.readings.items() if k != "phase"},
        "limits": asdict(guard.limits),
        "now": {"ok": now.ok, "reason": now.reason},
        "decisions": DecisionLog(db).recent() if db is not None else [],
        "notes": notes,
    }
