"""What people type for ``--every``: Chinese and English phrases, or an RFC 5545 RRULE.

``parse_every("每周一三五")`` → ``Repeat("FREQ=WEEKLY;BYDAY=MO,WE,FR")``. Official working days
(``workdays``, ``工作日``, ``每个工作日``, ``法定工作日``) are a daily rule with the day filter
``workdays``: the planner keeps only the configured country's working days (statutory holidays
skipped, 调休 weekend workdays included). ``weekdays`` / ``周一到周五`` stays Monday–Friday.

Each reader takes the normalised phrase and returns a Repeat or None; the first that
understands the phrase wins, an unknown phrase gets one line with examples that work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from daemon.chinese_time import NUM, WEEKDAYS, cn_number
from daemon.english_time import DAY_NAMES, MONTH_NAMES, one_of
from daemon.errors import InputError
from daemon.planning import WORKDAYS
from daemon.timeparse import SHORTHANDS, parse_rule

EXAMPLES = "每周一三五, every 2 weeks, workdays"
_BYDAY = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True)
class Repeat:
    """A recurrence: an RRULE (without ``RRULE:``) and an optional day filter."""

    rrule: str
    day_filter: str | None = None  # WORKDAYS: only the official working days


def parse_every(text: str) -> Repeat:
    """A recurrence phrase (Chinese or English) or an RRULE → a validated Repeat."""
    raw = text.strip()
    if not raw:
        raise InputError(f"empty recurrence: try {EXAMPLES}")
    if "=" in raw:
        return Repeat(parse_rule(raw))
    phrase = re.sub(r"\s+", " ", raw.lower().translate(_FULL_WIDTH))
    for reader in _READERS:
        try:
            found = reader(phrase)
        except ValueError:  # a numeral that is none (十十); InputError is not a ValueError
            break
        if found is not None:
            return Repeat(parse_rule(found.rrule), found.day_filter)
    raise InputError(f"unknown recurrence {text!r}: try {EXAMPLES} (or an RRULE)")


_FULL_WIDTH = str.maketrans("０１２３４５６７８９，、", "0123456789,,")


# ---------------------------------------------------------------------------------------------
# Whole words

_WORDS = {  # the first word of each is how describe_every names the rule
    SHORTHANDS["weekdays"]: ("weekdays", "every weekday", "monday to friday", "mon-fri",
                             "周一到周五", "周一至周五", "每周一到周五", "每周一至周五",
                             "星期一到星期五"),
    SHORTHANDS["weekends"]: ("weekends", "every weekend", "周末", "每周末", "每个周末", "双休日"),
    SHORTHANDS["daily"]: ("daily", "every day", "each day", "每天", "每日", "天天", "每一天"),
    SHORTHANDS["weekly"]: ("weekly", "every week", "每周", "每星期", "每个星期", "每礼拜"),
    SHORTHANDS["monthly"]: ("monthly", "every month", "每月", "每个月"),
    SHORTHANDS["yearly"]: ("yearly", "annually", "every year", "每年"),
    "FREQ=HOURLY": ("hourly", "every hour", "每小时", "每个小时"),
}
_WORKDAY_WORDS = ("workdays", "every workday", "working days", "every working day",
                  "工作日", "每个工作日", "每工作日", "法定工作日", "每个法定工作日")


def _word(phrase: str) -> Repeat | None:
    if phrase in _WORKDAY_WORDS:
        return Repeat("FREQ=DAILY", WORKDAYS)
    for rule, words in _WORDS.items():
        if phrase in words:
            return Repeat(rule)
    return None


# ---------------------------------------------------------------------------------------------
# Chinese

_CN_FREQ = {"分钟": "MINUTELY", "小时": "HOURLY", "天": "DAILY", "日": "DAILY",
            "周": "WEEKLY", "星期": "WEEKLY", "礼拜": "WEEKLY", "月": "MONTHLY", "年": "YEARLY"}
_CN_INTERVAL = re.compile(
    rf"^(?:每隔|每|隔)(?P<n>{NUM}|半)?个?(?P<unit>分钟|小时|天|日|周|星期|礼拜|月|年)$")
_CN_WEEK_DAYS = re.compile(
    rf"^(?:每个?|每隔(?P<skip>{NUM})个?|隔|每(?P<n>{NUM})个?)?(?:周|星期|礼拜)的?(?P<days>.+)$")
_CN_DAY_RANGE = re.compile(
    r"(?P<a>[一二三四五六日天七])(?:到|至)(?:周|星期|礼拜)?(?P<b>[一二三四五六日天七])")
_CN_DAY_LIST = re.compile(r"^(?:[一二三四五六日天七]|[,和及与跟]|周|星期|礼拜)+$")
_CN_MONTH_DAYS = re.compile(rf"^每个?月的?(?P<days>(?:{NUM}[号日]?[,和及]?)+[号日])$")
_CN_MONTH_END = re.compile(r"^每个?月的?(?:最后一天|底|月底|最后1天)$")
_CN_MONTH_NTH = re.compile(
    r"^每个?月的?(?:第(?P<n>[一二三四1-4])|(?P<last>最后一?))个?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天七])$")
_CN_YEAR_DAY = re.compile(rf"^每年的?(?P<mo>{NUM})月(?P<d>{NUM})[日号]$")


def _cn_interval(phrase: str) -> Repeat | None:
    m = _CN_INTERVAL.match(phrase)
    if not m:
        return None
    if m["n"] == "半" and m["unit"] == "小时":
        return Repeat("FREQ=MINUTELY;INTERVAL=30")  # 每半小时
    n = cn_number(m["n"]) if m["n"] else 1
    if phrase.startswith(("每隔", "隔")) and n == 1:
        n = 2  # 隔天, 每隔一天: every other day
    return Repeat(_with_interval(f"FREQ={_CN_FREQ[m['unit']]}", n))


def _cn_week_days(phrase: str) -> Repeat | None:
    """每周一三五, 每周二和周四, 周一、周三, 每两周的周一, 隔周周五."""
    m = _CN_WEEK_DAYS.match(phrase)
    listed = _CN_DAY_RANGE.sub(_day_range, m["days"]) if m else ""
    if not m or not _CN_DAY_LIST.match(listed):
        return None
    days = [ch for ch in listed if ch in WEEKDAYS]
    if not days:
        return None
    byday = ",".join(_BYDAY[i] for i in sorted({WEEKDAYS[ch] for ch in days}))
    interval = cn_number(m["n"]) if m["n"] else 2 if m["skip"] or phrase.startswith("隔") else 1
    return Repeat(_with_interval("FREQ=WEEKLY", interval) + f";BYDAY={byday}")


def _day_range(m: re.Match[str]) -> str:
    """``一到三`` → ``一二三`` (周一到周三, 周一至周三)."""
    first, last = WEEKDAYS[m["a"]], WEEKDAYS[m["b"]]
    return "".join("一二三四五六日"[i] for i in range(first, last + 1))


def _cn_month(phrase: str) -> Repeat | None:
    """每月15号, 每月1号和15号, 每月最后一天, 每月第一个周一, 每月最后一个周五."""
    if _CN_MONTH_END.match(phrase):
        return Repeat("FREQ=MONTHLY;BYMONTHDAY=-1")
    m = _CN_MONTH_DAYS.match(phrase)
    if m:
        days = sorted({_monthday(cn_number(d)) for d in re.findall(NUM, m["days"])})
        return Repeat("FREQ=MONTHLY;BYMONTHDAY=" + ",".join(map(str, days)))
    m = _CN_MONTH_NTH.match(phrase)
    if m:
        nth = -1 if m["last"] else cn_number(m["n"])
        return Repeat(f"FREQ=MONTHLY;BYDAY={nth}{_BYDAY[WEEKDAYS[m['wd']]]}")
    return None


def _cn_year_day(phrase: str) -> Repeat | None:
    m = _CN_YEAR_DAY.match(phrase)
    if not m:
        return None
    return Repeat(f"FREQ=YEARLY;BYMONTH={cn_number(m['mo'])};BYMONTHDAY={cn_number(m['d'])}")


# ---------------------------------------------------------------------------------------------
# English

_EN_DAY = one_of(DAY_NAMES) + "s?"
_EN_FREQ = {"minute": "MINUTELY", "hour": "HOURLY", "day": "DAILY", "week": "WEEKLY",
            "month": "MONTHLY", "year": "YEARLY"}
_EN_INTERVAL = re.compile(
    r"^every (?:(?P<n>\d+)|(?P<other>other)) (?P<unit>minute|hour|day|week|month|year)s?$")
_EN_WEEK_DAYS = re.compile(
    rf"^(?:every|each|on) (?:(?P<other>other) |(?P<n>\d+) weeks? on )?"
    rf"(?P<days>{_EN_DAY}(?:(?:,|, and| and| &|/| or)? ?{_EN_DAY})*)$")
_EN_MONTH_DAY = re.compile(
    r"^(?:every month|monthly|each month) on the (?P<d>\d{1,2})(?:st|nd|rd|th)?$"
    r"|^(?:on )?(?:every|each) (?P<d2>\d{1,2})(?:st|nd|rd|th)(?: of the month| of every month)?$")
_EN_MONTH_END = re.compile(
    r"^(?:every|each) (?:last day of the month|month on the last day|month end)$"
    r"|^(?:on )?the last day of (?:every|each) month$|^monthly on the last day$")
_EN_MONTH_NTH = re.compile(
    rf"^(?:every|each|on the) (?P<nth>first|second|third|fourth|last|1st|2nd|3rd|4th) "
    rf"(?P<day>{_EN_DAY})(?: of (?:the|every|each) month)?$")
_EN_YEAR_DAY = re.compile(
    r"^(?:every year on|yearly on|annually on|every|each) "
    r"(?P<mo>[a-z]{3})[a-z]*\.? (?P<d>\d{1,2})(?:st|nd|rd|th)?$")
_NTH = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4,
        "4th": 4, "last": -1}


def _en_day(word: str) -> int:
    """``monday``, ``mon``, ``mondays`` → 0."""
    return DAY_NAMES.get(word, DAY_NAMES.get(word.removesuffix("s"), -1))


def _en_interval(phrase: str) -> Repeat | None:
    m = _EN_INTERVAL.match(phrase)
    if not m:
        return None
    n = 2 if m["other"] else int(m["n"])
    return Repeat(_with_interval(f"FREQ={_EN_FREQ[m['unit']]}", n))


def _en_week_days(phrase: str) -> Repeat | None:
    m = _EN_WEEK_DAYS.match(phrase)
    if not m:
        return None
    days = sorted({_en_day(d) for d in re.findall(_EN_DAY, m["days"])})
    interval = 2 if m["other"] else int(m["n"]) if m["n"] else 1
    byday = ",".join(_BYDAY[i] for i in days)
    return Repeat(_with_interval("FREQ=WEEKLY", interval) + f";BYDAY={byday}")


def _en_month(phrase: str) -> Repeat | None:
    if _EN_MONTH_END.match(phrase):
        return Repeat("FREQ=MONTHLY;BYMONTHDAY=-1")
    m = _EN_MONTH_DAY.match(phrase)
    if m:
        return Repeat(f"FREQ=MONTHLY;BYMONTHDAY={_monthday(int(m['d'] or m['d2']))}")
    m = _EN_MONTH_NTH.match(phrase)
    if m:
        return Repeat(f"FREQ=MONTHLY;BYDAY={_NTH[m['nth']]}{_BYDAY[_en_day(m['day'])]}")
    return None


def _en_year_day(phrase: str) -> Repeat | None:
    m = _EN_YEAR_DAY.match(phrase)
    if not m or m["mo"] not in MONTH_NAMES:
        return None
    return Repeat(f"FREQ=YEARLY;BYMONTH={MONTH_NAMES[m['mo']]};BYMONTHDAY={int(m['d'])}")


def _monthday(n: int) -> int:
    if not 1 <= n <= 31:
        raise InputError(f"a month has no day {n}: give 1 to 31 (or 每月最后一天)")
    return n


def _with_interval(rule: str, n: int) -> str:
    if n < 1:
        raise InputError(f"a recurrence repeats at least every 1, not {n}")
    return rule if n == 1 else f"{rule};INTERVAL={n}"


_READERS: tuple[Callable[[str], Repeat | None], ...] = (
    _word, _cn_interval, _cn_week_days, _cn_month, _cn_year_day,
    _en_interval, _en_week_days, _en_month, _en_year_day,
)


def describe_every(rrule: str | None, day_filter: str | None) -> str:
    """How ``chime show`` and ``chime add`` name a recurrence: the phrase people know for the
    common ones (``workdays``, ``weekdays``…), else the RRULE."""
    if rrule is None:
        return "once"
    if day_filter == WORKDAYS:
        return "workdays (official calendar)"
    for name, words in _WORDS.items():
        if rrule == name:
            return words[0]
    return rrule
