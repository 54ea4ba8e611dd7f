"""The value and cross-key checks of the settings, one message per problem ``[section] key: why``.

``check(settings)`` runs at load (``config.load_settings``) over every section; the rules that
say what an output needs to work (a URL, a topic, a voice model) are in ``output_problems``,
run at load for the outputs ``[daemon] outputs`` enables and by each output when it is built
(``require``), so ``chime test-output webhook`` says the same as a bad config does.
Types and single values are already converted by the time these run (see config.py).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.config_values import (
    SPEAKER_ENGINES,
    SPEAKER_PLAYERS,
    VOLUME_RANGE,
    check_header,
    country_problem,
    is_http_url,
)
from daemon.errors import ConfigError, InputError
from daemon.priority import parse_priority

if TYPE_CHECKING:
    from daemon.config import Settings

URGENCIES = ("low", "normal", "critical")


def check(s: Settings) -> list[str]:
    """Every problem of the loaded settings (empty when they are usable)."""
    problems = _daemon(s) + _context(s) + _model(s) + _guards(s) + _outputs(s)
    problems += _calendars(s) + _web(s)
    for name in dict.fromkeys(s.daemon.outputs):
        problems += _needs(s, name)
    return problems


def output_problems(s: Settings, name: str) -> list[str]:
    """What stands between output ``name`` and working: its section's values and needs."""
    return [p for p in _outputs(s) if p.startswith(f"[{name}]")] + _needs(s, name)


def require(s: Settings, name: str) -> None:
    """Raise one ConfigError listing every problem of output ``name`` (an output's __init__)."""
    problems = output_problems(s, name)
    if problems:
        raise ConfigError("; ".join(problems), problems)


def _daemon(s: Settings) -> list[str]:
    d = s.daemon
    problems = []
    try:
        ZoneInfo(d.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"[daemon] timezone: unknown time zone {d.timezone!r}")
    if d.horizon < timedelta(minutes=10):
        problems.append("[daemon] horizon: must be at least 10m")
    if d.lead > d.horizon:
        problems.append("[daemon] lead: must not exceed [daemon] horizon")
    for key in ("poll", "heartbeat"):
        if getattr(d, key) <= timedelta(0):
            problems.append(f"[daemon] {key}: must be positive")
    if d.nag and not timedelta(seconds=1) <= d.nag <= timedelta(days=1):
        problems.append("[daemon] nag: must be 0 (off) or between 1s and 1d")
    if not 1 <= d.nag_max <= 100:
        problems.append("[daemon] nag_max: must be between 1 and 100")
    if not timedelta(0) <= d.time_sync_max_wait <= timedelta(days=1):
        problems.append("[daemon] time_sync_max_wait: must be between 0 and 1d")
    if d.time_sync_flag and not Path(d.time_sync_flag).is_absolute():
        problems.append("[daemon] time_sync_flag: must be an absolute path")
    return problems


def _context(s: Settings) -> list[str]:
    """[location], [weather] and [days]."""
    problems: list[str] = []
    lat, lon = s.location.latitude, s.location.longitude
    if (lat is None) != (lon is None):
        problems.append("[location] latitude and longitude go together")
    if lat is not None and not -90 <= lat <= 90:
        problems.append("[location] latitude: must be between -90 and 90")
    if lon is not None and not -180 <= lon <= 180:
        problems.append("[location] longitude: must be between -180 and 180")
    if any(ord(c) < 32 for c in s.location.name) or len(s.location.name) > 60:
        problems.append("[location] name: at most 60 characters, no control characters")
    w = s.weather
    if not is_http_url(w.base_url):
        problems.append(f"[weather] base_url: {w.base_url!r} is not an http(s) URL")
    if w.air_quality_url and not is_http_url(w.air_quality_url):
        problems.append(f"[weather] air_quality_url: {w.air_quality_url!r} is not an http(s) URL")
    if w.refresh < timedelta(minutes=10):
        problems.append("[weather] refresh: must be at least 10m (be kind to the service)")
    for key in ("connect_timeout", "read_timeout"):
        if not 0 < getattr(w, key) <= 120:
            problems.append(f"[weather] {key}: must be between 0 and 120 seconds")
    if not 0 <= w.retries <= 5:
        problems.append("[weather] retries: must be between 0 and 5")
    if not 3 <= w.forecast_days <= 16:
        problems.append("[weather] forecast_days: must be between 3 and 16")
    d = s.days
    problem = country_problem(d.country)
    if problem:
        problems.append(f"[days] country: {problem}")
    if d.holiday_feed and not is_http_url(d.holiday_feed):
        problems.append(f"[days] holiday_feed: {d.holiday_feed!r} is not an http(s) URL")
    if d.feed_refresh < timedelta(hours=1):
        problems.append("[days] feed_refresh: must be at least 1h")
    return problems


def _model(s: Settings) -> list[str]:
    m = s.model
    problems = []
    if m.backend not in ("auto", "bnb-int8", "torch-int8", "bf16", "fp32"):
        problems.append("[model] backend: must be one of auto, bnb-int8, torch-int8, bf16, fp32")
    if m.device not in ("auto", "cpu", "cuda"):
        problems.append("[model] device: must be one of auto, cpu, cuda")
    if m.kernel not in ("auto", "int-mm", "dynamic", "weight-only"):
        problems.append("[model] kernel: must be one of auto, int-mm, dynamic, weight-only")
    if m.batch_window > s.daemon.horizon:
        problems.append("[model] batch_window: must not exceed [daemon] horizon")
    if m.timeout <= timedelta(0):
        problems.append("[model] timeout: must be positive")
    return problems


