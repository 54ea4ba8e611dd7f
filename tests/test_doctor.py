"""`chime doctor`: real checks on this machine (no GPU, no jtop), redaction, exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from daemon.cli.doctor import ERROR, OK, REDACTED, WARNING, Doctor, model, system
from daemon.config import load_settings
from tests.dbus_fixtures import NotificationServer, private_bus

DATA = Path(__file__).parent / "data" / "openmeteo"
LAT, LON, PLACE = "31.2304", "121.4737", "上海徐汇"
NAMES = ["config", "python", "torch", "gpu", "int8", "model files", "memory", "sensors",
         "desktop", "speaker", "ntfy", "database", "daemon", "weather", "clock", "workdays"]


def doctor(*args: str, config: Path | None = None, db: Path) -> subprocess.CompletedProcess[str]:
    extra = ["--config", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "daemon", "--db", str(db), *extra, "doctor",
                           *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture
def open_meteo(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/v1/forecast").respond_with_data(
        (DATA / "forecast_shanghai.json").read_bytes(), content_type="application/json")
    return httpserver


@pytest.fixture
def located_config(tmp_path: Path, open_meteo: HTTPServer) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[location]\nlatitude = {LAT}\nlongitude = {LON}\nname = "{PLACE}"\n'
        f'[weather]\nbase_url = "{open_meteo.url_for("/")}"\n', encoding="utf-8")
    return path


def no_gpu_here() -> bool:
    return shutil.which("nvidia-smi") is None and not Path("/dev/nvmap").exists()


def test_doctor_json_on_this_machine(tmp_path: Path, located_config: Path,
                                     open_meteo: HTTPServer) -> None:
    result = doctor("--json", config=located_config, db=tmp_path / "chime.db")
    for secret in (LAT, LON, LAT[:5], LON[:6], PLACE):
        assert secret not in result.stdout + result.stderr, secret
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == NAMES
    assert result.returncode == 0 and report["ok"], result.stdout
    # What this machine lacks, each with the warning that must say so; everything else is OK.
    expected = {"model files": f"no model weights under {tmp_path / 'models'}",
                "daemon": "not running"}
    if no_gpu_here():
        expected["gpu"] = "no CUDA GPU: the model runs on the CPU"
    if not Path("/run/jtop.sock").exists():
        expected["sensors"] = "no jtop"
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        expected["desktop"] = "no session D-Bus"
    if "no soundcards found" in subprocess.run(["aplay", "-l"], capture_output=True,
                                               text=True, timeout=10).stderr:
        expected["speaker"] = "espeak-ng cmn-latn-pinyin works; no sound card"
    if system.adjtimex_state() == 5:  # TIME_ERROR
        expected["clock"] = "not synchronized"
    from daemon.context.days import DayCalendar

    soon = {date.today().year, (date.today() + timedelta(days=90)).year}
    if not all(DayCalendar("CN").calendar_known(year, {}) for year in soon):
        expected["workdays"] = "is not known yet, so Monday–Friday is used"
    for name, c in checks.items():
        if name in expected:
            assert c["status"] == WARNING and expected[name] in c["detail"] and c["fix"], c
        else:
            assert c["status"] == OK, c
    assert report["config"]["location"] == {"latitude": REDACTED, "longitude": REDACTED,
                                            "name": REDACTED}
    assert checks["weather"]["status"] == OK and "redacted" in checks["weather"]["detail"]
    asked = [request.args for request, _response in open_meteo.log]
    assert asked and all(a["latitude"] == "0.0" and a["longitude"] == "0.0" for a in asked)
    assert checks["database"]["status"] == OK
    assert not (tmp_path / "chime.db").exists(), "the doctor must not create the database"
    soon = date.today() + timedelta(days=90)
    if chinese_calendar_covers(soon.year):
        assert checks["workdays"]["status"] == OK
    else:
        assert checks["workdays"]["status"] == WARNING
        assert f"CN calendar of {soon.year} is not known yet" in checks["workdays"]["detail"]
        assert "Monday–Friday" in checks["workdays"]["detail"]


def chinese_calendar_covers(year: int) -> bool:
    import chinese_calendar

    try:
        chinese_calendar.is_workday(date(year, 12, 31))
    except NotImplementedError:
        return False
    return True


def test_doctor_text_and_an_offline_weather_endpoint(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[location]\nlatitude = {LAT}\nlongitude = {LON}\n"
                      '[weather]\nbase_url = "http://127.0.0.1:9"\n')
    result = doctor(config=config, db=tmp_path / "chime.db")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("0 error(s)")
    weather = next(i for i, line in enumerate(lines) if line.startswith("! weather:"))
    assert lines[weather + 1].startswith("    fix: offline is fine")
    assert LAT not in result.stdout and LON not in result.stdout


def test_a_newer_schema_is_a_required_failure(tmp_path: Path) -> None:
    db = tmp_path / "chime.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    result = doctor("--json", db=db)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    database = next(c for c in report["checks"] if c["name"] == "database")
    assert database["status"] == ERROR and "newer" in database["detail"]
    assert database["fix"] == "upgrade chime"
    assert report["ok"] is False


def test_a_bad_config_fails_but_the_other_checks_run(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[location]\nlatitude = 95.5\nlongitude = 1\n[daemon]\nnoise = 1\n")
    code = ("import sys; from daemon.cli.doctor import run; "
            f"r = run(config={str(config)!r}, db={str(tmp_path / 'x.db')!r}); "
            "import json; print(json.dumps(r.as_dict())); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    out, torch_loaded = done.stdout.strip().rsplit("\n", 1)
    assert torch_loaded == "False", "the doctor probes torch in a child process"
    report = json.loads(out)
    names = [c["name"] for c in report["checks"]]
    assert names[0] == "config" and report["checks"][0]["status"] == ERROR
    assert "[location] latitude" in report["checks"][0]["detail"]
    assert "[daemon] noise" in report["checks"][0]["detail"]
    assert {"python", "torch", "gpu", "int8", "desktop", "clock"} <= set(names)
    assert "database" not in names and report["ok"] is False
    cli = doctor(config=config, db=tmp_path / "x.db")
    assert cli.returncode == 1 and cli.stdout.startswith("✗ config:")


def test_desktop_check_on_a_real_session_bus(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\noutputs = ["console", "desktop"]\n')
    doc = Doctor(load_settings(config, tmp_path / "x.db"))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    assert system.check_desktop(doc).status == ERROR  # enabled, but no bus at all
    with private_bus() as address:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        empty = system.check_desktop(doc)
        assert empty.status == ERROR and "notification server" in empty.detail
        server = NotificationServer(address)
        try:
            found = system.check_desktop(doc)
        finally:
            server.close()
    assert found.status == OK and found.detail == "notification server test 1 (chime)"
    assert system.check_desktop(Doctor(load_settings(None, tmp_path / "x.db"))).status \
        == WARNING  # not enabled: only a warning


def write_safetensors(path: Path, tensors: dict[str, list[int]]) -> None:
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 2
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def test_model_files_sizes_hashes_and_memory_need(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    (models / "base").mkdir(parents=True)
    (models / "lora").mkdir()
    weights = models / "base" / "model.safetensors"
    write_safetensors(weights, {"transformer.word_embeddings.weight": [4000, 256],
                                "h.0.mlp.dense_h_to_4h.weight": [1024, 256],
                                "h.0.input_layernorm.weight": [256]})
    (models / "base" / "config.json").write_text("{}")
    (models / "lora" / "adapter_config.json").write_text('{"r": 8}')
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nmodels_dir = "{models}"\nbackend = "torch-int8"\n')
    doc = Doctor(load_settings(config, tmp_path / "x.db"),
                 torch_info={"torch": "2", "cuda": False, "cpu_int8": "ok"})

    files = model.check_model_files(doc)
    assert files.status == OK and files.detail.startswith("1 weight file(s)")
    entry = files.data["base/model.safetensors"]
    assert entry["bytes"] == weights.stat().st_size
    assert entry["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert set(files.data) == {"base/model.safetensors", "base/config.json",
                               "lora/adapter_config.json"}
    monkeypatch.setattr(model, "HASH_LIMIT", 100)
    assert "sha256" not in model.check_model_files(doc).data["base/model.safetensors"]

    assert model.safetensors_counts(weights) == (1024 * 256, 4000 * 256 + 256)
    need = int((1024 * 256 * 1.0 + (4000 * 256 + 256) * 4.0) * 1.2 / 2**20)
    memory = model.check_memory(doc)
    assert memory.data["need_mb"] == need and memory.data["backend"] == "torch-int8"
    assert memory.status == OK


def test_no_model_files_is_a_warning_with_the_place_to_put_them(tmp_path: Path) -> None:
    doc = Doctor(load_settings(None, tmp_path / "x.db"), torch_info={"torch": None})
    check = model.check_model_files(doc)
    assert check.status == WARNING and str(tmp_path / "models") in check.fix
    assert model.check_int8(doc).status == WARNING
    assert model.check_memory(doc).data["need_mb"] is None


def test_the_torch_probe_reports_a_hang_as_an_error_text() -> None:
    info = model.probe_torch(timeout=0.01)
    assert info["torch"] is None and "took over" in info["error"]


def test_clock_and_adjtimex(monkeypatch: pytest.MonkeyPatch) -> None:
    state = system.adjtimex_state()
    assert state in {0, 1, 2, 3, 4, 5}  # TIME_OK … TIME_ERROR: the real kernel answered
    real = system.check_clock(Doctor(None))
    assert real.status == (WARNING if state == 5 else OK), real
    for given, status, detail in ((0, OK, "synchronized"), (5, WARNING, "not synchronized (NTP)"),
                                  (None, WARNING, "sync state unknown")):
        monkeypatch.setattr(system, "adjtimex_state", lambda given=given: given)
        check = system.check_clock(Doctor(None))
        assert (check.status, check.detail.split(" UTC")[-1].lstrip(", ;")) == (status, detail)
        assert bool(check.fix) == (status == WARNING)
