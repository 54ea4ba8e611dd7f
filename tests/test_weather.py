"""Open-Meteo over a real loopback server with recorded payloads; the forecasts cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pytest_httpserver import HTTPServer

from daemon.context.weather import (
    UNKNOWN_WEATHER,
    WMO_WORDS,
    OpenMeteo,
    WeatherService,
    hour_index,
    weather_word,
)
from daemon.errors import FetchPayloadError
from daemon.http import USER_AGENT
from daemon.http_client import Client
from daemon.store.db import Database
from daemon.store.models import Forecast
from tests.context_fixtures import (
    FORECAST_START,
    Sleeps,
    fast_policy,
    hits,
    payload,
    payload_bytes,
    refused_url,
)

SH = ZoneInfo("Asia/Shanghai")
LAT, LON = 31.2304, 121.4737
NOW = FORECAST_START + timedelta(hours=26)  # 2026-02-16 10:00 Shanghai, forecast just fetched
RAIN_AT = datetime(2026, 2, 16, 12, 30, tzinfo=SH)  # hour 28 of the recording: WMO 61, 7.9°C
PATH = "/v1/forecast"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "chime.db")
    yield database
    database.close()


@pytest.fixture
def client() -> Iterator[Client]:
    with Client() as c:
        yield c


def service(db: Database, http: Client, base_url: str, *,
            air_url: str = "", sleeps: Sleeps | None = None) -> WeatherService:
    client = OpenMeteo(http, fast_policy(sleeps), base_url=base_url, forecast_days=3,
                       air_quality_url=air_url)
    return WeatherService(db, client, LAT, LON, refresh=timedelta(minutes=60))


def serve(server: HTTPServer, name: str, status: int = 200, **headers: str) -> None:
    server.expect_request(PATH).respond_with_data(
        payload_bytes(name), status=status, content_type="application/json", headers=headers)


def test_wmo_table_and_haze() -> None:
    expected = {0: "晴天", 1: "晴天", 2: "多云", 3: "阴天", 45: "雾", 48: "雾", 51: "小雨",
                57: "小雨", 61: "小雨", 63: "雨天", 66: "雨天", 80: "小雨", 81: "雨天",
                65: "大雨", 67: "大雨", 82: "大雨", 71: "雪天", 77: "雪天", 85: "雪天",
                86: "雪天", 95: "雷暴", 99: "雷暴"}
    assert {code: WMO_WORDS[code] for code in expected} == expected
    assert weather_word(4) is None and weather_word(None) is None
    assert weather_word(0, pm2_5=150.0) == "霾" and weather_word(3, pm2_5=115.0) == "霾"
    assert weather_word(0, pm2_5=114.9) == "晴天"
    assert weather_word(61, pm2_5=300.0) == "小雨"  # rain is not haze


def test_hour_index_is_the_hour_that_contains_the_instant() -> None:
    times = payload("forecast_shanghai.json")["hourly"]["time"]
    assert hour_index(times, FORECAST_START + timedelta(hours=28, minutes=59)) == 28
    assert hour_index(times, FORECAST_START + timedelta(hours=29)) == 29
    assert hour_index(times, FORECAST_START - timedelta(seconds=1)) is None
    assert hour_index(times, FORECAST_START + timedelta(hours=96)) is None


def test_normal_fetch_stores_and_reads_the_event_hour(
    httpserver: HTTPServer, db: Database, client: Client
) -> None:
    serve(httpserver, "forecast_shanghai.json")
    weather = service(db, client, httpserver.url_for("/"))
    assert weather.refresh(NOW) is True
    request = httpserver.log[0][0]
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.args["timeformat"] == "unixtime" and request.args["past_days"] == "1"
    assert request.args["forecast_days"] == "3"
    assert request.args["hourly"] == "weather_code,temperature_2m,precipitation_probability"
    assert float(request.args["latitude"]) == LAT

    reading = weather.reading(RAIN_AT, NOW)
    assert (reading.word, reading.source, reading.weather_code) == ("小雨", "live", 61)
    assert reading.temperature == 7.9 and reading.precipitation_probability == 70.0
    assert reading.fetched_at == NOW and reading.note is None
    # Different hours, different skies: the forecast is per hour, not per day.
    assert weather.reading(datetime(2026, 2, 16, 19, 0, tzinfo=SH), NOW).word == "大雨"
    assert weather.reading(datetime(2026, 2, 17, 7, 0, tzinfo=SH), NOW).word == "雾"
    assert weather.reading(datetime(2026, 2, 19, 0, 30, tzinfo=SH), NOW).word == "雷暴"


def test_one_request_per_interval_even_across_restarts(
    httpserver: HTTPServer, db: Database, client: Client, tmp_path: Path
) -> None:
    serve(httpserver, "forecast_shanghai.json")
    assert service(db, client, httpserver.url_for("/")).refresh(NOW)
    restarted = Database(tmp_path / "chime.db")  # a new process on the same file
    try:
        again = service(restarted, client, httpserver.url_for("/"))
        assert not again.due(NOW + timedelta(minutes=59))
        assert again.refresh(NOW + timedelta(minutes=59)) is False
        assert hits(httpserver, PATH) == 1
        assert again.refresh(NOW + timedelta(minutes=60)) is True
        assert hits(httpserver, PATH) == 2
    finally:
        restarted.close()


@pytest.mark.parametrize(
    ("name", "status", "needle"),
    [
        ("forecast_no_hourly.json", 200, "no 'hourly' data"),
        ("forecast_partial.json", 200, "'hourly.weather_code' is missing or incomplete"),
        ("error_400.json", 400, "HTTP 400: Latitude must be in range"),
    ],
)
def test_bad_answers_leave_the_cache_alone(
    httpserver: HTTPServer, db: Database, client: Client,
    name: str, status: int, needle: str,
) -> None:
    serve(httpserver, name, status)
    weather = service(db, client, httpserver.url_for("/"))
    assert weather.refresh(NOW) is False
    reading = weather.reading(RAIN_AT, NOW)
    assert (reading.word, reading.source) == (UNKNOWN_WEATHER, "unknown")
    assert needle in (reading.note or "")


def test_invalid_json(httpserver: HTTPServer, db: Database, client: Client) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        payload_bytes("forecast_shanghai.json")[:700], content_type="application/json")
    weather = service(db, client, httpserver.url_for("/"))
    assert weather.refresh(NOW) is False
    assert "not valid JSON" in (weather.reading(RAIN_AT, NOW).note or "")


def test_client_raises_payload_errors_directly(
    httpserver: HTTPServer, client: Client
) -> None:
    serve(httpserver, "forecast_no_hourly.json")
    client = OpenMeteo(client, fast_policy(), base_url=httpserver.url_for("/v1/forecast"))
    with pytest.raises(FetchPayloadError):
        client.forecast(LAT, LON)


def test_timeout_then_cold_cache(db: Database, client: Client,
                                 httpserver: HTTPServer) -> None:
    import threading

    from werkzeug import Request, Response

    release = threading.Event()

    def slow(_req: Request) -> Response:
        release.wait(5)
        return Response("{}", content_type="application/json")

    httpserver.expect_request(PATH).respond_with_handler(slow)
    sleeps = Sleeps()
    client = OpenMeteo(client, fast_policy(sleeps, read_timeout=0.1, retries=1),
                       base_url=httpserver.url_for("/"))
    weather = WeatherService(db, client, LAT, LON)
    try:
        assert weather.refresh(NOW) is False
    finally:
        release.set()
    reading = weather.reading(RAIN_AT, NOW)
    assert (reading.word, reading.source) == (UNKNOWN_WEATHER, "unknown")
    assert "no answer in time" in (reading.note or "") and sleeps.waits == [0.25]


def test_connection_refused_with_a_cold_cache(db: Database, client: Client) -> None:
    sleeps = Sleeps()
    weather = service(db, client, refused_url("/"), sleeps=sleeps)
    assert weather.refresh(NOW) is False
    assert len(sleeps.waits) == 2  # bounded retries, no real waiting
    reading = weather.reading(RAIN_AT, NOW)
    assert (reading.word, reading.source) == (UNKNOWN_WEATHER, "unknown")
    assert "cannot connect" in (reading.note or "")
    # The failed attempt counts: no second request within the interval, even when cold.
    assert not weather.due(NOW + timedelta(minutes=30))


def test_500_keeps_the_warm_cache_serving(
    httpserver: HTTPServer, db: Database, client: Client
) -> None:
    serve(httpserver, "forecast_shanghai.json")
    weather = service(db, client, httpserver.url_for("/"))
    weather.refresh(NOW)
    httpserver.clear()
    httpserver.expect_request(PATH).respond_with_data("Internal Server Error", status=500)
    later = NOW + timedelta(hours=3)
    assert weather.refresh(later) is False
    assert hits(httpserver, PATH) == 3  # 1 + 2 retries
    reading = weather.reading(RAIN_AT, later)
    assert (reading.word, reading.source) == ("小雨", "cache")
    assert reading.note is not None and "offline" in reading.note


def test_429_retry_after_is_honoured_across_restarts(
    httpserver: HTTPServer, db: Database, client: Client, tmp_path: Path
) -> None:
    serve(httpserver, "error_429.json", 429, **{"Retry-After": "7200"})
    weather = service(db, client, httpserver.url_for("/"))
    assert weather.refresh(NOW) is False
    with db.session() as s:
        row = s.get(Forecast, weather.key)
        assert row is not None and row.payload["retry_after"] == 7200.0
    restarted = Database(tmp_path / "chime.db")
    try:
        again = service(restarted, client, httpserver.url_for("/"))
        assert again.refresh(NOW + timedelta(minutes=90)) is False  # past refresh, not Retry-After
        assert hits(httpserver, PATH) == 1
        httpserver.clear()
        serve(httpserver, "forecast_shanghai.json")
        assert again.refresh(NOW + timedelta(hours=2)) is True
        assert again.reading(RAIN_AT, NOW + timedelta(hours=2)).source == "live"
    finally:
        restarted.close()


def test_forecast_not_covering_the_event(
    httpserver: HTTPServer, db: Database, client: Client
) -> None:
    serve(httpserver, "forecast_shanghai.json")
    weather = service(db, client, httpserver.url_for("/"))
    weather.refresh(NOW)
    for at in (datetime(2026, 2, 25, 8, 0, tzinfo=SH),  # beyond the horizon
               datetime(2026, 2, 14, 8, 0, tzinfo=SH),  # before it
               FORECAST_START + timedelta(hours=94)):  # inside, but the code is null
        reading = weather.reading(at, NOW)
        assert (reading.word, reading.source) == (UNKNOWN_WEATHER, "unknown")
        assert "does not cover" in (reading.note or "")


def test_offline_warm_cache_serves_days_later(db: Database, client: Client,
                                              httpserver: HTTPServer) -> None:
    serve(httpserver, "forecast_shanghai.json")
    service(db, client, httpserver.url_for("/")).refresh(NOW)
    offline = service(db, client, refused_url("/"))  # the network is gone
    later = NOW + timedelta(hours=30)
    assert offline.refresh(later) is False
    reading = offline.reading(datetime(2026, 2, 18, 10, 0, tzinfo=SH), later)
    assert (reading.word, reading.source, reading.fetched_at) == ("多云", "cache", NOW)


def test_air_quality_turns_a_clear_sky_into_haze(
    httpserver: HTTPServer, db: Database, client: Client
) -> None:
    serve(httpserver, "forecast_shanghai.json")
    httpserver.expect_request("/v1/air-quality").respond_with_data(
        payload_bytes("air_quality_shanghai.json"), content_type="application/json")
    weather = service(db, client, httpserver.url_for("/"), air_url=httpserver.url_for("/"))
    weather.refresh(NOW)
    assert httpserver.log[-1][0].args["hourly"] == "pm2_5"
    hazy = FORECAST_START + timedelta(hours=56, minutes=10)  # WMO 0, PM2.5 142.7
    assert weather.reading(hazy, NOW).word == "霾"
    assert weather.reading(FORECAST_START + timedelta(hours=52), NOW).word == "晴天"


def test_air_quality_failure_keeps_the_forecast(
    httpserver: HTTPServer, db: Database, client: Client
) -> None:
    serve(httpserver, "forecast_shanghai.json")
    httpserver.expect_request("/v1/air-quality").respond_with_data("nope", status=404)
    weather = service(db, client, httpserver.url_for("/"), air_url=httpserver.url_for("/"))
    assert weather.refresh(NOW) is True
    assert weather.reading(FORECAST_START + timedelta(hours=56), NOW).word == "晴天"


def test_recorded_payload_has_the_real_shape() -> None:
    data = json.loads(payload_bytes("forecast_shanghai.json"))
    assert data["hourly_units"]["time"] == "unixtime" and data["timezone"] == "GMT"
    assert len(data["hourly"]["time"]) == 96
    assert datetime.fromtimestamp(data["hourly"]["time"][0], timezone.utc) == FORECAST_START
