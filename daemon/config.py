"""Typed settings from a TOML file plus ``CHIME_*`` environment variables, validated in one pass.

The bottom layer: it imports only ``errors``, ``timeparse``, ``priority`` and the modules beside
it — ``config_values`` (pure parsers: quiet hours, clock times, spans, part-of-day boundaries,
URLs, the output names) and ``config_checks`` (value and cross-key rules). Loading collects
every problem (unknown section, unknown key, wrong type, bad value) and raises one
``ConfigError`` whose ``problems`` name each bad key with its section. Values come back
converted (``timedelta``, ``time``, ``tuple[time, time]``, ``list[Span]``…): no consumer parses
a setting again.

To add a key: add a field to its section's dataclass with a default. Its annotation decides the
conversion (``str``, ``int``, ``float``, ``bool``, ``timedelta``, ``list[str]``,
``dict[str, str]``, optional ones); a key whose value needs a parser is declared with
``field(default=…, metadata=parsed(parser, <TOML type>))``, and the parser (in
config_values.py) returns the converted value or raises ValueError. Range and cross-key
rules go in config_checks.py. A new section is one more dataclass and one attribute of
``Settings``.

Where things live (first match wins):

* config file: ``--config`` / ``CHIME_CONFIG`` / ``$XDG_CONFIG_HOME/chime/config.toml``
* database:   ``--db`` / ``CHIME_DB`` / ``[daemon] db`` / ``$STATE_DIRECTORY/chime.db``
  (systemd) / ``$XDG_DATA_HOME/chime/chime.db``
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon import config_checks
from daemon.config_values import (
    DEFAULT_PARTS_OF_DAY,
    Span,
    parse_boundaries,
    parse_clock_time,
    parse_log_level,
    parse_quiet_hours,
    parse_spans,
    unknown_outputs,
)
from daemon.errors import ConfigError, InputError
from daemon.timeparse import parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parsed(parse: Callable[[Any], Any], raw: Any = str) -> dict[str, Any]:
    """Field metadata: the TOML value (of type ``raw``) is converted by ``parse`` when loaded."""
    return {"parse": parse, "raw": raw}


def _output_names(names: list[str]) -> list[str]:
    problem = unknown_outputs(names)
    if problem:
        raise ValueError(problem)
    return names


def system_timezone() -> str:
    """The machine's IANA zone name (``TZ``, ``/etc/timezone``, ``/etc/localtime``), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                ZoneInfo(name)
                return name
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"


@dataclass
class DaemonSettings:
    """[daemon]: the service loop and the planner."""

    db: str = ""
    timezone: str = ""
    outputs: list[str] = field(default_factory=lambda: ["console"],
                               metadata=parsed(_output_names, list[str]))
    lead: timedelta = timedelta(minutes=5)
    horizon: timedelta = timedelta(hours=1)
    grace: timedelta = timedelta(minutes=30)
    late_after: timedelta = timedelta(seconds=60)
    poll: timedelta = timedelta(seconds=1)
    heartbeat: timedelta = timedelta(seconds=5)
    log_level: str = field(default="INFO", metadata=parsed(parse_log_level))
    wait_for_time_sync: bool | None = None  # unset: wait on a board without an RTC
    time_sync_max_wait: timedelta = timedelta(minutes=5)
    time_sync_flag: str = ""  # a file whose existence means synchronised (see timesync.py)
    nag: timedelta = timedelta(0)  # repeat unacknowledged reminders this often; 0: never
    nag_max: int = 6  # at most this many repeats, then the reminder is unacknowledged


@dataclass
class LocationSettings:
    """[location]: where the forecast is for."""

    latitude: float | None = None
    longitude: float | None = None
    name: str = ""


@dataclass
class WeatherSettings:
    """[weather]: the Open-Meteo client."""

    base_url: str = "https://api.open-meteo.com"
    air_quality_url: str = ""
    refresh: timedelta = timedelta(minutes=60)
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    retries: int = 2
    forecast_days: int = 3


