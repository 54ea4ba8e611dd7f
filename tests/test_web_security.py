"""`chime web` on a LAN: the token on every request, the login cookie, CSRF on every form,
escaping of hostile texts, slowed-down failures."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_fixtures import WebServer, dump

from daemon.app import App
from daemon.web.token import read_token, token_path

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def lan(app: App) -> Iterator[WebServer]:
    """The application as if listening on 0.0.0.0 (the socket itself stays on loopback)."""
    server = WebServer(app, listen="0.0.0.0")
    yield server
    server.stop()


@pytest.fixture
def local(app: App) -> Iterator[WebServer]:
    server = WebServer(app)
    yield server
    server.stop()


def test_token_is_made_at_start_with_mode_0600(lan: WebServer) -> None:
    path = token_path(lan.app.settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_token(lan.app.settings)


def test_every_api_request_needs_the_token(lan: WebServer, db_path: Path) -> None:
    token = read_token(lan.app.settings)
    before = dump(db_path)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
        r = lan.get("/api/reminders", headers=headers)
        assert r.status_code == 401 and "token" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"
        r = lan.post("/api/reminders", json={"text": "x", "at": "明天8点"}, headers=headers)
        assert r.status_code == 401
    assert dump(db_path) == before
    ok = {"Authorization": f"Bearer {token}"}
    assert lan.get("/api/reminders", headers=ok).status_code == 200
    assert lan.post("/api/reminders", json={"text": "x", "at": "明天8点"},
                    headers=ok).status_code == 201


def test_pages_need_a_login(lan: WebServer) -> None:
    r = lan.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert lan.get("/static/style.css").status_code == 200
    page = lan.get("/login", headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'name="token"' in page.text
    csrf = lan.http.cookies["chime_csrf"]
    r = lan.post("/login", data={"token": "wrong", "csrf": csrf})
    assert r.status_code == 401 and "chime_session" not in lan.http.cookies
    r = lan.post("/login", data={"token": read_token(lan.app.settings), "csrf": "forged"})
    assert r.status_code == 403 and "chime_session" not in lan.http.cookies
    r = lan.post("/login", data={"token": read_token(lan.app.settings), "csrf": csrf})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert read_token(lan.app.settings) not in cookie  # a derived value, not the token
    assert lan.get("/", headers={"Accept": "text/html"}).status_code == 200
    assert lan.get("/api/status").status_code == 200  # the cookie works for the API too


def test_a_foreign_host_header_needs_the_token(local: WebServer) -> None:
    """Behind a reverse proxy or after DNS rebinding, loopback is no reason to trust."""
    assert local.get("/api/reminders").status_code == 200
    r = local.get("/api/reminders", headers={"Host": "chime.example.org"})
    assert r.status_code == 401
    token = read_token(local.app.settings)
    assert local.get("/api/reminders", headers={"Host": "chime.example.org",
                                                "Authorization": f"Bearer {token}"}).ok


def test_repeated_failures_are_slowed_down(lan: WebServer) -> None:
    for _ in range(3):
        lan.get("/api/reminders", headers={"Authorization": "Bearer wrong"})
    started = time.monotonic()
    r = lan.get("/api/reminders", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert time.monotonic() - started >= 0.4  # the fourth failure in a minute waits 0.05 s × 2³


def test_forms_need_the_csrf_field(local: WebServer, db_path: Path) -> None:
    csrf = local.csrf()
    before = dump(db_path)
    form = {"text": "x", "at": "明天8点", "every": "none"}
    assert local.post("/add", data=form).status_code == 403
    assert local.post("/add", data={**form, "csrf": "forged-value"}).status_code == 403
    local.http.cookies.clear()
    assert local.post("/add", data={**form, "csrf": csrf}).status_code == 403  # no cookie
    assert dump(db_path) == before
    csrf = local.csrf()
    r = local.post("/add", data={**form, "csrf": csrf})
    assert r.status_code == 303, r.text
    assert [e["task"] for e in local.get("/api/reminders").json()] == ["x"]


def test_hostile_texts_stay_text(local: WebServer) -> None:
    local.post("/api/reminders", json={"text": HOSTILE, "at": "明天8点"})
    ics = ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:h@x\nDTSTAMP:20261101T000000Z\n"
           "DTSTART:20361205T093000Z\nSUMMARY:<img src=x onerror=alert(2)>\nEND:VEVENT\n"
           "END:VCALENDAR\n")
    assert local.post("/api/calendars/import", data=ics.encode()).status_code == 200
    rid = local.get("/api/reminders").json()[0]["id"]
    for path in ("/", f"/reminders/{rid}/edit", f"/reminders/{rid}/remove", "/status"):
        page = local.get(path, headers={"Accept": "text/html"}).text
        assert HOSTILE not in page and "<img src=x" not in page, path
    page = local.get("/", headers={"Accept": "text/html"}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    csp = local.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp


def test_english_when_the_browser_asks(local: WebServer) -> None:
    zh = local.get("/", headers={"Accept": "text/html"}).text
    en = local.get("/", headers={"Accept": "text/html",
                                 "Accept-Language": "en-GB,en;q=0.9,zh-CN;q=0.5"}).text
    assert "接下来的提醒" in zh and '<html lang="zh-CN">' in zh
    assert "Coming up" in en and '<html lang="en">' in en
    both = local.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}).text
    assert "接下来的提醒" in both


def test_errors_say_nothing_of_python(local: WebServer) -> None:
    page = local.get("/reminders/999/edit", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "no reminder with id 999" in page.text
    assert not re.search(r"Traceback|File \"|Error:", page.text)
