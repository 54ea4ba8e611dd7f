"""The JSON API over real HTTP (uvicorn on loopback): reminders, log, acknowledgements, preview,
status, calendars — and the refusals, which answer 4xx JSON and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from web_fixtures import WebServer, dump

from daemon.app import App
from daemon.store.models import Occurrence

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:dentist@test
DTSTAMP:20261101T000000Z
DTSTART;TZID=Asia/Shanghai:20261205T093000
SUMMARY:看牙医
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def web(fixed_app: App) -> Iterator[WebServer]:
    server = WebServer(fixed_app)
    yield server
    server.stop()


def delivered(app: App, task: str = "喝水", ago: timedelta = timedelta(minutes=5)) -> int:
    """A reminder delivered ``ago`` (as the daemon records it); returns the occurrence id."""
    now = app.clock.now()
    with app.db.session() as s:
        occ = Occurrence(task=task, scheduled_at=now - ago, status="delivered",
                         delivered_at=now - ago, message=f"该{task}了", generator="template",
                         results={"console": {"ok": True, "detail": "", "at": now.isoformat()}})
        s.add(occ)
        s.flush()
        return occ.id


def test_add_in_chinese_and_read_back(web: WebServer) -> None:
    r = web.post("/api/reminders", json={"text": "喝水", "at": "明天早上8点", "every": "每天",
                                         "lead": "10m", "outputs": ["console"], "nag": "5m",
                                         "nag_max": 3, "priority": "high"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["next"] == "2026-11-29T08:00:00+08:00"  # the clock stands at 11-28 10:00
    assert (made["rule"], made["lead"], made["outputs"]) == ("FREQ=DAILY", "10m", ["console"])
    assert (made["nag"], made["nag_max"], made["priority"]) == ("5m", 3, "high")
    assert r.headers["location"] == f"/api/reminders/{made['id']}"
    listed = web.get("/api/reminders").json()
    assert [e["task"] for e in listed] == ["喝水"]
    shown = web.get(f"/api/reminders/{made['id']}").json()
    assert [o["at"] for o in shown["occurrences"][:2]] == ["2026-11-29T08:00:00+08:00",
                                                          "2026-11-30T08:00:00+08:00"]


def test_patch_pause_and_delete(web: WebServer) -> None:
    rid = web.post("/api/reminders", json={"text": "a", "at": "in 2 hours"}).json()["id"]
    r = web.patch(f"/api/reminders/{rid}", json={"text": "b", "every": "weekdays",
                                                  "paused": True})
    assert r.status_code == 200, r.text
    assert (r.json()["task"], r.json()["rule"], r.json()["paused"]) == (
        "b", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", True)
    assert r.json()["next"] is None  # paused
    r = web.patch(f"/api/reminders/{rid}", json={"paused": False, "every": None})
    assert (r.json()["rule"], r.json()["paused"]) == (None, False)
    assert web.delete(f"/api/reminders/{rid}").status_code == 204
    gone = web.get(f"/api/reminders/{rid}")
    assert gone.status_code == 404 and gone.json() == {"error": f"no reminder with id {rid}"}


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), [
    ("post", "/api/reminders", {"at": "明天8点"}, 400, "'text' is required"),
    ("post", "/api/reminders", {"text": "x", "at": "blorp"}, 400, "cannot understand time"),
    ("post", "/api/reminders", {"text": "x", "at": "2020-01-01T08:00"}, 400, "in the past"),
    ("post", "/api/reminders", {"text": "x", "at": "9999-12-30T08:00"}, 400, "too far ahead"),
    ("post", "/api/reminders", {"text": "x", "at": "明天8点", "outputs": ["pager"]}, 400,
     "unknown output"),
    ("post", "/api/reminders", {"text": "x", "at": "明天8点", "colour": "red"}, 400,
     "unknown field 'colour'"),
    ("post", "/api/reminders", {"text": 5, "at": "明天8点"}, 400, "'text' must be a string"),
    ("post", "/api/reminders", {"text": "x", "at": "明天8点", "lead": "9" * 400}, 400, ""),
    ("post", "/api/reminders", {"text": "x", "at": "明天8点", "every": "FREQ=SECONDLY"}, 400,
     "too frequent"),
    ("post", "/api/reminders", [1, 2], 400, "must be a JSON object"),
    ("post", "/api/reminders", "not json", 400, "not valid JSON"),
    ("patch", "/api/reminders/1", {}, 400, "nothing to change"),
    ("patch", "/api/reminders/1", {"paused": "yes"}, 400, "true or false"),
    ("patch", "/api/reminders/1", {"nag_max": True}, 400, "'nag_max' must be a whole number"),
    ("patch", "/api/reminders/1", {"priority": "loud"}, 400, "unknown priority"),
    ("patch", "/api/reminders/999", {"text": "x"}, 404, "no reminder with id 999"),
    ("patch", "/api/reminders/99999999999999999999999", {"text": "x"}, 404, "no such id"),
    ("delete", "/api/reminders/999", None, 404, "no reminder"),
    ("post", "/api/occurrences/999/done", None, 404, "no occurrence"),
    ("post", "/api/occurrences/1/done?via=fax", None, 400, "via must be one of web, push"),
    ("post", "/api/occurrences/1/snooze", {"for": "soon"}, 400, "cannot read duration"),
    ("post", "/api/occurrences/1/snooze", {"for": "30d"}, 400, "at most 7 days"),
    ("post", "/api/preview", {"at": "now"}, 400, "'text' is required"),
    ("get", "/api/log?limit=0", None, 400, "limit"),
    ("get", "/api/nowhere", None, 404, "Not Found"),
    ("put", "/api/reminders/1", {"text": "x"}, 405, "Method Not Allowed"),
])
def test_bad_requests_answer_json_and_change_nothing(
        web: WebServer, db_path: Path, method: str, path: str, body: object, status: int,
        needle: str) -> None:
    web.post("/api/reminders", json={"text": "keep", "at": "明天8点"})
    delivered(web.app)
    before = dump(db_path)
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    r = web.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert needle in r.json()["error"]
    assert dump(db_path) == before


def test_done_and_snooze_from_a_phone(web: WebServer) -> None:
    occ = delivered(web.app)
    r = web.post(f"/api/occurrences/{occ}/done?via=push")
    assert r.status_code == 200 and r.json() == {"id": occ, "done": True, "via": "push"}
    log = web.get("/api/log").json()
    assert log[0]["id"] == occ and log[0]["acknowledged_at"] is not None
    assert log[0]["acknowledged_by"] == "push"
    r = web.post(f"/api/occurrences/{occ}/snooze", json={"for": "10m"})
    assert r.status_code == 201, r.text
    repeat = r.json()
    assert (repeat["snoozed_from"], repeat["for"], repeat["via"]) == (occ, "10m", "web")
    log = {row["id"]: row for row in web.get("/api/log?limit=5").json()}
    assert log[repeat["id"]]["status"] == "prepared"
    assert log[repeat["id"]]["scheduled_at"] == "2026-11-28T10:10:00+08:00"
    assert log[repeat["id"]]["message"] == "该喝水了"  # the repeat says the same words


def test_preview_status_and_resolve(web: WebServer) -> None:
    r = web.post("/api/preview", json={"text": "喝水", "at": "明天早上8点"})
    assert r.status_code == 200, r.text
    assert r.json()["generator"] == "template" and "喝水" in r.json()["message"]
    assert r.json()["at"] == "2026-11-29T08:00:00+08:00"
    web.post("/api/reminders", json={"text": "散步", "at": "今晚8点"})
    status = web.get("/api/status").json()
    assert status["running"] is False and status["heartbeat"] is None
    assert status["next"] == [{"id": 1, "task": "散步", "at": "2026-11-28T20:00:00+08:00"}]
    assert status["model"]["usable"] is False and status["model"]["reason"]
    assert status["storage"]["database_bytes"] > 0 and status["storage"]["free_bytes"] > 0
    assert status["weather"] == {"fetched_at": None, "age_s": None}
    r = web.get("/api/resolve", params={"at": "8点", "every": "工作日"})
    assert r.json()["next"] == "2026-11-30T08:00:00+08:00"  # Monday: 11-28 is a Saturday
    r = web.get("/api/resolve", params={"at": "blorp"})
    assert r.status_code == 400 and "cannot understand" in r.json()["error"]


def test_calendar_import_raw_and_multipart(web: WebServer) -> None:
    r = web.post("/api/calendars/import", data=ICS.encode(),
                 headers={"Content-Type": "text/calendar"})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 1
    r = web.post("/api/calendars/import", files={"file": ("cal.ics", ICS.encode())})
    assert r.json()["unchanged"] == 1 and r.json()["added"] == 0
    assert [e["task"] for e in web.get("/api/reminders").json()] == ["看牙医"]
    r = web.post("/api/calendars/import", data=b"hello")
    assert r.status_code == 400 and r.json()["error"]


def test_oversize_upload_is_413_and_stores_nothing(web: WebServer, db_path: Path) -> None:
    before = dump(db_path)
    big = ICS.replace("SUMMARY:看牙医", "SUMMARY:看牙医\nDESCRIPTION:" + "x" * 1_100_000)
    r = web.post("/api/calendars/import", data=big.encode())
    assert r.status_code == 413 and "larger than 1024 KB" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream itself is counted
        data = big.encode()
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    r = web.post("/api/calendars/import", data=chunks())
    assert r.status_code == 413
    r = web.post("/api/reminders", data=b'{"text": "' + b"x" * 70_000 + b'"}')
    assert r.status_code == 413
    page = web.post("/calendars/upload", files={"file": ("big.ics", big.encode())},
                    headers={"Accept": "text/html"})
    assert page.status_code == 413 and "larger than 1024 KB" in page.text and "<html" in page.text
    assert dump(db_path) == before


def test_cross_site_api_calls_are_refused(web: WebServer, db_path: Path) -> None:
    before = dump(db_path)
    r = web.post("/api/reminders", json={"text": "x", "at": "明天8点"},
                 headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["error"]
    r = web.post("/api/reminders", json={"text": "x", "at": "明天8点"},
                 headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert dump(db_path) == before
    same = web.post("/api/reminders", json={"text": "x", "at": "明天8点"},
                    headers={"Origin": web.url, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 201
