"""The weather at an instant: Open-Meteo's hourly forecast, cached in the ``forecasts`` table.

* :class:`OpenMeteo` asks ``{base_url}/v1/forecast`` for ``weather_code``, ``temperature_2m``
  and ``precipitation_probability`` as unix times (zones stay exact), from yesterday
  (``past_days=1``) to ``forecast_days`` ahead, through :func:`daemon.http.request`.
  Optionally PM2.5 from ``{air_quality_url}/v1/air-quality`` turns a dry sky into 霾.
* :class:`WeatherService` keeps one row per location in ``forecasts``. ``refresh(now)`` asks
  the server at most once per refresh interval *per location, across restarts*: the attempt
  time (``attempted_at``) is committed before the request, and a 429's ``Retry-After`` is
  kept in the row. ``reading(at, now)`` never touches the network.
* The weather of an occurrence is the forecast for the hour that contains it. When nothing
  cached covers that hour the word is :data:`UNKNOWN_WEATHER` and the source ``unknown``.

Row layout: ``payload = {"hourly": {...} | None, "air": {...} | None, "retry_after": s | None,
"error": str | None}``; ``fetched_at`` is when ``hourly`` arrived (the first attempt's time
while no forecast has arrived yet — then ``hourly`` is None).
"""

from __future__ import annotations

import bisect
import itertools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from daemon.errors import FetchError, FetchHTTPError, FetchPayloadError
from daemon.http import FetchPolicy, describe_url, request
from daemon.http_cache import is_due
from daemon.store.db import Database
from daemon.store.models import Forecast

if TYPE_CHECKING:
    from daemon.http_client import Client

log = logging.getLogger("daemon.context.weather")

UNKNOWN_WEATHER = "多云"
"""The word used when no forecast covers the hour: neutral (asks for no umbrella, no sun hat,
no mask), the most common sky in the training data's cities, and never a false alarm."""

HOURLY = ("weather_code", "temperature_2m", "precipitation_probability")
HAZE_PM25 = 115.0  # µg/m³: China's "moderate pollution" band (GB 3095-2012 / HJ 633) starts here
DRY_SKIES = frozenset({"晴天", "多云", "阴天"})  # haze only replaces these

# WMO 4677 codes as Open-Meteo emits them → the LoRA's weather words.
# 80 (slight rain showers) is 小雨 rather than 雨天: it is the same intensity as 61.
WMO_WORDS: dict[int, str] = {
    0: "晴天", 1: "晴天", 2: "多云", 3: "阴天",
    45: "雾", 48: "雾",
    51: "小雨", 53: "小雨", 55: "小雨", 56: "小雨", 57: "小雨",
    61: "小雨", 63: "雨天", 65: "大雨", 66: "雨天", 67: "大雨",
    71: "雪天", 73: "雪天", 75: "雪天", 77: "雪天",
    80: "小雨", 81: "雨天", 82: "大雨",
    85: "雪天", 86: "雪天",
    95: "雷暴", 96: "雷暴", 99: "雷暴",
}
HAZE_WORD = "霾"
WEATHER_WORDS = tuple(dict.fromkeys([*WMO_WORDS.values(), HAZE_WORD]))
"""Every weather word the context can produce (the prompt grid of ``chime model prompts``)."""


def weather_word(code: int | None, pm2_5: float | None = None) -> str | None:
    """The word for a WMO code (None if unknown); heavy PM2.5 under a dry sky is 霾."""
    word = WMO_WORDS.get(code) if code is not None else None
    if word in DRY_SKIES and pm2_5 is not None and pm2_5 >= HAZE_PM25:
        return HAZE_WORD
    return word


def location_key(latitude: float, longitude: float) -> str:
    """The forecasts row for a location (≈100 m grid: a moved config makes a new row)."""
    return f"{latitude:.3f},{longitude:.3f}"


