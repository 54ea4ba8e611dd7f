"""Can the system clock be trusted? Time-synchronisation status and clock-step detection.

A board without a battery-backed real-time clock (a Jetson Nano) boots with the last saved
time, or an old build date, and steps when NTP syncs — by minutes or days. Until the clock is
synchronised, the daemon delivers nothing late and marks nothing missed (``Service``); once it
runs, a step of the wall clock is noticed by comparing it with the monotonic clock, and the
daemon re-plans at once.

The clock counts as synchronised when the kernel says so (``adjtimex``: no ``STA_UNSYNC``, not
``TIME_ERROR``) or systemd-timesyncd has written ``/run/systemd/timesync/synchronized``. Under
the system unit's ``ProtectClock=yes`` the ``adjtimex`` call is refused, and the timesyncd flag
is what remains; ``[daemon] time_sync_flag`` names another file to wait for instead.
"""

from __future__ import annotations

import ctypes
import logging
import time
from datetime import datetime, timedelta
from pathlib import Path

from daemon.clock import Clock

log = logging.getLogger("daemon.timesync")

TIMESYNCD_FLAG = "/run/systemd/timesync/synchronized"
STA_UNSYNC = 0x0040
TIME_ERROR = 5
JUMP_TOLERANCE = timedelta(seconds=2)


class _Timex(ctypes.Structure):
    """The head of ``struct timex`` up to ``status`` (the kernel ignores the rest on read)."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("rest", ctypes.c_byte * 200)]


def kernel_synchronized() -> bool | None:
    """The kernel's view (``adjtimex`` with no modes: read only); None when not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:  # EPERM under a seccomp filter (ProtectClock=yes)
        return None
    return state != TIME_ERROR and not timex.status & STA_UNSYNC


def clock_synchronized(flag: str = "") -> bool:
    """Is the system clock synchronised? With ``flag`` set: does that file exist."""
    if flag:
        return Path(flag).exists()
    return bool(kernel_synchronized()) or Path(TIMESYNCD_FLAG).exists()


def has_rtc(root: Path = Path("/")) -> bool:
    """Does this machine keep time across power loss? A Jetson's RTC has no battery."""
    if (root / "etc/nv_tegra_release").exists():
        return False
    if (root / "dev/rtc0").exists():
        return True
    rtc = root / "sys/class/rtc"
    return rtc.is_dir() and any(rtc.iterdir())


def should_wait(setting: bool | None) -> bool:
    """``[daemon] wait_for_time_sync``: as set, or (unset) when the board has no RTC."""
    return has_rtc() is False if setting is None else setting


class TimeSync:
    """Whether the clock is trusted yet: waits for synchronisation, at most ``max_wait``."""

    def __init__(self, wait: bool, max_wait: timedelta, flag: str = "") -> None:
        self.flag = flag
        self.deadline = time.monotonic() + max_wait.total_seconds()
        self.state = "waiting" if wait and not clock_synchronized(flag) else "trusted"

    @property
    def trusted(self) -> bool:
        return self.state != "waiting"

    def check(self) -> bool:
        """True the first time the clock becomes trusted (synchronised, or waited long enough)."""
        if self.trusted:
            return False
        if clock_synchronized(self.flag):
            self.state = "synchronised"
            log.info("the system clock is synchronised; trusting it")
        elif time.monotonic() >= self.deadline:
            self.state = "unsynchronised"
            log.warning("the system clock is still not synchronised; trusting it anyway "
                        "([daemon] time_sync_max_wait passed)")
        return self.trusted


class JumpDetector:
    """Notices a step of the wall clock: wall time moving unlike the monotonic clock."""

    def __init__(self, clock: Clock, tolerance: timedelta = JUMP_TOLERANCE) -> None:
        self.clock = clock
        self.tolerance = tolerance
        self.wall, self.mono = clock.now(), time.monotonic()

    def check(self) -> tuple[datetime, timedelta] | None:
        """(wall time before the step, size of the step) if the clock stepped since last call."""
        wall, mono = self.clock.now(), time.monotonic()
        before = self.wall
        step = (wall - before) - timedelta(seconds=mono - self.mono)
        self.wall, self.mono = wall, mono
        if abs(step) <= self.tolerance:
            return None
        return before, step