@dataclass
class DaysSettings:
    """[days]: the kind of day (holidays, 调休, user periods and personal days)."""

    country: str = "CN"
    festivals: bool = True
    periods: list[Span] = field(default_factory=list, metadata=parsed(parse_spans, list[str]))
    personal: list[Span] = field(default_factory=list, metadata=parsed(parse_spans, list[str]))
    holiday_feed: str = ""
    feed_refresh: timedelta = timedelta(hours=24)
    parts_of_day: list[tuple[time, str]] = field(
        default_factory=lambda: parse_boundaries(DEFAULT_PARTS_OF_DAY),
        metadata=parsed(parse_boundaries, list[str]))


@dataclass
class ModelSettings:
    """[model]: the local character model."""

    base: str = "bigscience/bloomz-1b7"
    adapter: str = "nadcy/bloomz-1b7_MONA_LORA"
    models_dir: str = ""
    backend: str = "auto"
    device: str = "auto"
    kernel: str = "auto"  # torch-int8 matmuls: auto, int-mm, dynamic (quantized), weight-only
    enabled: bool = True
    temperature: float = 0.8
    top_p: float = 0.9
    repetition_penalty: float = 1.2
    max_new_tokens: int = 64
    keep_warm: timedelta = timedelta(seconds=60)
    batch_window: timedelta = timedelta(minutes=30)
    timeout: timedelta = timedelta(minutes=3)
    threads: int = 0


@dataclass
class GuardSettings:
    """[guards]: temperature and memory limits around the generation worker."""

    use_jtop: bool = True
    sysfs_root: str = "/sys"
    start_temp: float | None = None
    abort_temp: float | None = None
    start_margin: float = 20.0  # start limit = passive trip point - this, when start_temp unset
    abort_margin: float = 5.0  # abort limit = passive trip point - this, when abort_temp unset
    ram_margin_mb: int = 300
    ram_floor_mb: int = 200
    check_every: timedelta = timedelta(seconds=1)
    wait_step: timedelta = timedelta(seconds=10)
    ignore_zones: list[str] = field(default_factory=lambda: ["PMIC*"])
    keep_decisions: int = 20


@dataclass
class DesktopSettings:
    """[desktop]: freedesktop notifications over the session D-Bus."""

    app_name: str = "chime"
    urgency: str = "normal"
    expire_ms: int = -1
    snooze: timedelta = timedelta(minutes=10)
    actions: bool = True
    icon: str = ""
    timeout: timedelta = timedelta(seconds=10)


@dataclass
class SpeakerSettings:
    """[speaker]: offline text-to-speech through the speaker."""

    engine: str = "espeak-ng"
    voice: str = "cmn-latn-pinyin"
    piper_model: str = ""
    player: str = "aplay"
    volume: int = 100
    speed: int = 150
    quiet_hours: tuple[time, time] | None = field(default=None,
                                                  metadata=parsed(parse_quiet_hours))
    chime_sound: str = ""
    timeout: timedelta = timedelta(seconds=60)


@dataclass
class WebhookSettings:
    """[webhook]: POST each reminder as JSON to a URL (ntfy, Gotify, Home Assistant…)."""

    url: str = ""
    timeout: float = 5.0
    headers: dict[str, str] = field(default_factory=dict)
    topic: str = ""


@dataclass
class NtfySettings:
    """[ntfy]: push each reminder to a phone through an ntfy server (ntfy.sh or your own)."""

    url: str = "https://ntfy.sh"
    topic: str = ""
    token: str = ""  # an access token (Authorization: Bearer), or user + password
    user: str = ""
    password: str = ""
    priority: str = "default"  # min, low, default, high, max or 1-5
    tags: list[str] = field(default_factory=list)
    timeout: float = 10.0


@dataclass
class CalendarSettings:
    """[calendars]: imported and subscribed .ics calendars."""

    all_day_at: time = field(default=time(8, 0), metadata=parsed(parse_clock_time))
    default_every: timedelta = timedelta(minutes=30)


@dataclass
class WebSettings:
    """[web]: the page and JSON API (`chime web`); listening beyond loopback needs the token."""

    listen: str = "127.0.0.1"
    port: int = 8765
    public_url: str = ""  # how a phone reaches the page (ntfy action buttons, `chime web token`)
    max_upload_kb: int = 1024  # an uploaded .ics; JSON bodies are capped at 64 KB


