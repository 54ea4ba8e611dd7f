"""Training data for a character: read and check every line before anything trains. No torch.

A line is ``{"text": "human:天气:…,日期:…,时间:…,提示我去做:…assistant:<answer>end"}`` (the
seed's format). A line is bad when it is not JSON, is not in the exact prompt format (words
the context cannot produce included), lacks the ``end`` marker, or its answer fails the same
delivery checks that guard every reminder (``validate.problems``).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from daemon.context.daypart import PARTS
from daemon.context.prompt import END_MARKER, format_prompt, parse_prompt, sanitize_task
from daemon.context.weather import WEATHER_WORDS
from daemon.errors import InputError
from daemon.generation import validate

FORMAT_HINT = 'expected {"text": "human:天气:…,日期:…,时间:…,提示我去做:…assistant:…end"}'


@dataclass(frozen=True)
class Example:
    """One good training line: the prompt, the answer (without ``end``) and the task."""

    line: int
    prompt: str
    answer: str
    task: str


@dataclass
class DataSet:
    """A checked data file: its good examples and every bad line with the reason."""

    path: Path
    sha256: str
    lines: int  # non-blank lines
    examples: list[Example] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)


def check_line(number: int, raw: str) -> Example | str:
    """The example on this line, or why it cannot be trained on."""
    try:
        record = json.loads(raw)
    except ValueError as exc:
        return f"not JSON ({exc})"
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        if isinstance(record, dict) and isinstance(record.get("prompt"), str):
            return 'a prompt without an answer: have a model answer it, then write {"text": …}'
        return f"no text: {FORMAT_HINT}"
    text = record["text"].rstrip()
    parsed = parse_prompt(text)
    if parsed is None:
        return f"wrong prompt format: {FORMAT_HINT}"
    fields, rest = parsed
    if fields["weather"] not in WEATHER_WORDS:
        return f"wrong prompt format: unknown weather word {fields['weather']!r}"
    if fields["part"] not in PARTS:
        return f"wrong prompt format: unknown part of the day {fields['part']!r}"
    if not fields["day"] or sanitize_task(fields["day"]) != fields["day"]:
        return f"wrong prompt format: the day word {fields['day']!r} cannot be in a prompt"
    task = fields["task"]
    if not task or sanitize_task(task) != task:
        return f"wrong prompt format: the task {task!r} is not as chime would write it"
    if not rest.endswith(END_MARKER):
        return f"missing the end marker {END_MARKER!r} after the answer"
    answer = rest[: -len(END_MARKER)]
    if END_MARKER in answer:
        return f"{END_MARKER!r} inside the answer: the reminder would be cut there"
    prompt = format_prompt(fields["weather"], fields["day"], fields["part"], task)
    reasons = validate.problems(validate.clean(answer), task, prompt)
    if reasons:
        return "the answer fails the delivery checks: " + "; ".join(reasons)
    return Example(number, prompt, answer, task)


def read(path: Path) -> DataSet:
    """Check every line of ``path`` (blank lines are skipped)."""
    try:
        body = path.read_bytes()
        text = body.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    data = DataSet(path, hashlib.sha256(body).hexdigest(), 0)
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        data.lines += 1
        found = check_line(number, raw)
        if isinstance(found, Example):
            data.examples.append(found)
        else:
            data.bad.append((number, found))
    return data


def split(examples: list[Example], share: float, seed: int) -> tuple[list[Example],
                                                                       list[Example]]:
    """(train, held out): ``share`` of the examples held out (at least one when > 0)."""
    if not 0 <= share <= 0.5:
        raise InputError("--eval must be between 0 and 0.5")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = max(1, round(len(examples) * share)) if share > 0 else 0
    if len(examples) - held < 1:
        raise InputError(f"too few good examples to train on ({len(examples)})")
    held_out = sorted(order[:held])
    keep = sorted(order[held:])
    return [examples[i] for i in keep], [examples[i] for i in held_out]
