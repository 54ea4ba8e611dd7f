"""Guards: sensors (fake sysfs tree, jtop-shaped client, the real JtopException) and policies."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from daemon.config import GuardSettings, load_settings
from daemon.errors import ConfigError, StoreError
from daemon.generation.guards import (
    DECISIONS_KEY,
    DecisionLog,
    Guard,
    GuardDecision,
    JtopSensor,
    Readings,
    SysfsSensor,
    decision_dict,
    describe,
    make_sensor,
)
from daemon.store import repo
from daemon.store.db import Database
from tests.guard_fixtures import FakeJtop, FakeSysfs, FakeTime, ScriptedSensor

CPU = 1  # index of CPU-therm in the Nano tree


@pytest.fixture
def sysfs(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path / "sys")


@pytest.fixture
def nano(sysfs: FakeSysfs) -> FakeSysfs:
    return sysfs.add_nano()


def guard_settings(sysfs: FakeSysfs, **changes: object) -> GuardSettings:
    settings = GuardSettings(use_jtop=False, sysfs_root=str(sysfs.root))
    for key, value in changes.items():
        setattr(settings, key, value)
    return settings


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records
               if r.name == "daemon.generation.guards" and r.levelno >= logging.WARNING and text in r.message)


# --- sysfs ------------------------------------------------------------------------------------

def test_sysfs_reads_a_nano_tree_and_skips_the_pmic(nano: FakeSysfs) -> None:
    sensor = SysfsSensor(nano.root, ignore=["PMIC*"])
    readings = sensor.read()
    assert readings.source == "sysfs"
    assert readings.temps_c == {"AO-therm": 38.5, "CPU-therm": 41.0, "GPU-therm": 39.5,
                                "PLL-therm": 37.0, "thermal-fan-est": 40.0}
    assert readings.hottest() == ("CPU-therm", 41.0)
    assert sensor.passive_trip_c() == 97.0  # the lowest passive trip; PMIC's 110 is ignored


def test_sysfs_without_ignore_patterns_sees_the_pmic(nano: FakeSysfs) -> None:
    readings = SysfsSensor(nano.root).read()
    assert readings.hottest() == ("PMIC-Die", 100.0)


def test_sysfs_memory_comes_from_psutil(nano: FakeSysfs) -> None:
    readings = SysfsSensor(nano.root).read()
    assert readings.ram_total_mb == psutil.virtual_memory().total >> 20
    assert readings.ram_available_mb is not None
    assert 0 < readings.ram_available_mb <= readings.ram_total_mb
    assert readings.swap_total_mb == psutil.swap_memory().total >> 20


def test_sysfs_reads_the_gpu_load(nano: FakeSysfs) -> None:
    assert SysfsSensor(nano.root).read().gpu_load_pct is None
    nano.add_gpu(125)
    assert SysfsSensor(nano.root).read().gpu_load_pct == 12.5


def test_sysfs_hot_and_cool(nano: FakeSysfs) -> None:
    sensor = SysfsSensor(nano.root, ignore=["PMIC*"])
    nano.set_temp(CPU, 88.25)
    assert sensor.read().hottest() == ("CPU-therm", 88.25)
    nano.set_temp(CPU, 30.0)
    assert sensor.read().hottest() == ("thermal-fan-est", 40.0)


def test_missing_thermal_folder_is_unknown_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sensor = SysfsSensor(tmp_path / "nothing-here")
    for _ in range(3):
        readings = sensor.read()
        assert readings.temps_c == {}
        assert readings.hottest() is None
        assert readings.ram_available_mb is not None  # memory still read
    assert sensor.passive_trip_c() is None
    assert warnings_about(caplog, "no thermal zones") == 1


def test_garbage_missing_and_offline_zones_are_skipped_and_logged_once(
    sysfs: FakeSysfs, caplog: pytest.LogCaptureFixture
) -> None:
    good = sysfs.add_zone("CPU-therm", 50.0)
    garbage = sysfs.add_zone("GPU-therm", 0.0)
    sysfs.write_raw(garbage, "not a number\n")
    missing = sysfs.add_zone("PLL-therm", 0.0)
    (sysfs.zone(missing) / "temp").unlink()
    offline = sysfs.add_zone("AO-therm", 0.0)
    sysfs.write_raw(offline, "-256000\n")
    empty = sysfs.add_zone("Tboard", 0.0)
    sysfs.write_raw(empty, "")
    sensor = SysfsSensor(sysfs.root)
    for _ in range(3):
        assert sensor.read().temps_c == {"CPU-therm": 50.0}
    assert warnings_about(caplog, "thermal_zone1/temp") == 1
    assert warnings_about(caplog, "thermal_zone2/temp") == 1
    assert warnings_about(caplog, "AO-therm reads -256.0") == 1
    assert warnings_about(caplog, "thermal_zone4/temp") == 1
    sysfs.set_temp(garbage, 61.0)  # the zone recovers
    assert sensor.read().temps_c == {"CPU-therm": 50.0, "GPU-therm": 61.0}
    assert good == 0


def test_disabled_and_garbage_trip_points_are_ignored(sysfs: FakeSysfs) -> None:
    sysfs.add_zone("x86_pkg_temp", 45.0, [("passive", 0.0)])  # disabled, as on many laptops
    bad = sysfs.add_zone("acpitz", 40.0, [("passive", 90.0), ("critical", 105.0)])
    (sysfs.zone(bad) / "trip_point_0_temp").write_text("garbage\n")
    assert SysfsSensor(sysfs.root).passive_trip_c() is None
    sysfs.add_zone("soc_thermal", 40.0, [("passive", 88.5), ("active", 60.0)])
    assert SysfsSensor(sysfs.root).passive_trip_c() == 88.5


def test_zones_of_the_same_type_get_distinct_names(sysfs: FakeSysfs) -> None:
    sysfs.add_zone("acpitz", 40.0)
    sysfs.add_zone("acpitz", 52.0)
    assert SysfsSensor(sysfs.root).read().temps_c == {"acpitz": 40.0, "acpitz#1": 52.0}


# --- jtop ---------------------------------------------------------------------------------------

def test_jtop_sensor_reads_jtop_shapes(nano: FakeSysfs) -> None:
    client = FakeJtop()
    sensor = JtopSensor(client, SysfsSensor(nano.root, ["PMIC*"]))
    readings = sensor.read()
    assert readings.source == "jtop"
    assert readings.temps_c == {"CPU": 45.5, "GPU": 43.0, "thermal": 44.25}  # AO offline
    assert readings.ram_total_mb == 4059712 >> 10
    assert readings.ram_available_mb == (1024000 + 102400 + 921600) >> 10
    assert (readings.swap_total_mb, readings.swap_used_mb) == (2029852 >> 10, 512000 >> 10)
    assert readings.gpu_load_pct == 12.5
    assert sensor.passive_trip_c() == 97.0  # from the board's sysfs
    client.temperature["PMIC"] = {"online": True, "temp": 100.0}
    assert "PMIC" not in sensor.read().temps_c
    sensor.close()
    assert client.closed


def test_jtop_failure_falls_back_to_sysfs_logged_once(
    nano: FakeSysfs, caplog: pytest.LogCaptureFixture
) -> None:
    from jtop import JtopException

    client = FakeJtop()
    client.error = JtopException("Lost connection with jtop server")
    sensor = JtopSensor(client, SysfsSensor(nano.root, ["PMIC*"]))
    for _ in range(3):
        readings = sensor.read()
        assert readings.source == "sysfs"
        assert readings.hottest() == ("CPU-therm", 41.0)
    assert warnings_about(caplog, "Lost connection with jtop server") == 1


def test_garbled_jtop_data_falls_back(nano: FakeSysfs) -> None:
    client = FakeJtop()
    del client.memory["RAM"]
    assert JtopSensor(client, SysfsSensor(nano.root)).read().source == "sysfs"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jtop's own use of distro
def test_real_jtop_without_its_service_falls_back_to_sysfs(
    nano: FakeSysfs, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("jtop")
    settings = guard_settings(nano, use_jtop=True)
    sensor = make_sensor(settings)
    assert isinstance(sensor, SysfsSensor)
    for _ in range(3):
        assert sensor.read().hottest() == ("CPU-therm", 41.0)
    assert warnings_about(caplog, "jtop is not available") == 1
    message = next(r.message for r in caplog.records if "jtop is not available" in r.message)
    assert "sudo jtop --install-service" in message and "use_jtop = false" in message
    guard = Guard(settings, need_mb=100, sensor=sensor)
    assert guard.limits.start_c == 77.0


def test_no_jtop_when_disabled_or_not_installed(
    nano: FakeSysfs, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(make_sensor(guard_settings(nano, use_jtop=False)), SysfsSensor)
    monkeypatch.setitem(sys.modules, "jtop", None)  # as if jetson-stats were not installed
    assert isinstance(make_sensor(guard_settings(nano, use_jtop=True)), SysfsSensor)
    assert warnings_about(caplog, "jtop") == 0


# --- limits ---------------------------------------------------------------------------------------

def test_limits_from_the_passive_trip_point(nano: FakeSysfs) -> None:
    guard = Guard(guard_settings(nano), need_mb=2300)
    lim = guard.limits
    assert (lim.start_c, lim.abort_c) == (77.0, 92.0)
    assert lim.temp_from == "passive trip 97.0 °C"
    assert (lim.ram_start_mb, lim.ram_floor_mb) == (2600, 200)


def test_limits_default_without_a_trip_point(sysfs: FakeSysfs) -> None:
    sysfs.add_zone("acpitz", 40.0, [("critical", 105.0)])
    lim = Guard(guard_settings(sysfs), need_mb=None).limits
    assert (lim.start_c, lim.abort_c, lim.temp_from) == (75.0, 85.0, "default")
    assert lim.ram_start_mb == 300  # unknown need: the margin alone


def test_limits_from_config(nano: FakeSysfs) -> None:
    lim = Guard(guard_settings(nano, start_temp=60.0, abort_temp=70.0), need_mb=0).limits
    assert (lim.start_c, lim.abort_c, lim.temp_from) == (60.0, 70.0, "config")
    lim = Guard(guard_settings(nano, start_temp=95.0), need_mb=0).limits
    assert (lim.start_c, lim.abort_c) == (95.0, 95.0)  # abort never below start
    assert lim.temp_from == "config, passive trip 97.0 °C"


# --- admit ----------------------------------------------------------------------------------------

def test_admit_when_cool_and_roomy(nano: FakeSysfs) -> None:
    recorded: list[GuardDecision] = []
    guard = Guard(guard_settings(nano), need_mb=10, record=recorded.append)
    decision = guard.admit(time.monotonic() + 60)
    assert decision.ok and decision.reason == ""
    assert decision.readings["phase"] == "start"
    assert decision.readings["hottest"] == {"zone": "CPU-therm", "temp_c": 41.0}
    assert decision.readings["waited_s"] < 1
    assert recorded == [decision]


def test_admit_waits_until_a_zone_cools(nano: FakeSysfs) -> None:
    nano.set_temp(CPU, 80.0)  # above the start limit of 77 °C
    recorded: list[GuardDecision] = []
    guard = Guard(guard_settings(nano, wait_step=timedelta(seconds=0.05)), need_mb=10,
                  record=recorded.append)
    cooler = nano.set_temp_later(CPU, 60.0, after_s=0.3)
    began = time.monotonic()
    decision = guard.admit(began + 30)
    cooler.join()
    assert decision.ok, decision.reason
    assert decision.readings["temps_c"]["CPU-therm"] == 60.0
    assert 0.25 <= decision.readings["waited_s"] <= time.monotonic() - began + 0.1
    assert [d.ok for d in recorded] == [True]  # the waiting steps are not recorded


def test_admit_gives_up_at_the_deadline(nano: FakeSysfs) -> None:
    nano.set_temp(CPU, 80.0)
    clock = FakeTime()
    recorded: list[GuardDecision] = []
    guard = Guard(guard_settings(nano), need_mb=10, record=recorded.append,
                  sleep=clock.sleep, monotonic=clock.monotonic)
    decision = guard.admit(clock.now + 35)
    assert clock.sleeps == [10, 10, 10, 5]  # steps of wait_step, the last one cut short
    assert not decision.ok
    assert decision.reason == ("too hot to start the model: CPU-therm at 80.0 °C, "
                               "start limit 77.0 °C; gave up after waiting 35 s")
    assert decision.readings["waited_s"] == 35
    assert recorded == [decision]


def test_admit_cools_down_in_virtual_time(nano: FakeSysfs) -> None:
    nano.set_temp(CPU, 80.0)
    clock = FakeTime()
    began = clock.now
    clock.on_sleep = lambda now: nano.set_temp(CPU, 70.0) if now - began >= 20 else None
    guard = Guard(guard_settings(nano), need_mb=10, sleep=clock.sleep, monotonic=clock.monotonic)
    decision = guard.admit(clock.now + 300)
    assert decision.ok
    assert decision.readings["waited_s"] == 20


def test_admit_refuses_without_ram(nano: FakeSysfs) -> None:
    sensor = ScriptedSensor(Readings("scripted", {"CPU": 40.0}, ram_total_mb=3964,
                                     ram_available_mb=1000))
    guard = Guard(guard_settings(nano), need_mb=900, sensor=sensor)
    decision = guard.admit(0.0)  # the deadline has passed: one look, no waiting
    assert sensor.reads == 1
    assert not decision.ok
    assert decision.reason.startswith(
        "not enough free RAM to start the model: 1000 MB available, 1200 MB needed "
        "(model 900 MB + margin 300 MB)")
    sensor.set(ram_available_mb=1200)
    assert guard.admit(0.0).ok


def test_unknown_readings_never_block(tmp_path: Path) -> None:
    sensor = ScriptedSensor(Readings("scripted"))
    guard = Guard(GuardSettings(sysfs_root=str(tmp_path)), need_mb=10**6, sensor=sensor)
    assert guard.admit(0.0).ok
    assert guard.check().ok


def test_a_failing_record_does_not_stop_the_guard(
    nano: FakeSysfs, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: GuardDecision) -> None:
        raise StoreError("database is locked")

    guard = Guard(guard_settings(nano), need_mb=10, record=broken)
    assert guard.admit(0.0).ok
    assert warnings_about(caplog, "database is locked") == 1


# --- check ----------------------------------------------------------------------------------------

def test_check_trips_on_the_abort_temperature(nano: FakeSysfs) -> None:
    recorded: list[GuardDecision] = []
    guard = Guard(guard_settings(nano), need_mb=10, record=recorded.append)
    nano.set_temp(CPU, 91.9)
    assert guard.check().ok
    nano.set_temp(CPU, 92.0)
    decision = guard.check()
    assert not decision.ok
    assert decision.reason == "too hot to go on: CPU-therm at 92.0 °C, abort limit 92.0 °C"
    assert decision.readings["phase"] == "running"
    assert recorded == [decision]  # only the stop is recorded


def test_check_trips_on_the_ram_floor(nano: FakeSysfs) -> None:
    sensor = ScriptedSensor(Readings("scripted", {"CPU": 50.0}, ram_available_mb=250))
    guard = Guard(guard_settings(nano, ram_floor_mb=200), need_mb=10, sensor=sensor)
    assert guard.check().ok
    sensor.set(ram_available_mb=199)
    decision = guard.check()
    assert not decision.ok
    assert decision.reason == "free RAM fell to 199 MB, under the floor of 200 MB"


def test_check_is_instant(nano: FakeSysfs) -> None:
    clock = FakeTime()
    nano.set_temp(CPU, 95.0)
    guard = Guard(guard_settings(nano), need_mb=10, sleep=clock.sleep, monotonic=clock.monotonic)
    assert not guard.check().ok
    assert clock.sleeps == []


# --- history and describe -------------------------------------------------------------------------

def test_decision_log_keeps_the_newest(db_path: Path) -> None:
    db = Database(db_path)
    log = DecisionLog(db, keep=5)
    for n in range(8):
        log.record(GuardDecision(n % 2 == 0, "" if n % 2 == 0 else f"reason {n}", {"n": n}))
    recent = log.recent()
    assert [d["readings"]["n"] for d in recent] == [7, 6, 5, 4, 3]
    assert recent[0]["decision"] == "refused" and recent[0]["reason"] == "reason 7"
    assert recent[1]["decision"] == "ok" and recent[1]["ok"] is True
    assert "at" in recent[0]
    db.close()


def test_decision_log_survives_corrupt_json(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(db_path)
    with db.session() as s:
        repo.set_meta(s, DECISIONS_KEY, "{not json")
    log = DecisionLog(db)
    assert log.recent() == []
    log.record(GuardDecision(True))
    assert len(log.recent()) == 1
    assert warnings_about(caplog, "not valid JSON") >= 1
    db.close()


def test_describe_gives_readings_limits_and_decisions(nano: FakeSysfs, db_path: Path) -> None:
    db = Database(db_path)
    settings = guard_settings(nano)
    nano.set_temp(CPU, 92.5)
    guard = Guard(settings, need_mb=100, record=DecisionLog(db).record)
    guard.check()
    info = describe(settings, need_mb=100, db=db)
    json.dumps(info)  # JSON-ready for chime status --json
    assert info["sensor"] == "sysfs"
    assert info["readings"]["hottest"] == {"zone": "CPU-therm", "temp_c": 92.5}
    assert info["readings"]["ram_available_mb"] > 0
    assert info["limits"] == {"start_c": 77.0, "abort_c": 92.0,
                              "temp_from": "passive trip 97.0 °C", "need_mb": 100,
                              "ram_start_mb": 400, "ram_floor_mb": 200}
    assert info["now"] == {"ok": False, "reason": "too hot to start the model: CPU-therm at "
                                                  "92.5 °C, start limit 77.0 °C"}
    assert [d["reason"] for d in info["decisions"]] == [
        "too hot to go on: CPU-therm at 92.5 °C, abort limit 92.0 °C"]
    assert describe(settings)["decisions"] == []
    db.close()


def test_decision_dict() -> None:
    data = decision_dict(GuardDecision(False, "too hot", {"phase": "start"}))
    assert data == {"decision": "refused", "ok": False, "reason": "too hot",
                    "readings": {"phase": "start"}}


# --- config ---------------------------------------------------------------------------------------

def test_guard_config_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[guards]\nstart_temp = 70\nabort_temp = 80.5\nwait_step = "5s"\n'
                    'ignore_zones = ["PMIC*", "Tboard"]\nsysfs_root = "/tmp/sys"\n')
    g = load_settings(path, tmp_path / "c.db").guards
    assert (g.start_temp, g.abort_temp) == (70.0, 80.5)
    assert g.wait_step == timedelta(seconds=5)
    assert g.ignore_zones == ["PMIC*", "Tboard"]


def test_bad_guard_config_names_every_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[guards]\nstart_temp = 90\nabort_temp = 80\nram_floor_mb = -1\n"
                    "check_every = 0\nabort_margin = 30\nstart_margin = 10\n"
                    "keep_decisions = 0\nwait_step = \"soon\"\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, tmp_path / "c.db")
    message = str(err.value)
    for part in ("[guards] start_temp: must be below abort_temp", "[guards] ram_floor_mb",
                 "[guards] check_every", "[guards] abort_margin: must not exceed",
                 "[guards] keep_decisions", "[guards] wait_step"):
        assert part in message
