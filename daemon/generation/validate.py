"""Checks every model text before it is used: a LoRA this small can drift.

``clean`` cuts the raw output at the training end marker; ``problems`` returns the reasons a
text cannot be used (empty when it can): it must name the task (verbatim or by its key
words), be mostly Chinese, be at most 80 characters, not echo the prompt or the role markers,
not loop, and hold no URL.
"""

from __future__ import annotations

import re

from daemon.context.prompt import END_MARKER, sanitize_task

MAX_CHARS = 80
MIN_CHINESE = 0.6  # share of Chinese characters among the letters (the task's words excluded)
_CJK = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_LETTER = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbfA-Za-z0-9]")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]+")
_WORD = re.compile(r"[A-Za-z0-9]{2,}")
# Words that say nothing about which task it is (去超市买牛奶 → 超市, 买牛奶).
_FILLER = re.compile(r"记得|提醒我|提醒|一下|[去要把的了请和跟给帮我该]")
_ECHO = re.compile(r"human\s*[:：]|assistant\s*[:：]|提示我去做|天气\s*[:：]|日期\s*[:：]"
                   r"|时间\s*[:：]", re.IGNORECASE)
_URL = re.compile(r"https?://|www\.|\b[a-z0-9-]+\.(?:com|cn|net|org|io)\b", re.IGNORECASE)
_LOOP = re.compile(r"(.)\1{4,}|(.{2,12}?)\2{2,}", re.DOTALL)


def clean(raw: str) -> str:
    """The text the model meant: up to the end marker, stripped."""
    return raw.split(END_MARKER, 1)[0].strip()


def key_words(task: str) -> list[str]:
    """What identifies the task: its ASCII words and the character pairs of its Chinese."""
    task = sanitize_task(task)
    words = [w.lower() for w in _WORD.findall(task)]
    for run in _CJK_RUN.findall(_FILLER.sub(" ", task)):
        words += [run] if len(run) < 3 else [run[i : i + 2] for i in range(len(run) - 1)]
    return words


def names_task(text: str, task: str) -> bool:
    """The task appears verbatim, or at least half of its key words do."""
    task = sanitize_task(task)
    if not task or task.lower() in text.lower():
        return True
    words = key_words(task)
    found = sum(1 for w in words if w in text.lower())
    return bool(words) and found * 2 >= len(words)


def chinese_share(text: str, task: str = "") -> float:
    """Chinese characters among letters and digits, not counting the task's own words."""
    for word in _WORD.findall(sanitize_task(task)):
        text = re.sub(re.escape(word), " ", text, flags=re.IGNORECASE)
    letters = _LETTER.findall(text)
    return len(_CJK.findall(text)) / len(letters) if letters else 0.0


def problems(text: str, task: str, prompt: str = "") -> list[str]:
    """Why ``text`` (already cleaned) cannot be used as the reminder; empty when it can."""
    if not text:
        return ["empty"]
    reasons = []
    if not names_task(text, task):
        reasons.append("does not name the task")
    share = chinese_share(text, task)
    if share < MIN_CHINESE:
        reasons.append(f"not mostly Chinese ({share:.0%})")
    if len(text) > MAX_CHARS:
        reasons.append(f"too long ({len(text)} > {MAX_CHARS} characters)")
    if _ECHO.search(text) or (prompt and prompt[:20] in text):
        reasons.append("echoes the prompt")
    loop = _LOOP.search(text)
    if loop:
        reasons.append(f"repetition loop ({loop.group(0)[:12]!r})")
    if _URL.search(text):
        reasons.append("contains a URL")
    return reasons
