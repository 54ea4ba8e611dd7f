"""What people type for times: durations (``1h30m``), instants (``明天早上8点``, ``in 10 minutes``,
ISO 8601) and recurrences (``weekdays``, RFC 5545 RRULE).

Chinese phrases are parsed here by a small grammar (dateparser misses most of them); English and
other languages go to dateparser; ISO 8601 is read exactly.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo

from dateutil import rrule as du_rrule

from daemon.errors import InputError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``1h30m``, ``2d``, ``500ms`` or plain seconds (``45``)."""
    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return timedelta(seconds=float(cleaned))
    if not cleaned or _DURATION.sub("", cleaned):
        raise InputError(f"cannot read duration {text!r} (try 90s, 10m or 1h30m)")
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    seconds = sum(float(n) * units[u] for n, u in _DURATION.findall(cleaned))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration for whole seconds: ``1h30m``, ``90s`` → ``1m30s``."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Instants

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUM = r"[0-9零〇一二两三四五六七八九十]+"
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6}
_PARTS = {  # part-of-day words → (default hour, shift to afternoon?)
    "凌晨": (2, False), "早上": (8, False), "早晨": (7, False), "清晨": (6, False),
    "上午": (9, False), "中午": (12, None), "午后": (14, True), "下午": (15, True),
    "傍晚": (18, True), "晚上": (20, True), "夜里": (22, True), "夜晚": (21, True),
    "深夜": (23, True), "今晚": (20, True), "明早": (8, False), "明晚": (20, True),
}


def cn_number(text: str) -> int:
    """``七`` → 7, ``十二`` → 12, ``二十五`` → 25, ``30`` → 30; ValueError otherwise."""
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


_CN_RELATIVE = re.compile(
    rf"^(?P<n>{_CN_NUM}|半)(?:个)?(?P<half>半)?(?P<unit>秒钟?|分钟?|小时|钟头|天|日|周|星期)(?:以后|之后|后)$"
)
_CN_DATE = re.compile(
    r"^(?:(?P<rel>大后天|后天|明天|明日|今天|今日|今晚|明早|明晚)"
    rf"|(?P<week>下下|下|本|这|这个|下个)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天七])"
    rf"|(?:(?P<y>\d{{4}})年)?(?P<mo>{_CN_NUM})月(?P<d>{_CN_NUM})[日号])"
)
_CN_TIME = re.compile(
    rf"(?P<part>凌晨|早上|早晨|清晨|上午|中午|午后|下午|傍晚|晚上|夜里|夜晚|深夜)?"
    rf"(?:(?P<h>{_CN_NUM})(?:点|时|:|：)(?P<m>半|一刻|三刻|{_CN_NUM})?(?:分)?)?$"
)


def _parse_chinese(text: str, now: datetime) -> datetime | None:
    """Parse a Chinese phrase relative to ``now`` (aware, in the user's zone), or None."""
    try:
        return _parse_chinese_parts(text, now)
    except (ValueError, OverflowError):
        return None


def _parse_chinese_parts(text: str, now: datetime) -> datetime | None:
    s = re.sub(r"\s+", "", text)
    m = _CN_RELATIVE.match(s)
    if m:
        n = 0.5 if m["n"] == "半" else cn_number(m["n"]) + (0.5 if m["half"] else 0)
        unit = m["unit"][0]
        seconds = {"秒": 1, "分": 60, "小": 3600, "钟": 3600, "天": 86400, "日": 86400,
                   "周": 604800, "星": 604800}[unit]
        return now + timedelta(seconds=n * seconds)
    day: date | None = None
    part_from_day: str | None = None
    m = _CN_DATE.match(s)
    rest = s
    if m:
        rest = s[m.end():]
        today = now.date()
        if m["rel"]:
            offsets = {"今天": 0, "今日": 0, "今晚": 0, "明天": 1, "明日": 1, "明早": 1,
                       "明晚": 1, "后天": 2, "大后天": 3}
            day = today + timedelta(days=offsets[m["rel"]])
            if m["rel"] in ("今晚", "明早", "明晚"):
                part_from_day = m["rel"]
        elif m["wd"]:
            target = _WEEKDAYS[m["wd"]]
            monday = today - timedelta(days=today.weekday())
            weeks = {"下": 1, "下个": 1, "下下": 2}.get(m["week"] or "", 0)
            day = monday + timedelta(days=7 * weeks + target)
            if not m["week"] and day < today:
                day += timedelta(days=7)
        else:
            year = int(m["y"]) if m["y"] else today.year
            try:
                day = date(year, cn_number(m["mo"]), cn_number(m["d"]))
            except ValueError:
                return None
            if not m["y"] and day < today:
                day = date(year + 1, day.month, day.day)
    if rest.startswith(("的", "在")):
        rest = rest[1:]
    t = _CN_TIME.match(rest) if rest else None
    if rest and not t:
        return None
    if day is None and (t is None or (not t["h"] and not t["part"])):
        return None
    part = (t["part"] if t else None) or part_from_day
    if t and t["h"]:
        hour = cn_number(t["h"])
        minute_word = t["m"] or ""
        minute = {"": 0, "半": 30, "一刻": 15, "三刻": 45}.get(minute_word)
        if minute is None:
            minute = cn_number(minute_word)
        if part and hour < 12:
            afternoon = _PARTS[part][1]
            if afternoon or (afternoon is None and hour < 6):
                hour += 12
            if part in ("凌晨",) and hour == 12:
                hour = 0
        if part in ("晚上", "今晚", "明晚", "深夜", "夜里") and hour == 24:
            hour = 0
    elif part:
        hour, minute = _PARTS[part][0], 0
    else:
        hour, minute = 9, 0  # a bare day ("明天") means its morning
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    if day is None:
        day = now.date()
        candidate = datetime.combine(day, time(hour, minute), tzinfo=now.tzinfo)
        if candidate <= now:  # "8点" after eight o'clock means tomorrow's
            day += timedelta(days=1)
    return datetime.combine(day, time(hour, minute), tzinfo=now.tzinfo)


