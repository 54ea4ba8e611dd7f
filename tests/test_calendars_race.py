"""An import and a sync racing from separate processes on one database: every process
succeeds and every calendar UID has exactly one row in its scope."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.daemon_fixtures import child_env, chime_cmd

EVENTS = 400  # enough that applying takes a while, so the processes overlap


def big_calendar() -> str:
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:race-{i}@test\r\nDTSTART;TZID=Asia/Shanghai:2027{1 + i % 12:02d}"
        f"{1 + i % 28:02d}T{i % 24:02d}0000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:会 {i}\r\n"
        "END:VEVENT\r\n" for i in range(EVENTS))
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//race//EN\r\n{events}END:VCALENDAR\r\n"


def test_imports_and_syncs_race_without_duplicates(tmp_path: Path,
                                                   httpserver: HTTPServer) -> None:
    db, ics = tmp_path / "chime.db", tmp_path / "big.ics"
    ics.write_text(big_calendar(), encoding="utf-8")
    httpserver.expect_request("/big.ics").respond_with_data(
        ics.read_bytes(), content_type="text/calendar")
    base = [*chime_cmd(), "--db", str(db)]
    subprocess.run([*base, "subscribe", httpserver.url_for("/big.ics")], check=True,
                   env=child_env(), capture_output=True)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM events")  # the subscribe's own sync: start from nothing
        conn.execute("DELETE FROM meta WHERE key LIKE 'calendar_applied:%'")
    racers = [subprocess.Popen([*base, *args], env=child_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
              for args in (["import", str(ics)], ["sync"], ["import", str(ics)], ["sync"])]
    for racer in racers:
        _out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
    with sqlite3.connect(db) as conn:
        per_scope = conn.execute(
            "SELECT ifnull(subscription_id, 0), count(*), count(DISTINCT uid) FROM events "
            "GROUP BY 1 ORDER BY 1").fetchall()
    assert per_scope == [(0, EVENTS, EVENTS), (1, EVENTS, EVENTS)]