@dataclass
class Settings:
    """All settings; one attribute per TOML section."""

    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    location: LocationSettings = field(default_factory=LocationSettings)
    weather: WeatherSettings = field(default_factory=WeatherSettings)
    days: DaysSettings = field(default_factory=DaysSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    guards: GuardSettings = field(default_factory=GuardSettings)
    desktop: DesktopSettings = field(default_factory=DesktopSettings)
    speaker: SpeakerSettings = field(default_factory=SpeakerSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    ntfy: NtfySettings = field(default_factory=NtfySettings)
    calendars: CalendarSettings = field(default_factory=CalendarSettings)
    web: WebSettings = field(default_factory=WebSettings)
    config_path: Path | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.daemon.timezone)

    @property
    def db_path(self) -> Path:
        return Path(self.daemon.db)

    @property
    def data_dir(self) -> Path:
        return self.db_path.parent

    @property
    def models_dir(self) -> Path:
        return Path(self.model.models_dir) if self.model.models_dir else self.data_dir / "models"


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "chime" / "config.toml"


def default_db_path() -> Path:
    state = os.environ.get("STATE_DIRECTORY")
    if state:  # systemd's StateDirectory=; may hold several paths separated by ':'
        return Path(state.split(":")[0]) / "chime.db"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "chime" / "chime.db"


def load_settings(config: str | Path | None = None, db: str | Path | None = None) -> Settings:
    """Read, merge and validate the settings; raise one ConfigError naming every bad key."""
    explicit = config or os.environ.get("CHIME_CONFIG")
    path = Path(explicit) if explicit else default_config_path()
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    elif explicit:
        raise ConfigError(f"config file {path} does not exist")
    settings, problems = _build(raw)
    settings.config_path = path if path.exists() else None
    db_override = db or os.environ.get("CHIME_DB")
    if db_override:
        settings.daemon.db = str(db_override)
    if not settings.daemon.db:
        settings.daemon.db = str(default_db_path())
    settings.daemon.db = str(Path(settings.daemon.db).expanduser())
    tz_override = os.environ.get("CHIME_TIMEZONE")
    if tz_override:
        settings.daemon.timezone = tz_override
    if not settings.daemon.timezone:
        settings.daemon.timezone = system_timezone()
    wait_override = os.environ.get("CHIME_WAIT_FOR_TIME_SYNC", "").strip().lower()
    if wait_override in ("1", "true", "0", "false"):
        settings.daemon.wait_for_time_sync = wait_override in ("1", "true")
    elif wait_override:
        problems.append("CHIME_WAIT_FOR_TIME_SYNC: expected 1, 0, true or false")
    problems += config_checks.check(settings)  # a value that did not convert kept its default
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems), problems)
    return settings


def _build(raw: dict[str, Any]) -> tuple[Settings, list[str]]:
    settings = Settings()
    problems: list[str] = []
    sections = {f.name for f in dataclasses.fields(Settings) if f.name != "config_path"}
    for name, table in raw.items():
        if name not in sections:
            problems.append(f"[{name}] is not a known section")
            continue
        if not isinstance(table, dict):
            problems.append(f"[{name}] must be a table")
            continue
        section = getattr(settings, name)
        hints = typing.get_type_hints(type(section))
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in table.items():
            if key not in fields:
                problems.append(f"[{name}] {key}: unknown key")
                continue
            meta = fields[key].metadata
            try:
                value = _coerce(value, meta.get("raw", hints[key]))
                setattr(section, key, meta["parse"](value) if "parse" in meta else value)
            except (TypeError, ValueError, InputError) as exc:
                problems.append(f"[{name}] {key}: {exc}")
    return settings, problems


def _coerce(value: Any, hint: Any) -> Any:
    """Turn a TOML value into the annotated type, or raise with a short reason."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(value, args[0])
    if hint is timedelta:
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                delta = timedelta(seconds=value)
            elif isinstance(value, str):
                delta = parse_duration(value)
            else:
                raise TypeError
        except (OverflowError, TypeError, ValueError):  # 1e300 seconds, nan
            raise TypeError(f"expected a duration like '10m', got {value!r}") from None
        if delta < timedelta(0):
            raise ValueError(f"must not be negative, got {value!r}")
        return delta
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {value!r}")
    if origin is list:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise TypeError(f"expected a list of strings, got {value!r}")
    if origin is dict:
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
        raise TypeError(f"expected a table of strings, got {value!r}")
    raise TypeError(f"unsupported setting type {hint!r}")  # pragma: no cover
