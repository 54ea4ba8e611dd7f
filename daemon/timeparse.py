"""What people type for times: durations (``1h30m``), instants (``明天早上8点``, ``in 10 minutes``,
ISO 8601), the line that confirms an instant, and RFC 5545 RRULEs.

Chinese phrases are read by :mod:`daemon.chinese_time` (dateparser and jionlp miss many: see
bench/time_phrases.py and docs/benchmarks.md), the English people type most by
:mod:`daemon.english_time`, other English by dateparser; ISO 8601 is read exactly.
Recurrence phrases (``每周一三五``, ``every 2 weeks``) live in :mod:`daemon.recurrence`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

from dateutil import rrule as du_rrule

from daemon.english_time import DAY_DEFAULT, parse_english
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


def parse_when(text: str, now: datetime, zone: tzinfo) -> datetime:
    """Read an instant relative to ``now``; naive readings are in ``zone``. Returns an aware
    datetime in ``zone``. ISO 8601 is read exactly, Chinese by :mod:`daemon.chinese_time`,
    common English by :mod:`daemon.english_time`, any other English by dateparser (imported
    only then: it is slow to load)."""
    raw = text.strip()
    if not raw:
        raise InputError("empty time: give one like 'tomorrow 8:00', '明天早上8点' or ISO 8601")
    local_now = now.astimezone(zone)
    found = _iso(raw, zone)
    if found is None and _HAN.search(raw):
        from daemon.chinese_time import parse_chinese

        found = parse_chinese(raw, local_now)
    if found is None and not _HAN.search(raw):
        found = parse_english(raw, local_now) or _english(raw, local_now, zone)
    if found is None:
        raise InputError(
            f"cannot understand time {text!r} (try 'in 10 minutes', 'tomorrow 8:00', "
            "'明天早上8点' or 2026-12-01T08:00)"
        )
    if found.year > LAST_YEAR:
        raise InputError(f"{text!r} is too far ahead: chime plans up to the year {LAST_YEAR}")
    return found


_HAN = re.compile(r"[\u4e00-\u9fff]")
# Planning searches up to 800 days past a start and turns local times into UTC instants: a
# start near the year 9999 would overflow datetime, so later ones are refused with one line.
LAST_YEAR = 9000


def _iso(text: str, zone: tzinfo) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed.astimezone(zone)


# Words that give a time of day (or an amount of time from now); without one a phrase names
# only a day, which then means its morning, as in Chinese.
_ENGLISH_CLOCK = re.compile(
    r"\d\s*(?:am|pm|a\.m\.|p\.m\.|:|h\b|o'?clock)|\bat\s+\d"
    r"|\b(?:noon|midday|midnight|morning|afternoon|evening|tonight|night|now|in|ago|later"
    r"|hours?|minutes?|mins?|seconds?|secs?)\b",
    re.IGNORECASE,
)
_ENGLISH_TODAY = re.compile(r"\b(?:today|tonight)\b", re.IGNORECASE)


def _english(text: str, local_now: datetime, zone: tzinfo) -> datetime | None:
    """English beyond :mod:`daemon.english_time`, by dateparser, preferring the future: a day
    without a time means 09:00, and a time of day already passed today means tomorrow's."""
    import dateparser  # slow to import; only needed for free-form phrases

    text = _english_hours(text)
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
    if not _ENGLISH_CLOCK.search(text):
        found = datetime.combine(found.date(), DAY_DEFAULT)
    instant = found.replace(tzinfo=zone)
    if instant <= local_now and instant.date() == local_now.date() \
            and not _ENGLISH_TODAY.search(text):
        instant += timedelta(days=1)
    return instant


_AT_HOUR = re.compile(r"\bat\s+(\d{1,2})\b(?![:.]\d|\s*(?:am|pm|a\.m\.|p\.m\.|o'?clock))",
                      re.IGNORECASE)


def _english_hours(text: str) -> str:
    """What dateparser misreads: ``at 7`` and a bare ``7`` are 7:00 (not July, not the 7th
    of the month), ``half an hour`` is 30 minutes."""
    text = re.sub(r"\bhalf an hour\b", "30 minutes", text.strip(), flags=re.IGNORECASE)
    if text.isdigit():
        return f"{text}:00"
    return _AT_HOUR.sub(r"at \1:00", text)


_WEEKDAY_NAMES = "一二三四五六日"


def describe_when(at: datetime, now: datetime) -> str:
    """What a person checks at a glance: ``周二 12-01 00:00 (in 22 h 5 min)``, in ``at``'s
    zone; the year is shown when it is not the current one."""
    day = at.strftime("%m-%d") if at.year == now.year else at.strftime("%Y-%m-%d")
    return f"周{_WEEKDAY_NAMES[at.weekday()]} {day} {at:%H:%M} ({describe_delta(at - now)})"


def describe_delta(delta: timedelta) -> str:
    """``in 22 h 5 min``, ``in 3 d 4 h``, ``in 40 s``, ``5 min ago``: the two largest units."""
    seconds = round(abs(delta.total_seconds()))
    if seconds >= 60:
        seconds = round(seconds / 60) * 60
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    text = " ".join(parts[:2]) or "0 s"
    return f"{text} ago" if delta < timedelta(0) else f"in {text}"


# ---------------------------------------------------------------------------------------------
# Recurrences

SHORTHANDS = {
    "daily": "FREQ=DAILY",
    "weekdays": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "weekends": "FREQ=WEEKLY;BYDAY=SA,SU",
    "weekly": "FREQ=WEEKLY",
    "monthly": "FREQ=MONTHLY",
    "yearly": "FREQ=YEARLY",
}
MIN_PERIOD = timedelta(minutes=5)


def parse_rule(text: str) -> str:
    """A shorthand or an RFC 5545 RRULE (with or without ``RRULE:``) → a normalised RRULE.
    Phrases such as ``每周一三五`` are read by :func:`daemon.recurrence.parse_every`."""
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
        raise InputError(f"invalid recurrence rule {text!r}: {_rrule_problem(exc)}") from exc
    assert isinstance(parsed, du_rrule.rrule)
    freq, interval = parsed._freq, parsed._interval  # type: ignore[attr-defined]
    period = {du_rrule.SECONDLY: timedelta(seconds=interval),
              du_rrule.MINUTELY: timedelta(minutes=interval)}.get(freq)
    if period is not None and period < MIN_PERIOD:
        raise InputError(f"recurrence {text!r} is too frequent (at most every 5 minutes)")
    return rule


def _rrule_problem(exc: Exception) -> str:
    """dateutil's reason, unless it is a bare Python message (a part without ``=``)."""
    reason = str(exc)
    if isinstance(exc, ValueError) and "unpack" not in reason and reason:
        return reason
    return "each part must be NAME=VALUE, as in FREQ=WEEKLY;BYDAY=MO,WE"
