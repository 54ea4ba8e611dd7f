"""Parsing what people type: durations, instants (Chinese and English), recurrences."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.errors import InputError
from daemon.timeparse import format_duration, parse_duration, parse_rule, parse_when

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=SH)  # Saturday 10:00


def at(day: int, hour: int, minute: int = 0, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH)


PHRASES = [
    ("in 10 minutes", at(28, 10, 10)),
    ("in 1 minute", at(28, 10, 1)),
    ("in 2 hours", at(28, 12, 0)),
    ("tomorrow 8:00", at(29, 8)),
    ("tomorrow at 8pm", at(29, 20)),
    ("next monday 9am", at(30, 9)),
    ("friday 17:00", at(4, 17, month=12)),
    ("today 23:00", at(28, 23)),
    ("Dec 24 19:00", at(24, 19, month=12)),
    ("2026-12-01 08:00", at(1, 8, month=12)),
    ("2026-12-01T08:00:00+08:00", at(1, 8, month=12)),
    ("2026-12-01T00:00:00Z", at(1, 8, month=12)),
    ("明天早上8点", at(29, 8)),
    ("下周一 9:30", at(30, 9, 30)),
    ("今晚七点半", at(28, 19, 30)),
    ("后天下午3点", at(30, 15)),
    ("明天中午12点", at(29, 12)),
    ("十分钟后", at(28, 10, 10)),
    ("10分钟后", at(28, 10, 10)),
    ("半小时后", at(28, 10, 30)),
    ("一个半小时后", at(28, 11, 30)),
    ("1小时后", at(28, 11)),
    ("12月24日 19:00", at(24, 19, month=12)),
    ("下午三点", at(28, 15)),
    ("周五 18:00", at(4, 18, month=12)),
    ("星期天上午十点一刻", at(29, 10, 15)),
    ("8点", at(29, 8)),  # already past today → tomorrow
    ("凌晨两点", at(29, 2)),
    ("今天晚上9点", at(28, 21)),
    ("明天", at(29, 9)),
    ("2027年1月1日 0:00", at(1, 0, month=1, year=2027)),
    ("明晚十点", at(29, 22)),
    ("大后天傍晚6点", at(1, 18, month=12)),
    ("下下周三 14:00", at(9, 14, month=12)),
]


@pytest.mark.parametrize(("phrase", "expected"), PHRASES)
def test_when_phrases(phrase: str, expected: datetime) -> None:
    assert parse_when(phrase, NOW, SH) == expected


@pytest.mark.parametrize("phrase", ["", "   ", "blorp", "明天吃饭", "13月40日", "25点"])
def test_when_rejects_nonsense(phrase: str) -> None:
    with pytest.raises(InputError):
        parse_when(phrase, NOW, SH)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("45", 45), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "m10", "1h-3m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10_000_000))
def test_duration_roundtrip(seconds: int) -> None:
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("daily", "FREQ=DAILY"),
        ("weekdays", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
        ("weekends", "FREQ=WEEKLY;BYDAY=SA,SU"),
        ("weekly", "FREQ=WEEKLY"),
        ("monthly", "FREQ=MONTHLY"),
        ("yearly", "FREQ=YEARLY"),
        ("RRULE:FREQ=WEEKLY;BYDAY=MO", "FREQ=WEEKLY;BYDAY=MO"),
        ("freq=minutely;interval=30", "FREQ=MINUTELY;INTERVAL=30"),
    ],
)
def test_rules(text: str, rule: str) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize(
    "text", ["", "FREQ=SECONDLY", "FREQ=MINUTELY", "FREQ=FORTNIGHTLY", "every day",
             "DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "FREQ=DAILY;BYHOUR=25"],
)
def test_bad_rules(text: str) -> None:
    with pytest.raises(InputError):
        parse_rule(text)


@given(st.text(max_size=30))
def test_when_never_crashes(text: str) -> None:
    try:
        result = parse_when(text, NOW, SH)
    except InputError:
        return
    assert result.tzinfo is not None