def _guards(s: Settings) -> list[str]:
    g = s.guards
    problems: list[str] = []
    for key in ("start_temp", "abort_temp"):
        value = getattr(g, key)
        if value is not None and not 20 <= value <= 150:
            problems.append(f"[guards] {key}: must be between 20 and 150 (°C)")
    if g.start_temp is not None and g.abort_temp is not None and g.start_temp >= g.abort_temp:
        problems.append("[guards] start_temp: must be below abort_temp")
    for key in ("start_margin", "abort_margin"):
        if not 0 <= getattr(g, key) <= 60:
            problems.append(f"[guards] {key}: must be between 0 and 60 (°C)")
    if g.abort_margin > g.start_margin:
        problems.append("[guards] abort_margin: must not exceed start_margin")
    for key in ("ram_margin_mb", "ram_floor_mb"):
        if getattr(g, key) < 0:
            problems.append(f"[guards] {key}: must not be negative")
    if not timedelta(0) < g.check_every <= timedelta(minutes=1):
        problems.append("[guards] check_every: must be between 0 and 1m")
    if g.wait_step <= timedelta(0):
        problems.append("[guards] wait_step: must be positive")
    if not 1 <= g.keep_decisions <= 1000:
        problems.append("[guards] keep_decisions: must be between 1 and 1000")
    if not g.sysfs_root:
        problems.append("[guards] sysfs_root: must not be empty")
    return problems


def _outputs(s: Settings) -> list[str]:
    """The values of the output sections, whether or not the output is enabled."""
    problems = []
    desk = s.desktop
    if desk.urgency not in URGENCIES:
        problems.append("[desktop] urgency: must be low, normal or critical")
    if desk.expire_ms < -1:
        problems.append("[desktop] expire_ms: must be -1 (server default), 0 (never) "
                        "or a number of milliseconds")
    for key in ("timeout", "snooze"):
        if getattr(desk, key) <= timedelta(0):
            problems.append(f"[desktop] {key}: must be positive")
    sp = s.speaker
    if sp.engine not in SPEAKER_ENGINES:
        problems.append(f"[speaker] engine: must be one of {', '.join(SPEAKER_ENGINES)}")
    if Path(sp.player).name not in SPEAKER_PLAYERS:
        problems.append(f"[speaker] player: must be one of {', '.join(SPEAKER_PLAYERS)} "
                        f"(or a path to one of them)")
    if not sp.voice or any(c.isspace() or ord(c) < 32 for c in sp.voice):
        problems.append(f"[speaker] voice: {sp.voice!r} is not a voice name like cmn-latn-pinyin")
    low, high = VOLUME_RANGE
    if not low <= sp.volume <= high:
        problems.append(f"[speaker] volume: must be between {low} and {high}")
    if not 80 <= sp.speed <= 450:
        problems.append("[speaker] speed: must be between 80 and 450 words per minute")
    if sp.timeout <= timedelta(0):
        problems.append("[speaker] timeout: must be positive")
    hook = s.webhook
    if hook.url and not is_http_url(hook.url):
        problems.append(f"[webhook] url: expected an http:// or https:// URL, got {hook.url!r}")
    if hook.timeout <= 0:
        problems.append("[webhook] timeout: must be a positive number of seconds")
    for header, value in hook.headers.items():
        try:
            check_header(header, value)
        except ValueError as exc:
            problems.append(f"[webhook] headers: {exc}")
    n = s.ntfy
    if not is_http_url(n.url):
        problems.append(f"[ntfy] url: expected an http:// or https:// URL, got {n.url!r}")
    if n.topic and not re.fullmatch(r"[-_A-Za-z0-9]{1,64}", n.topic):
        problems.append(f"[ntfy] topic: {n.topic!r} is not a valid topic (letters, digits, "
                        f"- and _, at most 64)")
    try:
        parse_priority(n.priority)
    except InputError as exc:
        problems.append(f"[ntfy] priority: {exc}")
    if n.token and (n.user or n.password):
        problems.append("[ntfy] token: give a token or user and password, not both")
    if bool(n.user) != bool(n.password):
        problems.append("[ntfy] user and password go together")
    if n.timeout <= 0:
        problems.append("[ntfy] timeout: must be a positive number of seconds")
    return problems


def _needs(s: Settings, name: str) -> list[str]:
    """What an enabled output needs beyond valid values."""
    if name == "webhook" and not s.webhook.url:
        return ["[webhook] url: not set (e.g. 'http://192.168.1.5:8080/chime')"]
    if name == "speaker" and s.speaker.engine == "piper" and not s.speaker.piper_model:
        return ["[speaker] piper_model: the piper engine needs a voice model file"]
    if name == "ntfy" and not s.ntfy.topic:
        return ["[ntfy] topic: not set (pick a name that is hard to guess: "
                "anyone who knows it can read your reminders on ntfy.sh)"]
    return []


def _calendars(s: Settings) -> list[str]:
    every = s.calendars.default_every
    if not timedelta(minutes=5) <= every <= timedelta(days=7):
        return ["[calendars] default_every: must be between 5m and 7d"]
    return []


def _web(s: Settings) -> list[str]:
    w = s.web
    problems: list[str] = []
    if not w.listen.strip():
        problems.append("[web] listen: must not be empty")
    if not 1 <= w.port <= 65535:
        problems.append("[web] port: must be between 1 and 65535")
    if w.public_url and not is_http_url(w.public_url):
        problems.append("[web] public_url: must start with http:// or https://")
    if not 1 <= w.max_upload_kb <= 65536:
        problems.append("[web] max_upload_kb: must be between 1 and 65536")
    return problems
