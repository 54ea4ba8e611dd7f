"""Parsing what people type: durations, instants (Chinese and English), recurrences."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.errors import InputError
from daemon.timeparse import (
    describe_delta,
    describe_when,
    format_duration,
    parse_duration,
    parse_rule,
    parse_when,
)

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=SH)  # Saturday 10:00


def at(day: int, hour: int, minute: int = 0, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH)


PHRASES = [
    # English (dateparser)
    ("in 10 minutes", at(28, 10, 10)),
    ("in 1 minute", at(28, 10, 1)),
    ("in 2 hours", at(28, 12, 0)),
    ("in 90 minutes", at(28, 11, 30)),
    ("in an hour", at(28, 11)),
    ("in 2 days", at(30, 10)),
    ("tomorrow 8:00", at(29, 8)),
    ("tomorrow at 8pm", at(29, 20)),
    ("tomorrow at noon", at(29, 12)),
    ("tomorrow", at(29, 9)),  # a day without a time means its morning
    ("at midnight", at(29, 0)),
    ("noon", at(28, 12)),
    ("7:30 am", at(29, 7, 30)),  # passed today → tomorrow
    ("7:30 pm", at(28, 19, 30)),
    ("19:30", at(28, 19, 30)),
    ("8 am", at(29, 8)),
    ("tonight 9pm", at(28, 21)),
    ("monday", at(30, 9)),
    ("next monday 9am", at(30, 9)),
    ("next friday 8pm", at(4, 20, month=12)),
    ("friday 17:00", at(4, 17, month=12)),
    ("today 23:00", at(28, 23)),
    ("Dec 24 19:00", at(24, 19, month=12)),
    ("Dec 24 7pm", at(24, 19, month=12)),
    # ISO 8601
    ("2026-12-01 08:00", at(1, 8, month=12)),
    ("2026-12-01T08:00:00+08:00", at(1, 8, month=12)),
    ("2026-12-01T00:00:00Z", at(1, 8, month=12)),
    # Midnight is not noon
    ("今晚12点", at(29, 0)),
    ("晚上12点", at(29, 0)),
    ("明晚12点", at(30, 0)),
    ("明天晚上12点", at(30, 0)),
    ("夜里12点", at(29, 0)),
    ("凌晨12点", at(29, 0)),
    ("凌晨0点", at(29, 0)),
    ("明天凌晨0点", at(29, 0)),
    ("今晚12点半", at(29, 0, 30)),
    ("半夜1点", at(29, 1)),
    ("周日晚上12点", at(30, 0)),
    ("24点", at(29, 0)),
    ("零点", at(29, 0)),
    ("中午12点", at(28, 12)),
    ("中午1点", at(28, 13)),
    ("明天中午12点", at(29, 12)),
    ("明天中午", at(29, 12)),
    ("深夜11点", at(28, 23)),
    # Days
    ("明天", at(29, 9)),
    ("明天早上8点", at(29, 8)),
    ("明天 8 点", at(29, 8)),
    ("后天下午3点", at(30, 15)),
    ("大后天", at(1, 9, month=12)),
    ("大后天早上7点", at(1, 7, month=12)),
    ("大后天傍晚6点", at(1, 18, month=12)),
    ("下周一 9:30", at(30, 9, 30)),
    ("下周五", at(4, 9, month=12)),
    ("下周五晚上8点", at(4, 20, month=12)),
    ("下下周一", at(7, 9, month=12)),
    ("下下周三 14:00", at(9, 14, month=12)),
    ("下个星期二 10点", at(1, 10, month=12)),
    ("这周日", at(29, 9)),
    ("礼拜天下午", at(29, 15)),
    ("星期天上午十点一刻", at(29, 10, 15)),
    ("周五 18:00", at(4, 18, month=12)),
    ("周六下午4点", at(28, 16)),
    ("周六 8点", at(5, 8, month=12)),  # this Saturday's 8:00 has passed → next Saturday
    ("下个月1号", at(1, 9, month=12)),
    ("下个月15号下午2点", at(15, 14, month=12)),
    ("下月3号", at(3, 9, month=12)),
    ("本月30号", at(30, 9)),
    ("30号", at(30, 9)),
    ("15号", at(15, 9, month=12)),  # the 15th of this month has passed → next month's
    ("12月1日", at(1, 9, month=12)),
    ("12月24日 19:00", at(24, 19, month=12)),
    ("12月24号晚上7点", at(24, 19, month=12)),
    ("十二月二十五日", at(25, 9, month=12)),
    ("1月1日", at(1, 9, month=1, year=2027)),
    ("11月1日", at(1, 9, month=11, year=2027)),  # passed this year → next year's
    ("2027年1月1日 0:00", at(1, 0, month=1, year=2027)),
    ("2027年3月5日", at(5, 9, month=3, year=2027)),
    ("2027年3月5日 8:30", at(5, 8, 30, month=3, year=2027)),
    ("明年5月20日", at(20, 9, month=5, year=2027)),
    # Clock
    ("8点", at(29, 8)),  # already past today → tomorrow
    ("十点", at(29, 10)),  # exactly now is not ahead
    ("十点半", at(28, 10, 30)),
    ("两点", at(29, 2)),
    ("下午两点", at(28, 14)),
    ("下午三点", at(28, 15)),
    ("十二点半", at(28, 12, 30)),
    ("七点一刻", at(29, 7, 15)),
    ("早上七点三刻", at(29, 7, 45)),
    ("7点45", at(29, 7, 45)),
    ("7点45分", at(29, 7, 45)),
    ("晚上八点零五", at(28, 20, 5)),
    ("下午3:30", at(28, 15, 30)),
    ("下午５点", at(28, 17)),
    ("凌晨两点", at(29, 2)),
    ("今天晚上9点", at(28, 21)),
    ("今晚七点半", at(28, 19, 30)),
    ("明晚十点", at(29, 22)),
    # Parts of the day alone
    ("今晚", at(28, 20)),
    ("明早", at(29, 8)),
    ("傍晚", at(28, 18)),
    ("凌晨", at(29, 2)),
    # Amounts of time
    ("十分钟后", at(28, 10, 10)),
    ("10分钟后", at(28, 10, 10)),
    ("45分钟后", at(28, 10, 45)),
    ("90分钟之后", at(28, 11, 30)),
    ("半小时后", at(28, 10, 30)),
    ("1小时后", at(28, 11)),
    ("一个半小时后", at(28, 11, 30)),
    ("1小时30分钟后", at(28, 11, 30)),
    ("两个小时以后", at(28, 12)),
    ("三天后", at(1, 10, month=12)),
    ("三天后早上8点", at(1, 8, month=12)),
    ("两周后", at(12, 10, month=12)),
    ("半个月后", at(13, 10, month=12)),
    ("一个月后", at(28, 10, month=12)),
]


@pytest.mark.parametrize(("phrase", "expected"), PHRASES)
def test_when_phrases(phrase: str, expected: datetime) -> None:
    assert parse_when(phrase, NOW, SH) == expected


def test_the_table_is_big_enough() -> None:
    assert len(PHRASES) >= 80


@pytest.mark.parametrize("phrase", ["", "   ", "blorp", "明天吃饭", "13月40日", "25点", "晚上12点61",
                                    "下周八", "31号后天", "2月30日"])
def test_when_rejects_nonsense(phrase: str) -> None:
    with pytest.raises(InputError):
        parse_when(phrase, NOW, SH)


def test_confirmation_words() -> None:
    now = datetime(2026, 11, 30, 1, 55, tzinfo=SH)
    assert describe_when(parse_when("明天晚上12点", now, SH), now) == "周三 12-02 00:00 (in 1 d 22 h)"
    assert describe_when(parse_when("晚上12点", now, SH), now) == "周二 12-01 00:00 (in 22 h 5 min)"
    assert describe_when(at(1, 9, month=1, year=2027), now).startswith("周五 2027-01-01 09:00")
    assert describe_delta(timedelta(seconds=40)) == "in 40 s"
    assert describe_delta(-timedelta(minutes=5)) == "5 min ago"


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
