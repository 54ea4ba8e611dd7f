"""Chinese time phrases → instants: ``明天晚上12点``, ``下周三 14:00``, ``一个半小时后``.

A phrase is read left to right as ``[date][part of day][clock]``: each reader takes what it
knows from the front and hands back the rest; a phrase is understood only when nothing is left.
Midnight is never noon: ``晚上12点`` is 00:00 of the next day, ``凌晨12点`` 00:00 of that day.
A date the phrase leaves open (``8点``, ``周五``, ``15号``, ``5月20日``) rolls forward to the next
one that is still ahead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from dateutil.relativedelta import relativedelta

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}
NUM = r"[0-9零〇一二两三四五六七八九十]+"
WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6}
_FULL_WIDTH = str.maketrans("０１２３４５６７８９：", "0123456789:")


def cn_number(text: str) -> int:
    """``七`` → 7, ``十二`` → 12, ``二十五`` → 25, ``零五`` → 5, ``30`` → 30; ValueError else."""
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        if "十" in text:
            tens, _, ones = text.partition("十")
            return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
        value = 0
        for ch in text:
            value = value * 10 + _CN_DIGITS[ch]
        return value
    except KeyError:
        raise ValueError(f"not a number: {text!r}") from None


# ---------------------------------------------------------------------------------------------
# "… later": 十分钟后, 一个半小时后, 1小时30分钟后, 三天后

_ELAPSED = {"秒": timedelta(seconds=1), "秒钟": timedelta(seconds=1), "分": timedelta(minutes=1),
            "分钟": timedelta(minutes=1), "小时": timedelta(hours=1), "钟头": timedelta(hours=1)}
_DAYS = {"天": 1, "日": 1, "周": 7, "星期": 7, "礼拜": 7}
_AMOUNT = re.compile(
    rf"(?P<n>{NUM}|半)(?:个)?(?P<half>半)?(?P<unit>秒钟?|分钟?|小时|钟头|天|日|周|星期|礼拜|月)"
    r"(?P<after>半)?"  # 一天半
)
_LATER = re.compile(r"^(?P<body>.+?)(?:以后|之后|后)$")


def _amount(body: str) -> tuple[relativedelta, timedelta] | None:
    """``三天`` → 3 calendar days, ``一个半小时`` → 1 h 30 min elapsed, ``一天半`` → a day and
    12 hours, ``半个月`` → 15 days;
    the whole text must be amounts, else None."""
    calendar, elapsed, pos = relativedelta(), timedelta(), 0
    for m in _AMOUNT.finditer(body):
        if m.start() != pos:
            return None
        pos = m.end()
        halves = 0.5 if m["half"] or m["after"] else 0.0
        count = 0.5 if m["n"] == "半" else cn_number(m["n"]) + halves
        unit = m["unit"]
        if unit in _ELAPSED:
            elapsed += _ELAPSED[unit] * count
        elif unit == "月":
            calendar += relativedelta(months=int(count), days=15 if count % 1 else 0)
        else:  # whole days keep the wall time, half a day is 12 hours
            days = count * _DAYS[unit]
            calendar += relativedelta(days=int(days))
            elapsed += timedelta(days=days % 1)
    if not pos or pos != len(body):
        return None
    return calendar, elapsed


def _later(text: str, now: datetime) -> datetime | None:
    """``三天后`` keeps the wall time three days on; ``90分钟后`` is 90 minutes of real time,
    across a DST change too."""
    m = _LATER.match(text)
    found = _amount(m["body"]) if m else None
    if found is None:
        return None
    calendar, elapsed = found
    return ((now + calendar).astimezone(timezone.utc) + elapsed).astimezone(now.tzinfo)


# ---------------------------------------------------------------------------------------------
# Dates: each reader returns the date, how to roll it forward if it is passed, and the rest


@dataclass(frozen=True)
class _Date:
    day: date
    roll: relativedelta | None  # None: the phrase named this exact date
    part: str | None = None  # 今晚, 明早 name a part of the day too
    rest: str = ""


_RELATIVE_DAYS = {"今天": 0, "今日": 0, "今儿": 0, "明天": 1, "明日": 1, "明儿": 1,
                  "后天": 2, "大后天": 3, "今晚": 0, "今早": 0, "明早": 1, "明晚": 1, "明晨": 1}
_PART_OF_RELATIVE = {"今晚": "晚上", "明晚": "晚上", "今早": "早上", "明早": "早上", "明晨": "早上"}
_RELATIVE_DAY = re.compile("^(" + "|".join(sorted(_RELATIVE_DAYS, key=len, reverse=True)) + ")")
_DAYS_LATER = re.compile(rf"^(?P<n>{NUM})天(?:以后|之后|后)")
_WEEKDAY = re.compile(
    r"^(?P<week>下下个?|下一?个?|本|这一?个?)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天七])")
_MONTH_DAY = re.compile(
    rf"^(?:(?P<y>\d{{4}})年|(?P<ry>今年|明年))?(?P<mo>{NUM})月(?P<d>{NUM})[日号]")
_DAY_OF_MONTH = re.compile(rf"^(?P<which>下下?个?月|本月|这个?月)?(?P<d>{NUM})[日号]")


def _relative_day(text: str, today: date) -> _Date | None:
    m = _RELATIVE_DAY.match(text)
    if m:
        word = m[1]
        return _Date(today + timedelta(days=_RELATIVE_DAYS[word]), None,
                     _PART_OF_RELATIVE.get(word), text[m.end():])
    m = _DAYS_LATER.match(text)
    if m and m.end() < len(text):  # "三天后" alone is an amount of time, read by _later
        return _Date(today + timedelta(days=cn_number(m["n"])), None, None, text[m.end():])
    return None


def _weekday(text: str, today: date) -> _Date | None:
    m = _WEEKDAY.match(text)
    if not m:
        return None
    week = (m["week"] or "").rstrip("个").replace("一", "")
    monday = today - timedelta(days=today.weekday())
    weeks_ahead = {"下下": 2, "下": 1}.get(week, 0)
    day = monday + timedelta(days=7 * weeks_ahead + WEEKDAYS[m["wd"]])
    named_week = bool(m["week"])
    return _Date(day, None if named_week else relativedelta(weeks=1), None, text[m.end():])


def _month_day(text: str, today: date) -> _Date | None:
    m = _MONTH_DAY.match(text)
    if not m:
        return None
    year = int(m["y"]) if m["y"] else today.year + (1 if m["ry"] == "明年" else 0)
    day = date(year, cn_number(m["mo"]), cn_number(m["d"]))
    explicit = bool(m["y"] or m["ry"])
    return _Date(day, None if explicit else relativedelta(years=1), None, text[m.end():])


def _day_of_month(text: str, today: date) -> _Date | None:
    m = _DAY_OF_MONTH.match(text)
    if not m:
        return None
    which = m["which"] or ""
    months_ahead = 2 if which.startswith("下下") else 1 if which.startswith("下") else 0
    first = today.replace(day=1) + relativedelta(months=months_ahead)
    day = first.replace(day=cn_number(m["d"]))
    return _Date(day, None if which else relativedelta(months=1), None, text[m.end():])


_DATE_READERS = (_relative_day, _weekday, _month_day, _day_of_month)


def _read_date(text: str, today: date) -> _Date | None:
    for reader in _DATE_READERS:
        found = reader(text, today)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# Parts of the day and the clock


@dataclass(frozen=True)
class _Part:
    default_hour: int  # when no clock is given (12 at night is midnight)
    evening: bool  # 1–11 o'clock means the afternoon/evening
    night: bool  # 12 o'clock and the small hours belong to the night that follows


_PARTS = {
    "凌晨": _Part(2, False, False), "清晨": _Part(6, False, False),
    "早晨": _Part(7, False, False), "早上": _Part(8, False, False),
    "上午": _Part(9, False, False), "中午": _Part(12, False, False),
    "午后": _Part(14, True, False), "下午": _Part(15, True, False),
    "傍晚": _Part(18, True, False), "晚上": _Part(20, True, True),
    "夜晚": _Part(21, True, True), "夜里": _Part(22, True, True),
    "深夜": _Part(23, True, True), "半夜": _Part(12, True, True),
}
_PART = re.compile("^(" + "|".join(sorted(_PARTS, key=len, reverse=True)) + ")")
_CLOCK = re.compile(
    rf"^(?P<h>{NUM})(?:点钟?|时|:)(?:(?P<m>半|一刻|三刻|{NUM})分?)?整?$"
)
_QUARTERS = {"半": 30, "一刻": 15, "三刻": 45}


def _read_part(text: str) -> tuple[str | None, str]:
    m = _PART.match(text)
    return (m[1], text[m.end():]) if m else (None, text)


def _read_clock(text: str) -> tuple[int, int] | None:
    """``7点45`` / ``七点三刻`` / ``19:30`` / ``十二点半`` → (hour, minute); None if not a clock."""
    m = _CLOCK.match(text)
    if not m:
        return None
    word = m["m"] or ""
    minute = _QUARTERS[word] if word in _QUARTERS else cn_number(word) if word else 0
    return cn_number(m["h"]), minute


def _hour_in_part(hour: int, part: str | None) -> tuple[int, int]:
    """A clock hour said with a part of the day → (hour 0–23, days to add).

    ``晚上12点`` → (0, +1); ``晚上1点`` → (1, +1); ``晚上8点`` → (20, 0); ``凌晨12点`` → (0, 0);
    ``中午12点`` → 12; ``中午1点`` → 13; ``下午3点`` → 15; ``24点`` → (0, +1).
    """
    if hour == 24:
        return 0, 1
    if part is None or hour > 12:
        return hour, 0
    spec = _PARTS[part]
    if spec.night and (hour == 12 or hour < 5):
        return hour % 12, 1
    if part == "凌晨":
        return hour % 12, 0
    if part == "中午":
        return (hour + 12, 0) if hour < 11 else (hour, 0)
    if spec.evening and hour < 12:
        return hour + 12, 0
    return hour, 0


# ---------------------------------------------------------------------------------------------
# The whole phrase


def parse_chinese(text: str, now: datetime) -> datetime | None:
    """A Chinese phrase relative to ``now`` (aware, in the user's zone) → an instant, or None."""
    s = re.sub(r"\s+", "", text).translate(_FULL_WIDTH)
    try:
        return _later(s, now) or _date_part_clock(s, now)
    except (ValueError, OverflowError):  # 13月40日, 25点 and friends
        return None


def _date_part_clock(s: str, now: datetime) -> datetime | None:
    today = now.date()
    found = _read_date(s, today)
    rest = found.rest if found else s
    rest = rest.removeprefix("的").removeprefix("在")
    part, rest = _read_part(rest)
    part = part or (found.part if found else None)
    clock = _read_clock(rest) if rest else None
    if rest and clock is None:
        return None
    if found is None and clock is None and part is None:
        return None
    hour, minute = clock if clock else ((_PARTS[part].default_hour, 0) if part else (9, 0))
    hour, extra_days = _hour_in_part(hour, part)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    day = found.day if found else today
    roll = found.roll if found else relativedelta(days=1)
    return _instant(day, extra_days, time(hour, minute), roll, now)


def _instant(day: date, extra_days: int, at: time, roll: relativedelta | None,
             now: datetime) -> datetime:
    """The instant; a date the phrase left open rolls forward until it is ahead of ``now``."""
    instant = datetime.combine(day + timedelta(days=extra_days), at, tzinfo=now.tzinfo)
    steps = 0
    while roll is not None and instant <= now:
        steps += 1
        instant = datetime.combine(day + roll * steps + timedelta(days=extra_days), at,
                                   tzinfo=now.tzinfo)
    return instant
