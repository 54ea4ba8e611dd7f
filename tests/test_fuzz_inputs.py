"""Fuzzing what people type and what files bring: ``--at``/``--every`` phrases, config TOML,
and .ics files (mutated real exports from tests/data/ics). Always a correct result or one clear
line of ours — never a traceback, never a Python-internal message — and on error the database
is unchanged. Derandomized by the conftest's hypothesis profile; each test keeps its examples
few enough that the three run in well under a minute."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon import reminders
from daemon.app import App
from daemon.calendars import import_text
from daemon.config import Settings, load_settings
from daemon.errors import ChimeError, ConfigError
from daemon.recurrence import parse_every
from daemon.timeparse import parse_when
from tests.calendar_fixtures import ICS, NOW, make_app

SH = ZoneInfo("Asia/Shanghai")
# Words that only Python's own errors use: none of them may reach a person.
INTERNAL = re.compile(
    r"object has no attribute|NoneType|not subscriptable|not iterable|unexpected keyword|"
    r"positional argument|invalid literal for|list index|index out of range|KeyError|"
    r"TypeError|ValueError|AttributeError|Traceback|not enough values to unpack|"
    r"too many values to unpack|unsupported operand|object is not callable|"
    r"'list' object|'dict' object|'str' object|'int' object|Expected datetime, date")
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def assert_clear(exc: ChimeError) -> None:
    message = str(exc)
    assert message and "\n" not in message, repr(message)
    assert not INTERNAL.search(message), message


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app = make_app(tmp_path_factory.mktemp("fuzz") / "chime.db")
    yield app
    app.db.close()


# --- phrases ----------------------------------------------------------------------------------

TOKENS = ["明天", "后天", "大后天", "今晚", "晚上", "凌晨", "中午", "下午", "早上", "下周", "下下周",
          "周一", "周三", "周日", "星期五", "每天", "每周", "每月", "每年", "每两周", "工作日",
          "周末", "号", "日", "月", "年", "点", "半", "一刻", "三刻", "分", "小时后", "分钟后",
          "天后", "十", "十二", "两", "一", "零", "0", "1", "7", "12", "15", "24", "31", "60",
          "99", "2026", ":", "-", "/", " ", "at", "in", "every", "next", "tomorrow", "noon",
          "midnight", "pm", "am", "monday", "weeks", "2", "minutes", "days", "on the", "15th",
          "FREQ=", "WEEKLY", "DAILY", ";", "BYDAY=", "MO", ",", "TU", "INTERVAL=", "COUNT=",
          "UNTIL=", "RRULE:", "=", "\u200b", "\t", "１２", "𝟘", "Dec", "24", "7pm"]
PHRASES = st.one_of(
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join),
    st.text(max_size=30),
)


@FUZZ
@given(text=PHRASES)
def test_at_phrases_give_a_time_or_one_clear_line(fuzz_app: App, text: str) -> None:
    before = dump(fuzz_app.settings.db_path)
    try:
        when = parse_when(text, NOW, SH)
    except ChimeError as exc:
        assert_clear(exc)
        with pytest.raises(ChimeError) as refused:  # the use case refuses it the same way
            reminders.add(fuzz_app, "fuzz", text)
        assert_clear(refused.value)
        assert dump(fuzz_app.settings.db_path) == before
        return
    assert when.tzinfo is not None


@FUZZ
@given(text=PHRASES)
def test_every_phrases_give_a_rule_or_one_clear_line(fuzz_app: App, text: str) -> None:
    before = dump(fuzz_app.settings.db_path)
    try:
        repeat = parse_every(text)
    except ChimeError as exc:
        assert_clear(exc)
        if text:  # (an empty --every means no repeat)
            with pytest.raises(ChimeError) as refused:
                reminders.add(fuzz_app, "fuzz", "2027-01-04 09:00", every=text)
            assert_clear(refused.value)
            assert dump(fuzz_app.settings.db_path) == before
        return
    assert repeat.rrule and "\n" not in repeat.rrule


# --- config TOML ------------------------------------------------------------------------------

def known_keys() -> list[tuple[str, str]]:
    """Every (section, key) the settings know, read from the dataclasses themselves."""
    import dataclasses

    found = []
    for section in dataclasses.fields(Settings):
        default = getattr(Settings(), section.name, None)
        if dataclasses.is_dataclass(default):
            found += [(section.name, f.name) for f in dataclasses.fields(default)]
    return found


def toml_value() -> st.SearchStrategy[str]:
    scalar = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(
            lambda f: {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(f), repr(f))),
        st.booleans().map(lambda b: "true" if b else "false"),
        st.sampled_from(["10m", "1h30m", "-5m", "0s", "99999999d", "08:00", "25:99", "LOUD",
                         "consle", "Asia/Shanghai", "Mars/Base", "http://127.0.0.1:1/x",
                         "ftp://x", "", "1e400", "-1", "7-9", "22:00-07:00"]).map(repr),
        st.text(max_size=12).map(lambda t: '"' + t.encode("unicode_escape").decode()
                                 .replace('"', '\\"') + '"'),
        st.sampled_from(["1979-05-27T07:32:00Z", "07:32:00", "1979-05-27"]),
    )
    return st.one_of(scalar, st.lists(scalar, max_size=3).map(lambda v: f"[{', '.join(v)}]"),
                     st.dictionaries(st.sampled_from(["a", "b", "Authorization"]), scalar,
                                     max_size=2).map(
                         lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"))


@st.composite
def config_text(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.one_of(st.sampled_from(known_keys()),
                                   st.tuples(st.sampled_from(["daemon", "nope", "weather"]),
                                             st.sampled_from(["colour", "lead", "x"]))),
                         min_size=1, max_size=6, unique=True))
    sections: dict[str, list[str]] = {}
    for section, key in keys:
        sections.setdefault(section, []).append(f"{key} = {draw(toml_value())}")
    text = "".join(f"[{name}]\n" + "\n".join(lines) + "\n" for name, lines in sections.items())
    if draw(st.booleans()):  # a stray character: not TOML any more
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + draw(st.sampled_from(["=", "[", '"', "\x00", "é", "\n[[x]]\n"])) + \
            text[at:]
    return text


@FUZZ
@given(text=config_text())
def test_config_loads_or_names_each_problem_in_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    try:
        loaded = load_settings(path, tmp_path / "chime.db")
    except ConfigError as exc:
        assert_clear(exc)
        return
    assert isinstance(loaded, Settings)


# --- .ics files -------------------------------------------------------------------------------

CORPUS = sorted(p.name for p in ICS.glob("*.ics"))


@st.composite
def mutated_calendar(draw: st.DrawFn) -> str:
    """A real export with a few lines deleted, doubled, cut, swapped or garbled."""
    lines = (ICS / draw(st.sampled_from(CORPUS))).read_bytes().decode("utf-8").splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not lines:
            break
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        op = draw(st.sampled_from(["delete", "double", "cut", "garble", "swap", "tzid",
                                   "spaces", "value"]))
        line = lines[i]
        if op == "delete":
            del lines[i]
        elif op == "double":
            lines.insert(i, line)
        elif op == "cut":
            lines[i] = line[: draw(st.integers(min_value=0, max_value=len(line)))]
        elif op == "garble":
            at = draw(st.integers(min_value=0, max_value=len(line)))
            lines[i] = line[:at] + draw(st.text(max_size=6)) + line[at:]
        elif op == "swap":
            j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "tzid" and ":" in line:
            head, _, value = line.partition(":")
            zone = draw(st.sampled_from(["My Zone", "(UTC+08:00) Beijing, Chongqing",
                                         '"Custom, Zone"', "Mars/Olympus", "", "UTC", "a;b"]))
            lines[i] = f"{head.split(';')[0]};TZID={zone}:{value}"
        elif op == "spaces":
            lines[i] = line.replace(",", ", ").replace(";", " ; ")
        elif op == "value" and ":" in line:
            head, _, _ = line.partition(":")
            lines[i] = head + ":" + draw(st.sampled_from(
                ["", "20261301T250000", "-PT99999999M", "FREQ=MINUTELY;INTERVAL=0",
                 "FREQ=YEARLY;BYMONTH=13", "x", "99991231T235959Z", "P1W2D", "CANCELLED"]))
    return "\r\n".join(lines) + "\r\n"


@FUZZ
@given(text=mutated_calendar())
def test_mutated_exports_import_or_refuse_in_one_line(fuzz_app: App, text: str) -> None:
    before = dump(fuzz_app.settings.db_path)
    try:
        outcome = import_text(fuzz_app, text, NOW)
    except ChimeError as exc:
        assert_clear(exc)
        assert dump(fuzz_app.settings.db_path) == before
        return
    for problem in [*outcome.skipped, *outcome.notes]:
        assert "\n" not in str(problem) and not INTERNAL.search(str(problem)), str(problem)


@pytest.mark.parametrize(("name", "old", "new"), [
    # a custom zone whose VTIMEZONE repeats a DTSTART (once: 'list' object has no attribute…)
    ("outlook_windows_zones.ics", "DTSTART:16010325T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;"
     "BYMONTH=3\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE"
     "\r\nBEGIN:VTIMEZONE\r\nTZID:Customized",
     "DTSTART:16010325T020000\r\nDTSTART:16010325T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;"
     "BYMONTH=3\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE"
     "\r\nBEGIN:VTIMEZONE\r\nTZID:Customized"),
    ("google_work.ics", "DTSTART;TZID=Asia/Shanghai:20261130T093000",  # two starts
     "DTSTART;TZID=Asia/Shanghai:20261130T093000\r\nDTSTART;TZID=My Zone:20261130T093000"),
    ("google_work.ics", "DTSTART:20261203T060000Z", "DTSTART:99991231T230000Z"),  # year 9999
    ("apple_home.ics", "DUE", "DUE;VALUE=DATE:"),  # an empty date
])
def test_inputs_the_fuzzers_found(fuzz_app: App, name: str, old: str, new: str) -> None:
    text = (ICS / name).read_bytes().decode("utf-8")
    assert old in text
    outcome = import_text(fuzz_app, text.replace(old, new, 1), NOW)
    assert outcome.skipped
    for problem in outcome.skipped:
        assert not INTERNAL.search(str(problem)), str(problem)
