"""``chime model prompts`` (the training grid) and the checks of training lines: no torch."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import main
from daemon.context.daypart import PARTS
from daemon.context.days import CN_WORDS, LUNAR_FESTIVALS, MAKEUP_WORD
from daemon.context.prompt import format_prompt, parse_prompt
from daemon.context.weather import WEATHER_WORDS
from daemon.errors import InputError
from daemon.generation import dataset, prompts


def _fields(lines: list[str]) -> list[dict[str, str]]:
    out = []
    for line in lines:
        parsed = parse_prompt(json.loads(line)["prompt"])
        assert parsed is not None and parsed[1] == "", line
        out.append(parsed[0])
    return out


def test_grid_covers_every_word_balanced_and_reproducible(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[days]\nperiods = ["考试周 06-20..06-30"]\npersonal = ["生日 05-20"]\n',
                      encoding="utf-8")
    runner = CliRunner()
    args = ["--config", str(config), "model", "prompts", "--count", "1000", "--seed", "1"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1000 and len(set(lines)) == 1000
    assert runner.invoke(main, args).output == result.output
    assert runner.invoke(main, [*args[:-1], "2"]).output != result.output
    fields = _fields(lines)
    weathers = Counter(f["weather"] for f in fields)
    parts = Counter(f["part"] for f in fields)
    days = Counter(f["day"] for f in fields)
    assert set(weathers) == set(WEATHER_WORDS) and max(weathers.values()) - min(
        weathers.values()) <= 1
    assert set(parts) == set(PARTS) and max(parts.values()) - min(parts.values()) <= 1
    expected_days = {*CN_WORDS.values(), *LUNAR_FESTIVALS.values(), "除夕", MAKEUP_WORD,
                     "双休日", "工作日", "暑假", "考试周", "生日"}
    assert expected_days <= set(days)
    assert days["工作日"] > 4 * days["春节"] and days["双休日"] > 2 * days["春节"]
    assert set(f["task"] for f in fields) == set(prompts.TASKS)


def test_own_tasks_and_bad_task_files(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("# mine\n给奶奶打电话\n\n15:30 开会\n给奶奶打电话\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["model", "prompts", "--count", "20", "--tasks",
                                       str(tasks)])
    assert result.exit_code == 0, result.output
    assert {f["task"] for f in _fields(result.output.splitlines())} == {"给奶奶打电话",
                                                                        "15点30 开会"}
    tasks.write_text("喝水\n:::\n", encoding="utf-8")
    bad = CliRunner().invoke(main, ["model", "prompts", "--tasks", str(tasks)])
    assert bad.exit_code == 2 and "line 2" in bad.output
    with pytest.raises(InputError, match="at least 1"):
        prompts.grid(0, 1)


def test_training_lines_are_checked_with_reasons() -> None:
    prompt = format_prompt("雷暴", "中秋节", "深夜", "给 Tom 回电话")
    good = dataset.check_line(1, json.dumps({"text": prompt + "打雷啦，快给 Tom 回电话吧！end"},
                                            ensure_ascii=False))
    assert isinstance(good, dataset.Example) and good.task == "给 Tom 回电话"
    assert good.answer == "打雷啦，快给 Tom 回电话吧！" and good.prompt == prompt

    def reason(text: str) -> str:
        found = dataset.check_line(1, json.dumps({"text": text}, ensure_ascii=False))
        assert isinstance(found, str)
        return found

    assert "unknown part of the day" in reason(prompt.replace("深夜", "半夜") + "回电话end")
    assert "the task" in reason(prompt.replace("给 Tom 回电话", "a,b") + "a b 啦end")
    assert "inside the answer" in reason(prompt + "weekend 给 Tom 回电话end")
    assert "not mostly Chinese" in reason(prompt + "call Tom back now please 给 Tom 回电话end")
    assert "echoes the prompt" in reason(prompt + "human: 给 Tom 回电话end")
    assert "repetition loop" in reason(prompt + "给 Tom 回电话哈哈哈哈哈哈end")


def test_split_is_reproducible_and_holds_out_a_share() -> None:
    examples = [dataset.Example(i, f"p{i}", "a", "t") for i in range(100)]
    train, held = dataset.split(examples, 0.05, 1)
    assert len(held) == 5 and len(train) == 95 and not {e.line for e in held} & {
        e.line for e in train}
    assert dataset.split(examples, 0.05, 1) == (train, held)
    assert dataset.split(examples, 0.05, 2)[1] != held
    with pytest.raises(InputError):
        dataset.split(examples, 0.9, 1)


def test_train_refuses_before_loading_anything(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    text = format_prompt("晴天", "工作日", "上午", "喝水") + "现在该喝水啦！end"
    data.write_text(json.dumps({"text": text}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["model", "train", str(data), "--out", str(out)]
    no_base = CliRunner().invoke(main, args)
    assert no_base.exit_code == 2 and "chime model pull --only base" in no_base.output
    no_checkpoint = CliRunner().invoke(main, [*args, "--resume"])
    assert no_checkpoint.exit_code == 2 and "no checkpoint to resume from" in no_checkpoint.output
    (out / "notes.txt").parent.mkdir()
    (out / "notes.txt").write_text("mine")
    busy = CliRunner().invoke(main, args)
    assert busy.exit_code == 2 and "not an empty directory" in busy.output
    assert (out / "notes.txt").read_text() == "mine"