def _endpoint(base: str, path: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(path) else base + path


def _series(data: Any, block: str, names: tuple[str, ...], where: str) -> dict[str, list[Any]]:
    """Validate an hourly block (unix ``time`` + equal-length numeric series) and keep it."""
    if not isinstance(data, dict):
        raise FetchPayloadError(f"{where}: the answer is not a JSON object")
    hourly = data.get(block)
    if not isinstance(hourly, dict):
        raise FetchPayloadError(f"{where}: the answer has no '{block}' data")
    times = hourly.get("time")
    if not isinstance(times, list) or not times:
        raise FetchPayloadError(f"{where}: '{block}.time' is missing or empty")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in times):
        raise FetchPayloadError(f"{where}: '{block}.time' is not unix time")
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise FetchPayloadError(f"{where}: '{block}.time' is not ascending")
    kept: dict[str, list[Any]] = {"time": times}
    for name in names:
        values = hourly.get(name)
        if not isinstance(values, list) or len(values) != len(times):
            raise FetchPayloadError(f"{where}: '{block}.{name}' is missing or incomplete")
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                   for v in values):
            raise FetchPayloadError(f"{where}: '{block}.{name}' holds non-numbers")
        kept[name] = values
    return kept


def hour_index(times: list[int], at: datetime) -> int | None:
    """Index of the hour that contains ``at`` in ascending unix ``times``, or None."""
    stamp = at.timestamp()
    i = bisect.bisect_right(times, stamp) - 1
    if i < 0:
        return None
    step = times[i + 1] - times[i] if i + 1 < len(times) else (
        times[i] - times[i - 1] if i > 0 else 3600)
    return i if stamp < times[i] + step else None


class OpenMeteo:
    """The Open-Meteo client: one forecast (and optional air-quality) request per call."""

    def __init__(self, client: Client, policy: FetchPolicy, *,
                 base_url: str = "https://api.open-meteo.com", forecast_days: int = 3,
                 air_quality_url: str = "") -> None:
        self.client = client
        self.policy = policy
        self.forecast_url = _endpoint(base_url, "/v1/forecast")
        self.air_url = _endpoint(air_quality_url, "/v1/air-quality") if air_quality_url else ""
        self.forecast_days = forecast_days

    def forecast(self, latitude: float, longitude: float) -> dict[str, list[Any]]:
        """The hourly forecast, validated: ``{"time": [...], "weather_code": [...], …}``."""
        params = {
            "latitude": latitude,
            "longitude": longitude,
            "hourly": ",".join(HOURLY),
            "timeformat": "unixtime",
            "past_days": 1,
            "forecast_days": self.forecast_days,
        }
        reply = request(self.client, self.forecast_url, policy=self.policy, params=params)
        return _series(reply.json(), "hourly", HOURLY, describe_url(self.forecast_url))

    def air_quality(self, latitude: float, longitude: float) -> dict[str, list[Any]] | None:
        """Hourly PM2.5 (µg/m³), or None when no air-quality URL is configured."""
        if not self.air_url:
            return None
        params = {
            "latitude": latitude,
            "longitude": longitude,
            "hourly": "pm2_5",
            "timeformat": "unixtime",
            "past_days": 1,
            "forecast_days": min(self.forecast_days, 7),
        }
        reply = request(self.client, self.air_url, policy=self.policy, params=params)
        return _series(reply.json(), "hourly", ("pm2_5",), describe_url(self.air_url))


@dataclass(frozen=True)
class Reading:
    """The weather for one instant, as the context records it."""

    word: str
    source: str  # live | cache | unknown
    temperature: float | None = None
    precipitation_probability: float | None = None
    weather_code: int | None = None
    fetched_at: datetime | None = None
    note: str | None = None


def unknown(note: str) -> Reading:
    return Reading(word=UNKNOWN_WEATHER, source="unknown", note=note)


