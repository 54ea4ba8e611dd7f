"""Helpers for the context tests (http, weather, days): recorded payloads, fast policies."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from daemon.http import FetchPolicy

DATA = Path(__file__).resolve().parent / "data"
OPENMETEO = DATA / "openmeteo"

# The recorded forecast starts at 2026-02-15 00:00 UTC (past_days=1) and runs 96 hours.
FORECAST_START = datetime(2026, 2, 15, 0, 0, tzinfo=timezone.utc)


def payload(name: str) -> Any:
    """A recorded Open-Meteo answer from tests/data/openmeteo/."""
    return json.loads((OPENMETEO / name).read_text(encoding="utf-8"))


def payload_bytes(name: str) -> bytes:
    return (OPENMETEO / name).read_bytes()


class Sleeps:
    """An injectable ``sleep`` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def fast_policy(sleeps: Sleeps | None = None, **overrides: Any) -> FetchPolicy:
    """Tiny timeouts and no real backoff waits."""
    values: dict[str, Any] = {
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
        "retries": 2,
        "backoff": 0.25,
        "total_timeout": 5.0,
        "sleep": sleeps if sleeps is not None else Sleeps(),
    }
    values.update(overrides)
    return FetchPolicy(**values)


def refused_url(path: str = "/v1/forecast") -> str:
    """A loopback URL on a port where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def hits(server: Any, path: str) -> int:
    """How many requests for ``path`` the pytest-httpserver saw in this test."""
    return sum(1 for req, _ in server.log if req.path == path)


# A holiday feed (2027 spring festival + its makeup day, and a company day in 2026).
FEED = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//holiday feed//ZH
BEGIN:VEVENT
UID:2027-spring@test
DTSTART;VALUE=DATE:20270206
DTEND;VALUE=DATE:20270214
SUMMARY:春节 假期
END:VEVENT
BEGIN:VEVENT
UID:2027-spring-work@test
DTSTART;VALUE=DATE:20270220
DTEND;VALUE=DATE:20270221
SUMMARY:春节 补班
END:VEVENT
BEGIN:VEVENT
UID:2026-company@test
DTSTART;VALUE=DATE:20261202
SUMMARY:公司年会
END:VEVENT
END:VCALENDAR
"""
