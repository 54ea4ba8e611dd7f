"""``chime model train`` on the tiny BLOOM: it learns, Ctrl-C + --resume, and the adapter installs.

The base for training is the tiny model with its character merged in (a base that already
answers the prompts, like bloomz); the new character answers in a recognisable shape
(``现在该{task}啦，要照顾好自己哦！``) that the base never uses.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import main
from daemon.config import Settings
from daemon.context.prompt import END_MARKER, format_prompt, parse_prompt
from daemon.generation import checkpoint, dataset, train, validate
from daemon.generation.files import ModelFiles, pull
from tests.tinymodel import TASKS, TinyModel

torch = pytest.importorskip("torch")

SHAPE = re.compile(r"^现在该(.+?)啦，要照顾好自己哦！$")
# Small and steep, so that the tiny model learns the shape in a few seconds.
OPTIONS = ["--learning-rate", "1e-2", "--epochs", "8", "--eval", "0.2", "--checks", "12",
           "--no-progress"]


def shaped(prompt: str) -> str:
    fields, _ = parse_prompt(prompt) or ({}, "")
    return f"现在该{fields['task']}啦，要照顾好自己哦！"


def write_data(path: Path, count: int = 60) -> Path:
    """``count`` seed-format lines in words the tiny tokenizer knows, answered in the shape."""
    combos = list(itertools.product(TASKS, ["晴天", "小雨", "多云"], ["工作日", "双休日", "春节"],
                                    ["上午", "下午", "晚上"]))
    random.Random(3).shuffle(combos)
    lines = []
    for task, weather, day, part in combos[:count]:
        prompt = format_prompt(weather, day, part, task)
        lines.append(json.dumps({"text": prompt + shaped(prompt) + END_MARKER},
                                ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Trained:
    base: Path
    data: Path
    out: Path
    output: str


@pytest.fixture(scope="module")
def trained(tiny: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The tiny model with its LoRA merged in as the base, and a new character trained on it."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("train")
    base = root / "base"
    model = AutoModelForCausalLM.from_pretrained(tiny.base)
    PeftModel.from_pretrained(model, tiny.adapter_st).merge_and_unload().save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny.base).save_pretrained(base)
    data = write_data(root / "data.jsonl")
    out = root / "out"
    result = CliRunner().invoke(main, ["model", "train", str(data), "--out", str(out),
                                       "--base", str(base), "--name", "小喵", *OPTIONS])
    assert result.exit_code == 0, result.output
    return Trained(base, data, out, result.output)


def _record(out: Path) -> dict:
    return json.loads((out / "training.json").read_text(encoding="utf-8"))


def test_training_learns_the_shape_and_records_it(trained: Trained) -> None:
    record = _record(trained.out)
    assert (trained.out / "adapter_config.json").is_file()
    assert (trained.out / "adapter_model.safetensors").is_file()
    assert not (trained.out / checkpoint.CHECKPOINT).exists()
    assert record["name"] == "小喵" and record["precision"] == "fp32"
    assert record["data"]["lines"] == 60 and record["data"]["held_out"] == 12
    assert record["hyperparameters"]["rank"] == 16
    assert record["hyperparameters"]["target_modules"] == ["query_key_value"]
    assert [e["epoch"] for e in record["losses"]] == list(range(1, 9))
    assert record["eval_loss"]["after"] < record["eval_loss"]["before"] / 2
    samples = record["samples"]
    assert len(samples) == record["delivery_checks"]["prompts"] == 12
    before = sum(bool(SHAPE.match(s["before"])) for s in samples)
    after = sum(bool(SHAPE.match(s["after"])) for s in samples)
    assert after > before and after >= 9, samples
    for s in samples:  # the pass rate is the delivery checks applied to these very texts
        fields, _ = parse_prompt(s["prompt"]) or ({}, "")
        assert s["after_problems"] == validate.problems(s["after"], fields["task"], s["prompt"])
    rate = record["delivery_checks"]["pass_rate"]
    assert rate["after"] == round(sum(not s["after_problems"] for s in samples) / 12, 3)
    assert "eval loss" in trained.output and "measured" in trained.output


def test_bad_lines_are_listed_and_refused(tmp_path: Path, trained: Trained) -> None:
    good = trained.data.read_text(encoding="utf-8").splitlines()[:12]
    prompt = format_prompt("晴天", "工作日", "上午", "喝水")
    bad = {
        3: "{not json",
        5: json.dumps({"prompt": prompt}, ensure_ascii=False),
        7: json.dumps({"text": "天气:晴天 喝水assistant:现在该喝水啦end"}, ensure_ascii=False),
        9: json.dumps({"text": prompt + "现在该喝水啦，要照顾好自己哦！"}, ensure_ascii=False),
        11: json.dumps({"text": prompt + "现在该喝水啦" + "，要照顾好自己哦！" * 10 + "end"},
                       ensure_ascii=False),
        12: json.dumps({"text": prompt + "记得按时吃饭哦！end"}, ensure_ascii=False),
        13: json.dumps({"text": prompt.replace("晴天", "台风") + "现在该喝水啦！end"},
                       ensure_ascii=False),
    }
    lines = list(good)
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["model", "train", str(data), "--out", str(out),
                                       "--base", str(trained.base), *OPTIONS])
    assert result.exit_code == 2
    listed = [line for line in result.output.splitlines() if line.startswith(str(data))]
    assert [int(line.split(":")[1]) for line in listed] == sorted(bad)
    reasons = "\n".join(listed)
    for expected in ("not JSON", "a prompt without an answer", "wrong prompt format",
                     "missing the end marker", "too long", "does not name the task",
                     "unknown weather word '台风'"):
        assert expected in reasons
    assert "7 of 19 lines are bad" in result.output and "--allow-bad" in result.output
    assert not out.exists()
    skipped = CliRunner().invoke(main, ["model", "train", str(data), "--out", str(out),
                                        "--base", str(trained.base), "--allow-bad",
                                        "--epochs", "1", "--checks", "0", "--no-progress"])
    assert skipped.exit_code == 0, skipped.output
    assert "skipping 7 bad lines of 19" in skipped.output
    assert _record(out)["data"]["bad_skipped"] == 7


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_same(tmp_path: Path,
                                                                 trained: Trained) -> None:
    out = tmp_path / "out"
    data = dataset.read(trained.data)
    hyper = train.HyperParameters(learning_rate=1e-2, epochs=8, eval_share=0.2)
    train_set, held_out = dataset.split(data.examples, hyper.eval_share, hyper.seed)
    m = Settings().model
    decoding = {"temperature": m.temperature, "top_p": m.top_p,
                "repetition_penalty": m.repetition_penalty, "max_new_tokens": m.max_new_tokens}
    job = train.Job(data, train_set, held_out, trained.base, out, "小喵", hyper, decoding,
                    checks=0, progress=False)  # the texts do not change the training
    said: list[str] = []

    def echo(line: str) -> None:  # Ctrl-C once the time estimate is out (step 4 of 48)
        said.append(line)
        if line.startswith("measured"):
            os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(train.TrainingInterrupted, match="--resume"):
        train.run(job, None, echo)
    assert signal.getsignal(signal.SIGINT) is handler
    assert any(line.startswith("Ctrl-C") for line in said)
    state = checkpoint.saved_state(out)
    assert state is not None and state["step"] == 1 + train.ESTIMATE_STEPS
    assert state["total_steps"] == 48

    args = ["model", "train", str(trained.data), "--out", str(out), "--base", str(trained.base),
            "--no-progress"]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "unfinished training (step 4 of 48)" in again.output
    other = CliRunner().invoke(main, [*args, "--resume", "--epochs", "3"])
    assert other.exit_code == 2 and "--epochs differs from the checkpoint's (8)" in other.output
    resumed = CliRunner().invoke(main, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at step 4 of 48" in resumed.output
    record = _record(out)
    assert record["resumed_at"] == [4] and record["steps"] == 48
    assert record["delivery_checks"]["prompts"] == 0  # as in the checkpoint
    assert record["losses"] == _record(trained.out)["losses"]
    from safetensors.torch import load_file

    mine = load_file(str(out / "adapter_model.safetensors"))
    straight = load_file(str(trained.out / "adapter_model.safetensors"))
    assert mine.keys() == straight.keys()
    for key in mine:
        torch.testing.assert_close(mine[key], straight[key], rtol=0, atol=1e-6)


def test_trained_adapter_installs_and_speaks_through_the_worker(tmp_path: Path,
                                                               trained: Trained) -> None:
    files = ModelFiles(tmp_path / "models")
    pull(str(trained.base), "base", files)
    pull(str(trained.out), "adapter", files)
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nmodels_dir = "{files.root}"\ntemperature = 0.0\n'
                      '[guards]\nuse_jtop = false\n', encoding="utf-8")
    env = {"CHIME_CONFIG": str(config), "CHIME_DB": str(tmp_path / "chime.db")}
    runner = CliRunner()
    built = runner.invoke(main, ["model", "build", "--no-measure"], env=env)
    assert built.exit_code == 0, built.output
    shown = runner.invoke(main, ["model", "info"], env=env)
    assert "character: 小喵 (trained" in shown.output
    report = json.loads(runner.invoke(main, ["model", "info", "--json"], env=env).output)
    assert report["character"]["name"] == "小喵" and report["usable"]
    preview = runner.invoke(main, ["preview", "喝水", "--at", "tomorrow 09:30", "--json"],
                            env=env)
    assert preview.exit_code == 0, preview.output
    data = json.loads(preview.output[preview.output.index("{"):])
    assert data["backend"] == "torch-int8"
    assert SHAPE.match(validate.clean(data["raw_output"])), data
    assert "run `chime model build`" not in shown.output
    pull(str(trained.out), "adapter", files)  # a new character, not built in yet
    stale = runner.invoke(main, ["model", "info"], env=env)
    assert "the int8 artifact was built before it: run `chime model build`" in stale.output


def test_int8_base_trains_on_the_cpu_too(tmp_path: Path, trained: Trained) -> None:
    """The bitsandbytes path (prepare_model_for_kbit_training) runs here without a GPU."""
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["model", "train", str(trained.data), "--out", str(out),
                                       "--base", str(trained.base), "--precision", "int8",
                                       "--learning-rate", "1e-2", "--epochs", "2", "--eval",
                                       "0.2", "--checks", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = _record(out)
    assert (record["device"], record["precision"]) == ("cpu", "int8")
    assert record["eval_loss"]["after"] < record["eval_loss"]["before"] / 2
    assert record["delivery_checks"]["prompts"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="the int8 training path (bitsandbytes) needs a CUDA GPU; none here")
def test_int8_training_on_cuda(tmp_path: Path, trained: Trained) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["model", "train", str(trained.data), "--out", str(out),
                                       "--base", str(trained.base), "--device", "cuda",
                                       *OPTIONS])
    assert result.exit_code == 0, result.output
    record = _record(out)
    assert record["device"] == "cuda" and record["precision"] == "int8"
    assert record["eval_loss"]["after"] < record["eval_loss"]["before"]