class WeatherService:
    """The forecast for one configured location, kept in SQLite and used offline."""

    def __init__(self, db: Database, client: OpenMeteo, latitude: float, longitude: float,
                 refresh: timedelta = timedelta(minutes=60)) -> None:
        self.db = db
        self.client = client
        self.latitude = latitude
        self.longitude = longitude
        self.interval = refresh
        self.key = location_key(latitude, longitude)

    def due(self, now: datetime) -> bool:
        """Whether a request is allowed now (interval and Retry-After, across restarts)."""
        with self.db.session() as s:
            row = s.get(Forecast, self.key)
            if row is None:
                return True
            return is_due(now, row.attempted_at, (row.payload or {}).get("retry_after"),
                          self.interval)

    def refresh(self, now: datetime) -> bool:
        """Fetch the forecast if due; True when a new one was stored. Raises only StoreError."""
        with self.db.session() as s:
            row = s.get(Forecast, self.key)
            if row is None:
                row = Forecast(location=self.key, fetched_at=now,
                               payload={"hourly": None, "air": None})
                s.add(row)
            elif not is_due(now, row.attempted_at, (row.payload or {}).get("retry_after"),
                            self.interval):
                return False
            row.attempted_at = now  # committed before the request: a crash still counts
        try:
            hourly = self.client.forecast(self.latitude, self.longitude)
        except FetchError as exc:
            log.warning("weather: %s; the cached forecast stays in use", exc)
            retry_after = exc.retry_after if isinstance(exc, FetchHTTPError) else None
            self._update(error=str(exc), retry_after=retry_after)
            return False
        air: dict[str, list[Any]] | None = None
        try:
            air = self.client.air_quality(self.latitude, self.longitude)
        except FetchError as exc:
            log.warning("air quality: %s; 霾 is decided from the last reading", exc)
        self._update(hourly=hourly, air=air, fetched_at=now)
        log.info("weather: forecast stored (%d hours)", len(hourly["time"]))
        return True

    def _update(self, *, hourly: dict[str, Any] | None = None, air: dict[str, Any] | None = None,
                fetched_at: datetime | None = None, error: str | None = None,
                retry_after: float | None = None) -> None:
        with self.db.session() as s:
            row = s.get(Forecast, self.key)
            if row is None:  # removed meanwhile; nothing to update
                return
            payload = dict(row.payload or {})
            if hourly is not None:
                payload["hourly"] = hourly
            if air is not None:
                payload["air"] = air
            payload["error"] = error
            payload["retry_after"] = retry_after
            row.payload = payload  # a new dict: SQLAlchemy's JSON type sees the change
            if fetched_at is not None:
                row.fetched_at = fetched_at

    def reading(self, at: datetime, now: datetime) -> Reading:
        """The weather for the hour containing ``at`` from the cache (no network)."""
        with self.db.session() as s:
            row = s.get(Forecast, self.key)
            payload = dict(row.payload or {}) if row is not None else {}
            fetched_at = row.fetched_at if row is not None else None
        hourly = payload.get("hourly")
        if not hourly:
            reason = payload.get("error") or "nothing fetched yet"
            return unknown(f"weather: no forecast cached ({reason})")
        i = hour_index(hourly["time"], at)
        code = hourly["weather_code"][i] if i is not None else None
        if i is None or code is None:
            return unknown(f"weather: the forecast fetched {_iso(fetched_at)} does not cover "
                           f"{at.isoformat()}")
        code = int(code)
        word = weather_word(code, _pm25(payload.get("air"), at))
        if word is None:
            return unknown(f"weather: WMO code {code} has no word")
        fresh = fetched_at is not None and now - fetched_at <= 2 * self.interval
        note = None if fresh else f"weather: offline, forecast from {_iso(fetched_at)}"
        return Reading(
            word=word,
            source="live" if fresh else "cache",
            temperature=_num(hourly["temperature_2m"][i]),
            precipitation_probability=_num(hourly["precipitation_probability"][i]),
            weather_code=code,
            fetched_at=fetched_at,
            note=note,
        )


def _pm25(air: dict[str, Any] | None, at: datetime) -> float | None:
    if not air:
        return None
    i = hour_index(air["time"], at)
    return _num(air["pm2_5"][i]) if i is not None else None


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _iso(t: datetime | None) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="minutes") if t else "never"
