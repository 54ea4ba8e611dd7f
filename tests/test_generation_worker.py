"""The LoRA generator end to end: a real worker process with the tiny model, and its failures."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import main
from daemon.errors import GenerationError
from daemon.generation.base import Request, WithFallback
from daemon.generation.files import ModelFiles
from daemon.generation.guards import GuardDecision
from daemon.generation.supervisor import LoraGenerator, memory_need_mb
from daemon.generation.template import TemplateGenerator
from tests.generation_fixtures import copy_models, model_settings
from tests.tinymodel import answer, context

pytest.importorskip("torch")
INFO_KEYS = {"backend", "load_s", "generate_s", "tokens", "tok_per_s", "peak_rss_mb"}


class FakeGuard:
    """Admits or refuses, and trips after ``trip_after`` checks."""

    def __init__(self, admit: bool = True, trip_after: int | None = None) -> None:
        self.admit_ok, self.trip_after = admit, trip_after
        self.admits = self.checks = 0

    def admit(self, deadline: float) -> GuardDecision:
        self.admits += 1
        return GuardDecision(self.admit_ok, "" if self.admit_ok else "too hot: 80.0 °C")

    def check(self) -> GuardDecision:
        self.checks += 1
        if self.trip_after is not None and self.checks > self.trip_after:
            return GuardDecision(False, "RAM low: 150 MB available")
        return GuardDecision(True)


def _request(key: str, task: str, weather: str = "晴天", day: str = "工作日",
             part: str = "上午", seed: int = 1) -> Request:
    return Request(key, task, context(weather, day, part), seed)


def _gone(lora: LoraGenerator, within: float) -> bool:
    """Has the worker process ended (and been reaped) within ``within`` seconds?"""
    end = time.monotonic() + within
    while time.monotonic() < end:
        if lora.worker is None or lora.worker.proc.poll() is not None:
            return True
        time.sleep(0.1)
    return False


def test_batch_written_validated_and_worker_kept_warm(installed: ModelFiles,
                                                      tmp_path: Path) -> None:
    settings = model_settings(installed, tmp_path, keep_warm=timedelta(seconds=4))
    guard = FakeGuard()
    lora = LoraGenerator(settings, guard)
    generator = WithFallback(lora, TemplateGenerator())
    try:
        first = generator.generate([
            _request("a", "吃药", "小雨", "双休日", "晚上"),
            _request("b", "去超市买牛奶"),  # never trained: drifts, is retried, then template
        ])
        assert first[0].generator == "lora"
        assert first[0].text == answer("吃药", "小雨", "晚上")
        assert first[0].rejected == [] and first[0].info.keys() >= INFO_KEYS
        assert first[0].info["backend"] == "torch-int8" and first[0].info["warm"] is False
        assert first[0].info["tokens"] > 0 and first[0].info["peak_rss_mb"] > 50
        assert first[1].generator == "template" and "买牛奶" in first[1].text
        assert "does not name the task" in first[1].rejected
        assert first[1].info["attempts"] == 2 and first[1].raw_output
        assert first[1].info["fallback_reason"].startswith("rejected")
        assert guard.admits == 1
        pid = lora.pid
        environ = Path(f"/proc/{pid}/environ")
        if environ.exists():  # the worker never reaches the hub
            assert b"HF_HUB_OFFLINE=1" in environ.read_bytes().split(b"\0")
        second = generator.generate([_request("c", "喝水", seed=7)])
        assert second[0].generator == "lora" and second[0].info["warm"] is True
        assert lora.pid == pid and guard.admits == 1
        assert _gone(lora, 20), "the worker did not exit after keep_warm"
        third = generator.generate([_request("d", "跑步")])
        assert third[0].generator == "lora" and third[0].info["warm"] is False
        assert lora.pid != pid and guard.admits == 2
    finally:
        lora.close()


def test_same_seed_same_text(installed: ModelFiles, tmp_path: Path) -> None:
    settings = model_settings(installed, tmp_path, temperature=1.5, top_p=1.0)
    lora = LoraGenerator(settings)
    try:
        batch = [_request("a", "写日记", seed=s) for s in (11, 11, 12)]
        raws = [d.raw_output for d in lora.generate(batch) if d is not None]
    finally:
        lora.close()
    assert raws[0] == raws[1]


def test_timeout_means_template_on_time(installed: ModelFiles, tmp_path: Path) -> None:
    settings = model_settings(installed, tmp_path, timeout=timedelta(seconds=0.5))
    lora = LoraGenerator(settings)
    started = time.monotonic()
    drafts = WithFallback(lora, TemplateGenerator()).generate([_request("a", "吃药")])
    assert time.monotonic() - started < 6
    assert drafts[0].generator == "template" and drafts[0].text
    assert "timeout after 0.5s" in drafts[0].info["fallback_reason"]
    assert lora.worker is None


def test_killed_worker_means_template(installed: ModelFiles, tmp_path: Path) -> None:
    settings = model_settings(installed, tmp_path)
    lora = LoraGenerator(settings)
    result: list = []
    thread = threading.Thread(target=lambda: result.extend(
        WithFallback(lora, TemplateGenerator()).generate([_request("a", "吃药")])))
    thread.start()
    end = time.monotonic() + 20
    while lora.pid is None and time.monotonic() < end:
        time.sleep(0.01)
    os.kill(lora.pid, signal.SIGKILL)  # what the OOM killer does
    thread.join(60)
    assert result[0].generator == "template"
    assert "worker killed by signal 9 (out of memory?)" in result[0].info["fallback_reason"]


def test_worker_dead_between_batches_is_replaced(installed: ModelFiles,
                                                 tmp_path: Path) -> None:
    lora = LoraGenerator(model_settings(installed, tmp_path))
    try:
        assert lora.generate([_request("a", "吃药")])[0].text
        os.kill(lora.pid, signal.SIGKILL)
        assert _gone(lora, 5)
        drafts = lora.generate([_request("b", "喝水")])
        assert drafts[0].text == answer("喝水", "晴天", "上午")
    finally:
        lora.close()


def test_guard_refusal_starts_nothing(installed: ModelFiles, tmp_path: Path) -> None:
    lora = LoraGenerator(model_settings(installed, tmp_path), FakeGuard(admit=False))
    with pytest.raises(GenerationError, match="guard: too hot"):
        lora.generate([_request("a", "吃药")])
    assert lora.pid is None


def test_guard_trip_stops_the_worker(installed: ModelFiles, tmp_path: Path) -> None:
    lora = LoraGenerator(model_settings(installed, tmp_path), FakeGuard(trip_after=1))
    drafts = WithFallback(lora, TemplateGenerator()).generate([_request("a", "吃药")])
    assert drafts[0].generator == "template"
    assert "guard: RAM low" in drafts[0].info["fallback_reason"]
    assert lora.worker is None


def test_corrupt_artifact_reported_by_the_worker(installed: ModelFiles,
                                                 tmp_path: Path) -> None:
    files = copy_models(installed, tmp_path / "models")
    weights = files.artifact / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    lora = LoraGenerator(model_settings(files, tmp_path))
    drafts = WithFallback(lora, TemplateGenerator()).generate([_request("a", "吃药")])
    assert drafts[0].generator == "template"
    assert "truncated" in drafts[0].info["fallback_reason"]


def test_cli_build_measures_and_preview_uses_the_model(installed: ModelFiles,
                                                       tmp_path: Path) -> None:
    files = copy_models(installed, tmp_path / "models")
    settings = model_settings(files, tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nmodels_dir = "{files.root}"\n[guards]\nuse_jtop = false\n')
    env = {"CHIME_CONFIG": str(config), "CHIME_DB": str(tmp_path / "chime.db")}
    runner = CliRunner()
    built = runner.invoke(main, ["model", "build"], env=env)
    assert built.exit_code == 0, built.output
    assert "measured:" in built.output
    assert (memory_need_mb(settings) or 0) > 50
    shown = runner.invoke(main, ["model", "info", "--json"], env=env)
    report = json.loads(shown.output)
    assert report["usable"] and report["parts"]["int8"]["ok"]
    assert report["memory_need_mb"] == memory_need_mb(settings)
    preview = runner.invoke(main, ["preview", "喝水", "--at", "tomorrow 09:30", "--json"],
                            env=env)
    assert preview.exit_code == 0, preview.output
    data = json.loads(preview.output[preview.output.index("{"):])
    assert data["generator"] in ("lora", "template")
    assert data["backend"] == "torch-int8" and data.keys() >= INFO_KEYS
    assert data["raw_output"] and isinstance(data["rejected"], list)
