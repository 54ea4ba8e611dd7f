"""The kind of day: the official 2026 CN schedule, beyond the data, festivals, periods, feed."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.config_values import Span, parse_span, parse_spans
from daemon.context.days import (
    DayCalendar,
    clean_holiday_name,
    feed_day,
    lunar_festival,
    parse_feed,
    validate_feed,
)
from daemon.errors import ConfigError
from tests.context_fixtures import FEED

# The State Council's 2026 schedule (国办发明电〔2025〕7号), as chinese-calendar 1.11 records it.
SCHEDULE_2026 = [
    ("2026-01-01", "元旦", "holiday"),
    ("2026-01-03", "元旦", "holiday"),  # a Saturday inside the break
    ("2026-01-04", "调休", "makeup"),  # Sunday, worked
    ("2026-01-05", "工作日", "workday"),
    ("2026-02-14", "调休", "makeup"),  # Saturday, worked before 春节
    ("2026-02-15", "春节", "holiday"),
    ("2026-02-16", "除夕", "holiday"),  # a day off whose lunar date is 除夕
    ("2026-02-17", "春节", "holiday"),  # 正月初一
    ("2026-02-23", "春节", "holiday"),
    ("2026-02-24", "工作日", "workday"),
    ("2026-02-28", "调休", "makeup"),
    ("2026-03-01", "双休日", "weekend"),
    ("2026-04-05", "清明节", "holiday"),
    ("2026-05-01", "劳动节", "holiday"),
    ("2026-05-05", "劳动节", "holiday"),
    ("2026-05-09", "调休", "makeup"),
    ("2026-06-19", "端午节", "holiday"),
    ("2026-09-20", "调休", "makeup"),  # Sunday, worked before 国庆
    ("2026-09-25", "中秋节", "holiday"),
    ("2026-10-01", "国庆节", "holiday"),
    ("2026-10-06", "国庆节", "holiday"),
    ("2026-10-08", "工作日", "workday"),
    ("2026-10-10", "调休", "makeup"),
    ("2026-11-28", "双休日", "weekend"),
    ("2026-12-01", "工作日", "workday"),
]


@pytest.mark.parametrize(("day", "word", "kind"), SCHEDULE_2026)
def test_official_2026_schedule(day: str, word: str, kind: str) -> None:
    found = DayCalendar("CN").day_for(date.fromisoformat(day))
    assert (found.word, found.kind, found.note) == (word, kind, None)


def test_a_year_beyond_the_data_warns_once_that_makeup_days_are_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar = DayCalendar("CN")
    caplog.set_level(logging.WARNING, logger="daemon.context.days")
    assert calendar.day_for(date(2027, 10, 1)).word == "国庆节"  # computed by `holidays`
    assert calendar.day_for(date(2027, 2, 9)).word == "春节"  # 春节（补假） → 春节
    assert calendar.day_for(date(2027, 2, 5)).word == "除夕"
    saturday = calendar.day_for(date(2027, 3, 6))
    assert (saturday.word, saturday.kind) == ("双休日", "weekend")
    assert saturday.note == "day: 调休 make-up workdays for 2027 are not known"
    calendar.day_for(date(2027, 3, 8))
    calendar.day_for(date(2027, 3, 13))
    warnings = [r for r in caplog.records if "调休 make-up workdays for 2027" in r.getMessage()]
    assert len(warnings) == 1


def test_festivals_from_the_lunar_calendar() -> None:
    assert lunar_festival(date(2026, 3, 3)) == "元宵节"
    assert lunar_festival(date(2026, 8, 19)) == "七夕"
    assert lunar_festival(date(2026, 10, 18)) == "重阳节"
    assert lunar_festival(date(2026, 1, 26)) == "腊八节"
    assert lunar_festival(date(2027, 2, 5)) == "除夕"  # 12th month has 29 days that year
    assert lunar_festival(date(2026, 3, 4)) is None
    assert lunar_festival(date(2200, 1, 1)) is None  # outside lunardate's range: no festival
    calendar = DayCalendar("CN")
    assert (calendar.day_for(date(2026, 3, 3)).word, calendar.day_for(date(2026, 3, 3)).kind) == (
        "元宵节", "festival")
    assert DayCalendar("CN", festivals=False).day_for(date(2026, 3, 3)).word == "工作日"


def test_precedence_personal_statutory_festival_period_weekend() -> None:
    calendar = DayCalendar(
        "CN",
        periods=parse_spans(["暑假 07-01..08-31", "寒假 2026-01-20..2026-02-25"]),
        personal=parse_spans(["生日 10-01", "纪念日 2026-07-04"]),
    )
    assert calendar.day_for(date(2026, 10, 1)).word == "生日"  # personal beats 国庆节
    assert calendar.day_for(date(2026, 7, 4)).word == "纪念日"
    assert calendar.day_for(date(2026, 2, 17)).word == "春节"  # statutory beats 寒假
    assert calendar.day_for(date(2026, 2, 14)).word == "调休"
    assert calendar.day_for(date(2026, 8, 19)).word == "七夕"  # festival beats 暑假
    assert calendar.day_for(date(2026, 7, 11)).word == "暑假"  # period beats the weekend
    assert calendar.day_for(date(2026, 2, 25)).word == "寒假"
    assert calendar.day_for(date(2026, 2, 26)).word == "工作日"
    assert calendar.day_for(date(2027, 10, 1)).word == "生日"  # yearly


def test_other_countries_use_their_language() -> None:
    germany = DayCalendar("DE-BY")
    assert germany.day_for(date(2026, 10, 3)).word == "Tag der Deutschen Einheit"
    assert germany.day_for(date(2026, 1, 6)).word == "Heilige Drei Könige"  # Bavaria only
    assert DayCalendar("DE").day_for(date(2026, 1, 6)).word == "工作日"
    assert germany.day_for(date(2026, 10, 4)).word == "双休日"
    # Chinese festivals still show abroad (the person speaks the LoRA's language).
    assert germany.day_for(date(2026, 9, 25)).kind == "festival"
    assert DayCalendar("FR").day_for(date(2026, 7, 14)).word == "Fête nationale"


@pytest.mark.parametrize(
    ("spec", "day", "inside"),
    [
        ("暑假 07-01..08-31", "2026-07-01", True),
        ("暑假 07-01..08-31", "2026-08-31", True),
        ("暑假 07-01..08-31", "2026-09-01", False),
        ("年假 12-24..01-02", "2026-12-31", True),  # wraps the new year
        ("年假 12-24..01-02", "2027-01-02", True),
        ("年假 12-24..01-02", "2027-01-03", False),
        ("生日 02-29", "2027-02-28", True),  # common year: 02-28
        ("生日 02-29", "2028-02-28", False),
        ("生日 02-29", "2028-02-29", True),
        ("春假 2026-04-01..2026-04-07", "2027-04-03", False),
    ],
)
def test_spans(spec: str, day: str, inside: bool) -> None:
    assert parse_span(spec).contains(date.fromisoformat(day)) is inside


@pytest.mark.parametrize(
    ("key", "spec", "reason"),
    [
        ("periods", "暑假", "expected"),
        ("periods", "暑假 07-01..13-31", "month must be in 1..12"),
        ("periods", "暑假 7-1", "not MM-DD"),
        ("periods", "暑假 02-30", "day is out of range"),
        ("periods", "春假 2026-04-07..2026-04-01", "end is before the start"),
        ("periods", "春假 04-01..2026-04-07", "both dates"),
        ("personal", "生,日 05-20", "separators"),
        ("personal", "human:我是 05-20", "separators"),
        ("personal", "一个非常非常非常长的纪念日名字 05-20", "1 to 12"),
    ],
)
def test_a_bad_entry_is_a_config_error_naming_the_key(
    tmp_path: Path, key: str, spec: str, reason: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[days]\n{key} = ["{spec}"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"\[days\] {key}: bad entry .*{reason}"):
        load_settings(config, db=tmp_path / "chime.db")


def test_other_context_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[weather]\nbase_url = "ftp://x"\nrefresh = "1m"\nforecast_days = 40\nretries = 9\n'
        '[days]\ncountry = "XX"\nholiday_feed = "nope"\nparts_of_day = ["01:00 凌晨"]\n'
        '[location]\nlatitude = 31.2\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config, db=tmp_path / "chime.db")
    message = str(info.value)
    for part in ("[weather] base_url", "[weather] refresh", "[weather] forecast_days",
                 "[weather] retries", "[days] country: 'XX'", "[days] holiday_feed",
                 "[days] parts_of_day", "[location] latitude and longitude go together"):
        assert part in message


def test_good_context_settings_load(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[location]\nlatitude = 31.23\nlongitude = 121.47\nname = "上海"\n'
        '[weather]\nbase_url = "http://127.0.0.1:8080"\nrefresh = "30m"\n'
        '[days]\ncountry = "DE-BY"\nperiods = ["暑假 07-01..08-31"]\npersonal = ["生日 05-20"]\n'
        'holiday_feed = "https://example.org/cn.ics"\nfeed_refresh = "12h"\n',
        encoding="utf-8",
    )
    settings = load_settings(config, db=tmp_path / "chime.db")
    assert settings.days.periods == [Span("暑假", (7, 1, None), (8, 31, None))]
    assert settings.days.personal == [parse_span("生日 05-20")]
    assert settings.days.country == "DE-BY"


def test_holiday_names_are_cleaned() -> None:
    assert clean_holiday_name("春节（补假）") == "春节"
    assert clean_holiday_name("农历除夕") == "除夕"
    assert clean_holiday_name("Labor Day (observed)") == "Labor Day"
    assert clean_holiday_name("Jour de l'an; Nouvel an") == "Jour de l'an"


@pytest.mark.parametrize(
    ("summary", "word", "kind"),
    [
        ("春节 假期 第1天/共8天", "春节", "holiday"),
        ("春节 补班 第1天/共2天", "调休", "makeup"),
        ("元旦（休）", "元旦", "holiday"),
        ("国庆节放假", "国庆节", "holiday"),
        ("上班", "调休", "makeup"),
        ("Christmas Day", "Christmas Day", "holiday"),
    ],
)
def test_feed_titles(summary: str, word: str, kind: str) -> None:
    found = feed_day(summary)
    assert found is not None and (found.word, found.kind) == (word, kind)


def test_feed_overrides_the_library_and_fills_unknown_years(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = parse_feed(FEED, date(2026, 11, 28))
    assert feed[date(2027, 2, 6)].word == "春节" and date(2027, 2, 14) not in feed  # DTEND excl.
    assert feed[date(2027, 2, 13)].word == "春节"
    calendar = DayCalendar("CN")
    caplog.set_level(logging.WARNING, logger="daemon.context.days")
    makeup = calendar.day_for(date(2027, 2, 20), feed)
    assert (makeup.word, makeup.kind, makeup.note) == ("调休", "makeup", None)
    assert calendar.day_for(date(2027, 3, 6), feed).note is None  # the feed covers 2027
    assert not [r for r in caplog.records if "2027" in r.getMessage()]
    assert calendar.day_for(date(2026, 12, 2), feed).word == "公司年会"


def test_validate_feed() -> None:
    validate_feed(FEED)
    with pytest.raises(ValueError, match="not an iCalendar"):
        validate_feed("<html>sign in</html>")


def test_holidays_without_data_for_a_year_falls_back_to_weekends(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Older `holidays` releases raise NotImplementedError outside 2004–2026 for CN."""
    import holidays

    real = holidays.country_holidays

    def limited(country: str, *args: object, years: object = None, **kwargs: object) -> object:
        if isinstance(years, int) and years > 2026:
            raise NotImplementedError(f"no data for {years}")
        return real(country, *args, years=years, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(holidays, "country_holidays", limited)
    caplog.set_level(logging.WARNING, logger="daemon.context.days")
    calendar = DayCalendar("CN", festivals=False)
    saturday = calendar.day_for(date(2031, 3, 8))
    assert (saturday.word, saturday.note) == ("双休日", "day: no holiday data for CN 2031")
    assert calendar.day_for(date(2031, 3, 10)).word == "工作日"
    assert calendar.day_for(date(2031, 10, 1)).word == "工作日"  # unknown, not invented
    assert len([r for r in caplog.records if "2031" in r.getMessage()]) == 1
