"""The prompt, exactly as the character LoRA was trained on it.

``human:天气:{weather},日期:{day},时间:{part},提示我去做:{task}assistant:``; the model ends its
answer with ``end``. The task is sanitised so that it cannot break out of its field.
"""

from __future__ import annotations

import re

from daemon.config_values import PROMPT_SEPARATORS
from daemon.context import Context

PROMPT_FORMAT = "human:天气:{weather},日期:{day},时间:{part},提示我去做:{task}assistant:"
END_MARKER = "end"
MAX_TASK_CHARS = 60

_MARKERS = re.compile(r"human\s*[:：]|assistant\s*[:：]|提示我去做\s*[:：]", re.IGNORECASE)
_SEPARATORS = PROMPT_SEPARATORS
_CLOCK = re.compile(r"(?<!\d)(\d{1,2})\s*[:：]\s*(\d{2})(?!\d)")
# The format as a pattern: a training line is this prompt, then the answer (see parse_prompt).
_FIELDS = {"weather": r"(?P<weather>[^,]*)", "part": r"(?P<part>[^,]*)",
           "day": r"(?P<day>[^,]*)", "task": r"(?P<task>.*?)"}
_PROMPT = re.compile(re.escape(PROMPT_FORMAT).replace(r"\{", "{").replace(r"\}", "}")
                     .format(**_FIELDS), re.DOTALL)


def sanitize_task(task: str) -> str:
    """Strip what could break the format: role markers, separators, control characters.

    A clock time keeps its meaning (``15:30`` → ``15点30``); the result is at most
    ``MAX_TASK_CHARS`` characters.
    """
    cleaned = _MARKERS.sub(" ", task)
    cleaned = _CLOCK.sub(r"\1点\2", cleaned)
    cleaned = _SEPARATORS.sub(" ", cleaned)
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    return cleaned[:MAX_TASK_CHARS].strip()


def format_prompt(weather: str, day: str, part: str, task: str) -> str:
    """The training-format prompt for these words and task."""
    return PROMPT_FORMAT.format(weather=weather, day=day, part=part, task=sanitize_task(task))


def build_prompt(context: Context, task: str) -> str:
    """The training-format prompt for this context and task."""
    return format_prompt(context.weather, context.day, context.part_of_day, task)


def parse_prompt(text: str) -> tuple[dict[str, str], str] | None:
    """``text`` that starts with a prompt → (its fields, the rest after ``assistant:``)."""
    found = _PROMPT.match(text)
    if found is None:
        return None
    return found.groupdict(), text[found.end():]
