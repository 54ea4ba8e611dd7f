"""The prompt grid for training a character (``chime model prompts``): no torch.

Every prompt is in the exact training format (``daemon.context.prompt``). The words are the
ones the context can produce — imported from their owners, never copied: the weather words
(``context.weather``), the day words (``context.days``: holidays and festivals, 调休, 双休日,
工作日; plus the periods and personal days of ``[days]`` and a few common examples), and the
eight parts of the day (``context.daypart``). Each dimension is dealt from reshuffled decks,
so every word appears about equally often (工作日 and 双休日 more, as in real life) and the
same ``seed`` gives the same grid.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from daemon.context.daypart import PARTS
from daemon.context.days import (
    CN_WORDS,
    EVE_WORD,
    LUNAR_FESTIVALS,
    MAKEUP_WORD,
    WEEKEND_WORD,
    WORKDAY_WORD,
)
from daemon.context.prompt import MAX_TASK_CHARS, format_prompt, sanitize_task
from daemon.context.weather import WEATHER_WORDS
from daemon.errors import InputError

# Ordinary days are most days: in each deck of day words they come this many times.
ORDINARY_DAYS = {WORKDAY_WORD: 6, WEEKEND_WORD: 4, MAKEUP_WORD: 2}
# Examples of user periods and personal days (``[days] periods / personal``): a character
# trained with them knows the kind of word; the user's own names are added to them.
EXAMPLE_PERIODS = ("寒假", "暑假", "春假", "生日", "结婚纪念日")

TASKS = (
    "喝水", "吃药", "吃早饭", "吃午饭", "做晚饭", "去超市买菜", "买牛奶", "买咖啡", "取快递",
    "寄快递", "交房租", "交电费", "还信用卡", "倒垃圾", "洗衣服", "收衣服", "打扫房间", "浇花",
    "喂猫", "遛狗", "给妈妈打电话", "给爸爸打电话", "看望奶奶", "回复邮件", "开会", "写周报",
    "提交报告", "准备演讲", "复习功课", "做作业", "背单词", "练琴", "读书", "写日记", "跑步",
    "去健身房", "做瑜伽", "散步", "站起来活动一下", "让眼睛休息一下", "睡午觉", "早点睡觉",
    "起床", "出门上班", "送孩子上学", "接孩子放学", "去医院复查", "预约牙医", "量血压",
    "给手机充电", "备份照片", "订机票", "收拾行李", "去银行", "买生日礼物", "给朋友发祝福",
    "取干洗的衣服", "冥想", "给 Tom 回电话", "交 PPT", "开 Zoom 周会", "更新 iPhone 系统",
)


def day_words(user_days: Iterable[str] = ()) -> list[str]:
    """The day words the context can produce, once each (the grid repeats ordinary ones)."""
    holidays = [*CN_WORDS.values(), EVE_WORD, *LUNAR_FESTIVALS.values()]
    words = [*ORDINARY_DAYS, *holidays, *EXAMPLE_PERIODS, *user_days]
    return list(dict.fromkeys(words))


def read_tasks(path: Path) -> list[str]:
    """The tasks in ``path``, one a line (blank lines and ``#`` comments skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the task list {path}: {exc}") from exc
    tasks: list[str] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        task = sanitize_task(text)
        if not task:
            raise InputError(f"{path} line {number}: the task is empty once made prompt-safe")
        if len(text) > MAX_TASK_CHARS:
            raise InputError(f"{path} line {number}: longer than {MAX_TASK_CHARS} characters")
        tasks.append(task)
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise InputError(f"{path} holds no tasks")
    return tasks


def _deal(deck: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """``count`` cards from ``deck``, reshuffled each time it runs out (balanced)."""
    out: list[str] = []
    while len(out) < count:
        cards = list(deck)
        rng.shuffle(cards)
        out += cards
    return out[:count]


def grid(count: int, seed: int, tasks: Sequence[str] = TASKS,
         user_days: Iterable[str] = ()) -> list[str]:
    """``count`` training-format prompts, reproducible from ``seed``, none twice if avoidable."""
    if count < 1:
        raise InputError("--count must be at least 1")
    rng = random.Random(seed)
    days = day_words(user_days)
    day_deck = [w for w in days for _ in range(ORDINARY_DAYS.get(w, 1))]
    weathers = _deal(WEATHER_WORDS, count, rng)
    day_list = _deal(day_deck, count, rng)
    parts = _deal(PARTS, count, rng)
    task_list = _deal(tasks, count, rng)
    seen: set[str] = set()
    prompts = []
    for i in range(count):
        for _ in range(20):  # a repeat: swap in a later task (keeps the balance)
            prompt = format_prompt(weathers[i], day_list[i], parts[i], task_list[i])
            if prompt not in seen:
                break
            j = rng.randrange(i, count)
            task_list[i], task_list[j] = task_list[j], task_list[i]
        seen.add(prompt)
        prompts.append(prompt)
    return prompts
