"""The template text: a short, natural Chinese reminder from the task and the context.

Always available, instant, and the fallback for every failure of the model path. The phrasing
is chosen deterministically from the request's seed, so the same occurrence reads the same.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from daemon.context import Context
from daemon.context.prompt import sanitize_task
from daemon.generation.base import Draft, Request

GREETINGS = {
    "凌晨": ["夜深了", "这么晚还没睡呀", "凌晨时分"],
    "早晨": ["早上好", "早安", "新的一天开始啦"],
    "上午": ["上午好", "上午时光正好", "嗨，上午好"],
    "中午": ["中午好", "午间时分", "到中午啦"],
    "下午": ["下午好", "午后时光", "嗨，下午好"],
    "傍晚": ["傍晚好", "太阳快下山啦", "傍晚时分"],
    "晚上": ["晚上好", "夜幕降临", "忙了一天辛苦啦"],
    "深夜": ["夜深了", "这么晚了", "深夜时分"],
}

WEATHER_TIPS = {
    "晴天": ["今天天气晴朗", "外面阳光不错"],
    "多云": ["外面多云", "今天云有点多"],
    "阴天": ["今天阴天", "天色有些阴沉"],
    "雾": ["外面有雾，出门注意安全", "起雾了，注意路况"],
    "霾": ["今天有霾，记得戴口罩", "空气不太好，出门戴好口罩"],
    "小雨": ["外面下着小雨，记得带伞", "有小雨，出门带把伞吧"],
    "雨天": ["外面在下雨，记得带伞", "下雨了，出门别忘了雨伞"],
    "大雨": ["外面雨很大，出门千万小心", "大雨天，记得带伞、注意安全"],
    "雷暴": ["有雷雨，尽量待在室内", "雷暴天气，出门多加小心"],
    "雪天": ["外面在下雪，注意保暖", "下雪了，路滑小心"],
}

DAY_TIPS = {
    "weekend": ["周末愉快，", "难得的周末，", "双休日也别忘了，"],
    "workday": ["", "工作日加油，", "忙碌的工作日里，"],
    "makeup": ["今天调休要上班，", "调休上班日辛苦啦，", "虽是周末但要调休上班，"],
    "holiday": ["{day}快乐！", "{day}假期里，", "祝你{day}快乐！"],
    "festival": ["{day}快乐！", "今天是{day}，", "{day}到啦，"],
    "period": ["{day}期间，", "{day}里也别忘了，", "{day}中，"],
    "personal": ["今天是你的{day}，", "{day}快乐！", "特别的{day}里，"],
}

# Days whose own words differ from the kind's: 清明 is for remembrance, not "快乐".
NAMED_DAY_TIPS = {
    "清明节": ["清明时节，", "清明假期里，"],
    "除夕": ["今天除夕，", "除夕团圆夜，", "除夕快乐！"],
}

SENTENCES = [
    "{greeting}！{day_tip}该{task}啦。{weather_tip}。",
    "{greeting}，{day_tip}别忘了{task}哦～{weather_tip}。",
    "{greeting}！{day_tip}提醒你：{task}。{weather_tip}。",
    "{greeting}～{day_tip}现在是{task}的时间啦。{weather_tip}。",
]


def template_text(task: str, context: Context, seed: int) -> str:
    """One friendly sentence for ``task`` in ``context``; the same seed gives the same text."""
    rng = random.Random(seed)
    weather_known = context.weather_source != "unknown"
    tips = WEATHER_TIPS.get(context.weather, [""]) if weather_known else [""]
    day_tips = NAMED_DAY_TIPS.get(context.day) or DAY_TIPS.get(context.day_kind, [""])
    day_tip = rng.choice(day_tips).format(day=context.day)
    text = rng.choice(SENTENCES).format(
        greeting=rng.choice(GREETINGS.get(context.part_of_day, ["你好"])),
        day_tip=day_tip,
        task=sanitize_task(task) or task.strip(),
        weather_tip=rng.choice(tips),
    )
    return text.replace("。。", "。").replace("～。", "～").replace("！。", "！").rstrip("，")


class TemplateGenerator:
    """The always-available generator."""

    name = "template"

    def generate(self, requests: Sequence[Request]) -> list[Draft]:
        return [
            Draft(text=template_text(r.task, r.context, r.seed), generator=self.name)
            for r in requests
        ]

    def close(self) -> None:
        """Nothing to release."""


def start_note(rings_at: datetime, starts_at: datetime) -> str:
    """When the event starts, said from the moment its alarm rings: ``14:00开始（还有15分钟）。``

    Added to every text (template or model) of a reminder that rings before its event;
    ``starts_at`` is in the event's zone.
    """
    local_ring = rings_at.astimezone(starts_at.tzinfo)
    days = (starts_at.date() - local_ring.date()).days
    day = {0: "", 1: "明天", 2: "后天"}.get(days, f"{starts_at.month}月{starts_at.day}日")
    return f"{day}{starts_at:%H:%M}开始（还有{_span(starts_at - rings_at)}）。"


def _span(left: timedelta) -> str:
    minutes = max(0, round(left.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes}分钟"
    hours, rest = divmod(minutes, 60)
    if hours >= 48:
        return f"{round(minutes / 1440)}天"
    return f"{hours}小时" + (f"{rest}分钟" if rest else "")