def parse_when(text: str, now: datetime, zone: tzinfo) -> datetime:
    """Read an instant; naive readings are in ``zone``. Returns an aware datetime in ``zone``."""
    raw = text.strip()
    if not raw:
        raise InputError("empty time: give one like 'tomorrow 8:00', '明天早上8点' or ISO 8601")
    local_now = now.astimezone(zone)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed.astimezone(zone)
    if re.search(r"[\u4e00-\u9fff]", raw):
        found = _parse_chinese(raw, local_now)
        if found is not None:
            return found
    found = _dateparser(raw, local_now, zone)
    if found is None:
        raise InputError(
            f"cannot understand time {text!r} (try 'in 10 minutes', 'tomorrow 8:00', "
            "'明天早上8点' or 2026-12-01T08:00)"
        )
    return found


def _dateparser(text: str, local_now: datetime, zone: tzinfo) -> datetime | None:
    import dateparser  # slow to import; only needed for free-form phrases

    settings = {
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "future",
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    try:
        found = dateparser.parse(text, settings=settings)  # type: ignore[arg-type]
    except (ValueError, OverflowError, TypeError):
        return None
    if found is None:
        return None
    return found.replace(tzinfo=zone)


# ---------------------------------------------------------------------------------------------
# Recurrences

SHORTHANDS = {
    "daily": "FREQ=DAILY",
    "weekdays": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "weekends": "FREQ=WEEKLY;BYDAY=SA,SU",
    "weekly": "FREQ=WEEKLY",
    "monthly": "FREQ=MONTHLY",
    "yearly": "FREQ=YEARLY",
    "每天": "FREQ=DAILY",
    "工作日": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "周末": "FREQ=WEEKLY;BYDAY=SA,SU",
    "每周": "FREQ=WEEKLY",
    "每月": "FREQ=MONTHLY",
    "每年": "FREQ=YEARLY",
}
MIN_PERIOD = timedelta(minutes=5)


def parse_rule(text: str) -> str:
    """A shorthand or an RFC 5545 RRULE (with or without ``RRULE:``) → a normalised RRULE."""
    raw = text.strip()
    rule = SHORTHANDS.get(raw.lower(), raw)
    if rule.upper().startswith("RRULE:"):
        rule = rule[6:]
    rule = rule.upper().replace(" ", "")
    if not rule:
        raise InputError("empty recurrence rule")
    if "DTSTART" in rule or "\n" in rule:
        raise InputError("the recurrence rule must not contain DTSTART; use --at for the start")
    try:
        parsed = du_rrule.rrulestr(rule, dtstart=datetime(2000, 1, 1), forceset=False)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"invalid recurrence rule {text!r}: {exc}") from exc
    assert isinstance(parsed, du_rrule.rrule)
    freq, interval = parsed._freq, parsed._interval  # type: ignore[attr-defined]
    period = {du_rrule.SECONDLY: timedelta(seconds=interval),
              du_rrule.MINUTELY: timedelta(minutes=interval)}.get(freq)
    if period is not None and period < MIN_PERIOD:
        raise InputError(f"recurrence {text!r} is too frequent (at most every 5 minutes)")
    return rule
