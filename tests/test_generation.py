"""Generation without torch in the test process: validation, files, pull, wiring, imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.app import App
from daemon.config import load_settings
from daemon.errors import ConfigError, GenerationError
from daemon.generation import validate
from daemon.generation.base import WithFallback
from daemon.generation.files import ModelFiles, _wanted, pull, write_json
from daemon.generation.supervisor import LoraGenerator, memory_need_mb, second_seed, unavailable
from daemon.generation.template import TemplateGenerator
from tests.generation_fixtures import copy_models, model_settings

REPO = Path(__file__).resolve().parent.parent

ACCEPT = [
    ("主人晚上好呀，现在该吃药啦，今天小雨，要照顾好自己哦！", "吃药"),
    ("早上好～记得买牛奶哦，别忘啦！", "去超市买牛奶"),  # by key words: 买牛, 牛奶
    ("下午好！该给Bob打电话啦，他在等你哦。", "给 Bob 打电话"),
    ("嘿，该去 gym 锻炼身体了，加油！", "gym"),
    ("哈哈哈，该喝水啦！", "喝水"),
]
REJECT = [
    ("", "喝水", "empty"),
    ("主人晚上好呀，现在该跑步啦！", "吃药", "does not name the task"),
    ("Time to take your medicine 吃药 now, please do it", "吃药", "not mostly Chinese"),
    ("该喝水啦！" + "今天天气很好，" * 12, "喝水", "too long"),
    ("assistant: 该喝水啦！", "喝水", "echoes the prompt"),
    ("human:天气:晴天,日期:工作日 该喝水啦", "喝水", "echoes the prompt"),
    ("该喝水啦，，，，，，，，", "喝水", "repetition loop"),
    ("该喝水啦喝水啦喝水啦喝水啦", "喝水", "repetition loop"),
    ("该喝水啦，详情见 https://example.com 哦", "喝水", "contains a URL"),
    ("该喝水啦，详情见 www.example.cn 哦", "喝水", "contains a URL"),
]


@pytest.mark.parametrize(("text", "task"), ACCEPT)
def test_validation_accepts(text: str, task: str) -> None:
    assert validate.problems(text, task) == []


def test_validation_length_limit_is_80_characters() -> None:
    ok = ("该开会了。今天的会议很重要，记得带上笔记本和电脑，提前十分钟到会议室，准备好发言的"
          "材料，把问题列清楚。会后整理纪要发给大家，下午还要和客户确认方案细节，别忘了喝水休息，"
          "加油！")[:80]
    assert len(ok) == 80 and "too long" not in " ".join(validate.problems(ok, "开会"))
    assert any(r.startswith("too long") for r in validate.problems(ok + "吧", "开会"))


@pytest.mark.parametrize(("text", "task", "reason"), REJECT)
def test_validation_rejects(text: str, task: str, reason: str) -> None:
    assert any(r.startswith(reason) for r in validate.problems(text, task)), \
        validate.problems(text, task)


def test_clean_cuts_at_end_marker_and_strips() -> None:
    assert validate.clean("  该喝水啦！end这里不要end ") == "该喝水啦！"
    assert validate.clean("该喝水啦！") == "该喝水啦！"


def test_key_words_drop_filler() -> None:
    assert validate.key_words("去超市买牛奶") == ["超市", "市买", "买牛", "牛奶"]
    assert validate.key_words("给 Bob 打电话") == ["bob", "打电", "电话"]


def test_second_seed_is_reproducible_and_different() -> None:
    assert second_seed(42) == second_seed(42) != 42
    assert 0 <= second_seed(2**40) < 2**31


def test_model_settings_validated(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[model]\nbackend = "int4"\nkernel = "fast"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert "[model] backend" in str(err.value) and "[model] kernel" in str(err.value)


def test_daemon_imports_no_torch() -> None:
    code = ("import sys, importlib, daemon.service, daemon.app, daemon.cli, daemon.generation.supervisor\n"
            "from daemon.app import App\n"
            "for target in daemon.cli.COMMANDS.values():\n"
            "    importlib.import_module(target.partition(':')[0])\n"
            "bad = [m for m in ('torch', 'transformers', 'peft', 'safetensors', 'bitsandbytes')"
            " if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_nothing_installed_means_template_alone(tmp_path: Path) -> None:
    settings = model_settings(ModelFiles(tmp_path / "none"), tmp_path)
    assert "no model installed" in (unavailable(settings) or "")
    assert isinstance(App(settings).generator, TemplateGenerator)
    settings.model.enabled = False
    assert "disabled" in (unavailable(settings) or "")


def test_installed_model_is_wired_with_fallback_and_guard(installed: ModelFiles,
                                                          tmp_path: Path) -> None:
    settings = model_settings(installed, tmp_path)
    generator = App(settings).generator
    assert isinstance(generator, WithFallback)
    assert isinstance(generator.primary, LoraGenerator)
    assert generator.primary.guard is not None
    assert isinstance(generator.fallback, TemplateGenerator)


def test_memory_need_comes_from_the_artifact(installed: ModelFiles,
                                             tmp_path: Path) -> None:
    models = copy_models(installed, tmp_path / "models")
    settings = model_settings(models, tmp_path)
    assert memory_need_mb(settings) is None  # built, not measured yet
    models.write_artifact_meta({"memory_need_mb": 2900})
    assert memory_need_mb(settings) == 2900
    settings.model.backend = "bf16"
    assert memory_need_mb(settings) is None


def test_missing_parts_named(installed: ModelFiles, tmp_path: Path) -> None:
    models = copy_models(installed, tmp_path / "models")
    assert models.missing("base") is None and models.missing("int8") is None
    (models.adapter / "adapter_model.safetensors").unlink()
    assert "adapter_model.safetensors is missing" in (models.missing("adapter") or "")
    assert models.usable("bf16") and models.usable("torch-int8") is None
    meta = models.artifact_meta()
    write_json(models.artifact / "chime.json", {**meta, "merged": False})
    assert "adapter is missing" in (models.missing("int8") or "")
    write_json(models.artifact / "chime.json", {**meta, "format": "other"})
    assert "rebuild" in (models.missing("int8") or "")


def test_pull_local_converts_pickle_and_records_sources(tiny, tmp_path: Path) -> None:
    files = ModelFiles(tmp_path / "models")
    files.root.mkdir()
    record = pull(str(tiny.adapter_bin), "adapter", files)
    assert sorted(p.name for p in files.adapter.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "source.json"]
    assert record["converted"]["adapter_model.bin"]["to"] == "adapter_model.safetensors"
    saved = json.loads((files.adapter / "source.json").read_text())
    assert saved["files"].keys() == {"adapter_config.json", "adapter_model.safetensors"}
    pull(str(tiny.base), "base", files)
    assert files.missing("base") is None


def test_pull_refuses_a_pickle_that_is_not_tensors(tmp_path: Path) -> None:
    import pickle

    source = tmp_path / "evil"
    source.mkdir()
    (source / "adapter_config.json").write_text("{}")

    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("unpickled!",))

    (source / "adapter_model.bin").write_bytes(pickle.dumps({"x": Boom()}))
    files = ModelFiles(tmp_path / "models")
    files.root.mkdir()
    with pytest.raises(GenerationError, match=r"cannot read adapter_model\.bin"):
        pull(str(source), "adapter", files)
    assert not files.adapter.exists()


def test_pull_without_weights_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.mkdir()
    (source / "config.json").write_text("{}")
    files = ModelFiles(tmp_path / "models")
    files.root.mkdir()
    with pytest.raises(GenerationError, match="has no base weights"):
        pull(str(source), "base", files)


def test_only_the_needed_hub_files_are_fetched() -> None:
    hub_base = ["README.md", ".gitattributes", "config.json", "flax_model.msgpack",
                "model.safetensors", "pytorch_model.bin", "special_tokens_map.json",
                "tokenizer.json", "tokenizer_config.json"]
    assert sorted(_wanted(hub_base, "base")) == [
        "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
        "tokenizer_config.json"]
    old_base = [n for n in hub_base if n != "model.safetensors"]
    assert "pytorch_model.bin" in _wanted(old_base, "base")  # converted once, at pull time
    hub_lora = ["README.md", "adapter_config.json", "adapter_model.bin"]
    assert _wanted(hub_lora, "adapter") == ["adapter_config.json", "adapter_model.bin"]
    assert _wanted([*hub_lora, "adapter_model.safetensors"], "adapter") == [
        "adapter_config.json", "adapter_model.safetensors"]
