"""Parsing what people type: durations, instants (Chinese and English), recurrences."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
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


def read_table(path: Path) -> list[tuple[str, datetime]]:
    """``phrase<TAB>instant[<TAB>note]`` lines; ``#`` starts a comment line."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            phrase, instant = line.split("\t")[:2]
            rows.append((phrase, datetime.fromisoformat(instant)))
    return rows


# The table is shared with bench/time_phrases.py, which measures other parsers against it.
PHRASES = read_table(Path(__file__).parent / "data" / "time_phrases.tsv")


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


@given(st.text(max_size=30) | st.text("今明后大天下周一二三四五六日月号年点半刻分钟小时后晚上凌晨中午十两零:0123456789 ",
                                      max_size=12))
def test_when_never_crashes(text: str) -> None:
    try:
        result = parse_when(text, NOW, SH)
    except InputError:
        return
    assert result.tzinfo is not None


def test_amounts_of_time_across_a_dst_change() -> None:
    ny = ZoneInfo("America/New_York")
    now = datetime(2026, 3, 7, 10, 0, tzinfo=ny)  # clocks jump 02:00 → 03:00 on 03-08
    later = parse_when("24小时后", now, ny)
    assert later.timestamp() - now.timestamp() == 24 * 3600  # real hours
    assert later.hour == 11  # on the wall clock, one more
    assert parse_when("三天后", now, ny) == datetime(2026, 3, 10, 10, 0, tzinfo=ny)  # wall time


@pytest.mark.parametrize("phrase", ["tomorrow 8:00", "in 10 minutes", "friday 5pm", "noon",
                                    "Dec 24 7pm", "tonight at 9", "at 7"])
def test_common_english_needs_no_dateparser(phrase: str) -> None:
    """dateparser costs a command 0.15–0.2 s to load: the forms people type most skip it."""
    code = ("import sys\nfrom datetime import datetime\nfrom zoneinfo import ZoneInfo\n"
            "from daemon.timeparse import parse_when\n"
            f"parse_when({phrase!r}, datetime(2026, 11, 28, 10, tzinfo=ZoneInfo('UTC')),"
            " ZoneInfo('UTC'))\n"
            "assert 'dateparser' not in sys.modules, 'dateparser was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
