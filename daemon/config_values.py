"""Pure parsers and rules for configuration values: the validators ``config.py`` runs.

Each parser takes what the TOML file holds and returns the converted value (``time``,
``tuple[time, time]``, ``list[Span]``…) or raises ``ValueError`` with a short reason; the
config adds the section and key. Consumers read the converted values from the settings and
never parse a string again. This module imports only the standard library (and the
``holidays`` package, lazily, for a country other than CN).

It also holds the facts a value is checked against, each in one place: the output names,
the part-of-day words, the speaker's engines and players, the volume range, what an http(s)
URL is.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, time
from typing import Any
from urllib.parse import urlsplit

# name → "module:factory" of every output; a factory is called as factory(settings, actions).
# To add an output: write daemon/outputs/<name>.py and add its line here.
OUTPUTS: dict[str, str] = {
    "console": "daemon.outputs.console:ConsoleOutput",
    "desktop": "daemon.outputs.desktop:DesktopOutput",
    "speaker": "daemon.outputs.speaker:SpeakerOutput",
    "webhook": "daemon.outputs.webhook:WebhookOutput",
    "ntfy": "daemon.outputs.ntfy:NtfyOutput",
}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PARTS_OF_DAY = ("凌晨", "早晨", "上午", "中午", "下午", "傍晚", "晚上", "深夜")
SPEAKER_ENGINES = ("espeak-ng", "piper")
SPEAKER_PLAYERS = ("aplay", "paplay", "pw-play")
VOLUME_RANGE = (0, 200)  # percent of the spoken samples
# What would break a field of the model's prompt (context/prompt.py sanitises tasks with it).
PROMPT_SEPARATORS = re.compile(r"[,:，：\r\n\t\x00-\x1f\x7f]+")
MAX_NAME = 12  # a period/personal/feed name must fit the prompt's day field
DEFAULT_PARTS_OF_DAY = ["00:00 凌晨", "05:00 早晨", "08:00 上午", "11:00 中午", "13:00 下午",
                        "17:00 傍晚", "19:00 晚上", "23:00 深夜"]


def unknown_outputs(names: list[str]) -> str | None:
    """The message for the names that are not outputs, or None when all are known."""
    unknown = [n for n in names if n not in OUTPUTS]
    if not unknown:
        return None
    return f"unknown output {', '.join(map(repr, unknown))} (known: {', '.join(sorted(OUTPUTS))})"


def is_http_url(value: str) -> bool:
    """An absolute http:// or https:// URL with a host."""
    parts = urlsplit(value.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def parse_log_level(value: str) -> str:
    """``info`` → ``INFO``; ValueError for a level the logging module does not have."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def parse_clock_time(value: str) -> time:
    """``8:00`` or ``08:30`` → time; ValueError otherwise."""
    found = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if found and int(found[1]) < 24 and int(found[2]) < 60:
        return time(int(found[1]), int(found[2]))
    raise ValueError(f"{value!r} is not a time like 08:00")


def parse_quiet_hours(value: str) -> tuple[time, time] | None:
    """``"22:00-07:00"`` → (22:00, 07:00) (it may span midnight); ``""`` → None."""
    if not value.strip():
        return None
    start_text, dash, end_text = value.partition("-")
    try:
        if not dash:
            raise ValueError
        start, end = parse_clock_time(start_text), parse_clock_time(end_text)
    except ValueError:
        raise ValueError(f"expected 'HH:MM-HH:MM' like '22:00-07:00', got {value!r}") from None
    if start == end:
        raise ValueError("start and end are the same time")
    return start, end


def format_hours(hours: tuple[time, time]) -> str:
    """(22:00, 07:00) → ``22:00-07:00``."""
    return "-".join(t.strftime("%H:%M") for t in hours)


def parse_boundaries(specs: list[str]) -> list[tuple[time, str]]:
    """``["00:00 凌晨", "05:00 早晨", …]`` → ascending (start, part) pairs, the first at 00:00."""
    bounds: list[tuple[time, str]] = []
    for spec in specs:
        clock, _, name = spec.strip().partition(" ")
        try:
            start = time.fromisoformat(clock)
        except ValueError:
            raise ValueError(f"bad time in {spec!r}") from None
        if name.strip() not in PARTS_OF_DAY:
            raise ValueError(f"{name.strip()!r} is not one of {', '.join(PARTS_OF_DAY)}")
        bounds.append((start, name.strip()))
    if not bounds or bounds[0][0] != time(0, 0):
        raise ValueError("the first part must start at 00:00")
    if [b[0] for b in bounds] != sorted({b[0] for b in bounds}):
        raise ValueError("boundaries must be strictly ascending")
    return bounds


def check_header(name: str, value: str) -> None:
    """An HTTP header that cannot smuggle another one; ValueError otherwise."""
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise ValueError(f"invalid header name {name!r}")
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"the value of {name!r} holds a line break")


def country_problem(code: str) -> str | None:
    """Why ``CC`` or ``CC-SUB`` is not usable for the kind of day, or None."""
    if not re.fullmatch(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", code):
        return f"{code!r} is not a country code like CN, DE or DE-BY"
    if code == "CN":  # chinese-calendar, not the holidays package
        return None
    import holidays

    country, _, subdiv = code.partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        return f"{country!r} is not a country the holidays package knows"
    if subdiv and subdiv not in supported[country]:
        return f"{subdiv!r} is not a subdivision of {country}"
    return None


# ---------------------------------------------------------------------------------------------
# Periods and personal days: ``"名字 DATE"`` or ``"名字 DATE..DATE"``; a DATE is ``MM-DD``
# (every year) or ``YYYY-MM-DD`` (that date only). A yearly span may wrap the new year
# (``12-24..01-02``); ``02-29`` falls on 02-28 in common years.

_SPEC = re.compile(r"^(?P<name>\S+)\s+(?P<start>[\d-]+)(?:\s*\.\.\s*(?P<end>[\d-]+))?$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
_FULL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class Span:
    """A named day or run of days, yearly (``year`` None) or on fixed dates."""

    name: str
    start: tuple[int, int, int | None]  # (month, day, year or None)
    end: tuple[int, int, int | None]

    @property
    def yearly(self) -> bool:
        return self.start[2] is None

    def contains(self, day: date) -> bool:
        if not self.yearly:
            first = date(self.start[2], self.start[0], self.start[1])  # type: ignore[arg-type]
            last = date(self.end[2], self.end[0], self.end[1])  # type: ignore[arg-type]
            return first <= day <= last
        keys = [(day.month, day.day)]
        if keys[0] == (2, 28) and not calendar.isleap(day.year):
            keys.append((2, 29))
        lo, hi = self.start[:2], self.end[:2]
        if lo <= hi:
            return any(lo <= key <= hi for key in keys)
        return any(key >= lo or key <= hi for key in keys)  # wraps the new year


def find(spans: list[Span], day: date) -> Span | None:
    """The first span containing ``day`` (config order decides overlaps)."""
    return next((s for s in spans if s.contains(day)), None)


def check_name(name: str) -> str:
    """A period/personal/feed name that fits the prompt, or ValueError."""
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"the name must be 1 to {MAX_NAME} characters")
    if PROMPT_SEPARATORS.search(name) or re.search(r"\s", name):
        raise ValueError(f"the name {name!r} holds separators or control characters")
    return name


def _date_part(text: str) -> tuple[int, int, int | None]:
    full = _FULL.match(text)
    if full:
        year, month, day = (int(g) for g in full.groups())
        date(year, month, day)  # ValueError if not a real date
        return (month, day, year)
    short = _MONTH_DAY.match(text)
    if short:
        month, day = (int(g) for g in short.groups())
        date(2000, month, day)  # a leap year: 02-29 is allowed
        return (month, day, None)
    raise ValueError(f"{text!r} is not MM-DD or YYYY-MM-DD")


def parse_span(spec: str) -> Span:
    """``"暑假 07-01..08-31"`` → Span; ValueError with a short reason."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise ValueError("expected '名字 MM-DD', '名字 MM-DD..MM-DD' or with YYYY-MM-DD dates")
    name = check_name(match["name"])
    start = _date_part(match["start"])
    end = _date_part(match["end"]) if match["end"] else start
    if (start[2] is None) != (end[2] is None):
        raise ValueError("both dates must be MM-DD or both YYYY-MM-DD")
    if start[2] is not None:
        first = date(start[2], start[0], start[1])
        last = date(end[2], end[0], end[1])  # type: ignore[arg-type]
        if last < first:
            raise ValueError("the end is before the start")
    return Span(name, start, end)


def parse_spans(specs: Any) -> list[Span]:
    """A list of span specs → spans; ValueError naming the bad entry."""
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise TypeError(f"expected a list of strings, got {specs!r}")
    spans = []
    for spec in specs:
        try:
            spans.append(parse_span(spec))
        except ValueError as exc:
            raise ValueError(f"bad entry {spec!r}: {exc}") from None
    return spans
