"""Test helpers for the guards: a fake sysfs tree, a jtop-shaped client, a scripted sensor."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from daemon.generation.guards import Readings

NANO_ZONES = [  # a Jetson Nano's zones: (type, °C, [(trip type, °C), …])
    ("AO-therm", 38.5, [("critical", 105.0)]),
    ("CPU-therm", 41.0, [("critical", 102.0), ("hot", 100.0), ("passive", 97.0)]),
    ("GPU-therm", 39.5, [("critical", 102.0), ("passive", 97.0)]),
    ("PLL-therm", 37.0, [("passive", 99.0)]),
    ("PMIC-Die", 100.0, [("critical", 120.0), ("passive", 110.0)]),  # always reads 100 °C
    ("thermal-fan-est", 40.0, [("active", 51.0), ("active", 61.0)]),
]


class FakeSysfs:
    """A ``/sys`` look-alike under a temporary folder: thermal zones with trip points, a GPU."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "class" / "thermal").mkdir(parents=True, exist_ok=True)
        self.count = 0

    def zone(self, index: int) -> Path:
        return self.root / "class" / "thermal" / f"thermal_zone{index}"

    def add_zone(self, kind: str, temp_c: float,
                 trips: list[tuple[str, float]] | None = None) -> int:
        index, self.count = self.count, self.count + 1
        path = self.zone(index)
        path.mkdir()
        (path / "type").write_text(kind + "\n")
        self.set_temp(index, temp_c)
        for n, (trip_kind, trip_c) in enumerate(trips or []):
            (path / f"trip_point_{n}_type").write_text(trip_kind + "\n")
            (path / f"trip_point_{n}_temp").write_text(f"{round(trip_c * 1000)}\n")
        return index

    def add_nano(self) -> FakeSysfs:
        for kind, temp_c, trips in NANO_ZONES:
            self.add_zone(kind, temp_c, trips)
        return self

    def set_temp(self, index: int, temp_c: float) -> None:
        self.write_raw(index, f"{round(temp_c * 1000)}\n")

    def write_raw(self, index: int, text: str) -> None:
        """Replace the temp file atomically, as the kernel's reads never see half a value."""
        tmp = self.zone(index) / "temp.tmp"
        tmp.write_text(text)
        tmp.replace(self.zone(index) / "temp")

    def add_gpu(self, load_permille: int, node: str = "57000000.gpu") -> None:
        device = self.root / "class" / "devfreq" / node / "device"
        (device / "of_node").mkdir(parents=True)
        (device / "of_node" / "name").write_text("gpu\n")
        (device / "load").write_text(f"{load_permille}\n")

    def set_temp_later(self, index: int, temp_c: float, after_s: float) -> threading.Thread:
        """Rewrite a zone's temperature from another thread after ``after_s`` seconds."""

        def run() -> None:
            time.sleep(after_s)
            self.set_temp(index, temp_c)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


class FakeJtop:
    """An object with the documented shapes of a started ``jtop.jtop`` client."""

    def __init__(self) -> None:
        self.temperature: dict[str, dict[str, Any]] = {
            "CPU": {"online": True, "temp": 45.5},
            "GPU": {"online": True, "temp": 43.0},
            "AO": {"online": False, "temp": -256},
            "thermal": {"online": True, "temp": 44.25},
        }
        self.memory: dict[str, dict[str, Any]] = {
            "RAM": {"tot": 4059712, "used": 1843200, "free": 1024000, "buffers": 102400,
                    "cached": 921600, "shared": 204800, "lfb": 64},
            "SWAP": {"tot": 2029852, "used": 512000, "cached": 1024, "table": {}},
        }
        self.gpu: dict[str, dict[str, Any]] = {
            "gpu": {"type": "integrated", "status": {"railgate": False, "load": 12.5},
                    "freq": {"governor": "nvhost_podgov", "cur": 76800}},
        }
        self.error: Exception | None = None
        self.closed = False

    def ok(self, spin: bool = False) -> bool:
        if self.error is not None:
            raise self.error
        return not self.closed

    def close(self) -> None:
        self.closed = True


class ScriptedSensor:
    """A sensor whose readings a test sets directly (for the RAM policies)."""

    name = "scripted"

    def __init__(self, readings: Readings, trip_c: float | None = None) -> None:
        self.readings = readings
        self.trip_c = trip_c
        self.reads = 0

    def read(self) -> Readings:
        self.reads += 1
        return self.readings

    def passive_trip_c(self) -> float | None:
        return self.trip_c

    def set(self, **changes: Any) -> None:
        self.readings = replace(self.readings, **changes)


class FakeTime:
    """A monotonic clock that only moves when slept on; ``on_sleep`` runs after each sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: Any = None

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.now)
