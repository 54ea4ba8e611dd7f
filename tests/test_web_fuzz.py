"""Property test of the JSON API (issue #15): whatever the body, never a 500, never a Python
message, and a refused request leaves the database as it was."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_fixtures import WebServer, dump

from daemon.app import App
from daemon.clock import FixedClock
from daemon.config import load_settings
from daemon.store.models import Occurrence

PYTHON_TALK = re.compile(r"Traceback|File \"|object has no attribute|NoneType|not subscriptable|"
                         r"unsupported operand|invalid literal|sqlalchemy|sqlite3|builtins|"
                         r"Errno|can't convert|takes \d+ positional|KeyError|TypeError")
PHRASES = ["明天早上8点", "今晚8点", "in 10 minutes", "tomorrow 8:00", "2036-01-01T08:00", "8点",
           "daily", "weekdays", "每天", "FREQ=WEEKLY;BYDAY=MO", "FREQ=DAILY;COUNT=x", "10m", "0s",
           "7d", "1h30m", "9" * 40, "Asia/Shanghai", "Mars/Base", "console", "none", "", " ",
           "-5m", "1e9999", "\u0000", "\ud800", "<script>", "RRULE:FREQ=MINUTELY"]
FIELDS = ["text", "at", "every", "lead", "outputs", "tz", "paused", "for", "url", "nag",
          "nag_max", "priority"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(PHRASES),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8)
field_values = st.sampled_from(PHRASES) | st.lists(st.sampled_from(PHRASES), max_size=3) | json_values
phrases = st.sampled_from(PHRASES)
plausible = st.fixed_dictionaries({}, optional={
    "text": phrases | st.text(max_size=30), "at": phrases, "every": phrases | st.none(),
    "lead": phrases | st.none(), "tz": phrases | st.none(), "paused": st.booleans(),
    "outputs": st.lists(st.sampled_from(["console", "webhook", "pager"]), max_size=2),
    "for": phrases, "nag": phrases, "nag_max": st.integers(-5, 200),
    "priority": st.sampled_from(["high", "4", "9", "loud", ""])})
bodies = (plausible
          | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), field_values, max_size=5)
          | json_values)
ENDPOINTS = [("POST", "/api/reminders"), ("PATCH", "/api/reminders/1"),
             ("POST", "/api/occurrences/1/snooze"), ("POST", "/api/occurrences/1/done?via=push"),
             ("POST", "/api/preview"), ("DELETE", "/api/reminders/2")]


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=True).encode()  # lone surrogates as \\ud800 escapes


def test_api_bodies_never_break_the_server(tmp_path: Path) -> None:
    now = datetime(2026, 11, 28, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    app = App(load_settings(db=tmp_path / "fuzz.db"), FixedClock(now))
    with app.db.session() as s:
        s.add(Occurrence(task="t", scheduled_at=now - timedelta(minutes=1), status="delivered",
                         message="m", generator="template"))
    web = WebServer(app)
    web.post("/api/reminders", json={"text": "first", "at": "明天8点"})

    @settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
    @given(endpoint=st.sampled_from(ENDPOINTS),
           raw=st.one_of(bodies.map(encode), st.binary(max_size=40)))
    def check(endpoint: tuple[str, str], raw: bytes) -> None:
        before = dump(app.settings.db_path)
        r = web.request(endpoint[0], endpoint[1], data=raw,
                        headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (endpoint, raw, r.text)
        if r.status_code == 204:
            return
        answer = r.json()
        if r.status_code >= 400:
            assert set(answer) == {"error"} and isinstance(answer["error"], str), answer
            assert not PYTHON_TALK.search(answer["error"]), answer["error"]
            assert dump(app.settings.db_path) == before, (endpoint, raw)

    try:
        check()
    finally:
        web.stop()
