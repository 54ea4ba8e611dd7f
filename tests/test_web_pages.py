"""The pages without a browser (forms posted as a browser without JavaScript would), the words
they use, and the `chime web` commands."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from daemon_fixtures import child_env, cli
from pytest_httpserver import HTTPServer
from web_fixtures import WebServer, dump

from daemon.app import App
from daemon.web.token import read_token
from daemon.web.words import Words, pick_language

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=SH)
HTML = {"Accept": "text/html"}


@pytest.fixture
def web(fixed_app: App) -> Iterator[WebServer]:
    server = WebServer(fixed_app)
    server.csrf()
    yield server
    server.stop()


def test_times_in_words() -> None:
    zh, en = Words("zh"), Words("en")
    assert zh.when(NOW.replace(hour=20, minute=30), NOW) == "今天 20:30，还有 10 小时"
    assert zh.when(NOW + timedelta(days=1, minutes=5), NOW) == "明天 10:05，还有 24 小时"
    assert zh.when(NOW + timedelta(minutes=3), NOW) == "今天 10:03，还有 3 分钟"
    assert zh.day(NOW + timedelta(days=5), NOW) == "12月3日 周四"
    assert en.day(NOW + timedelta(days=5), NOW) == "Thu 3 Dec"
    assert zh.relative(NOW - timedelta(hours=3), NOW) == "3 小时前"
    assert zh.relative(NOW - timedelta(seconds=20), NOW) == "刚刚"
    assert zh.rule("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR") == "周一到周五"
    assert zh.rule("FREQ=DAILY", "workdays") == "法定工作日"
    assert en.rule("FREQ=MONTHLY;BYMONTHDAY=1") == "rule FREQ=MONTHLY;BYMONTHDAY=1"
    assert zh.age(timedelta(seconds=4)) == "4 秒"


@pytest.mark.parametrize(("header", "lang"), [
    ("", "zh"), ("en-US,en;q=0.9", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    ("fr-FR,en;q=0.5", "en"), ("de", "zh"), ("en;q=0.2,zh;q=0.8", "zh"), ("en;q=x", "zh"),
])
def test_language_choice(header: str, lang: str) -> None:
    assert pick_language(header) == lang


def test_add_form_error_keeps_the_values(web: WebServer, db_path: Path) -> None:
    before = dump(db_path)
    r = web.post("/add", data={"csrf": web.csrf(), "text": "浇花", "at": "blorp",
                               "every": "daily"}, headers=HTML)
    assert r.status_code == 400
    assert "cannot understand time" in r.text and 'value="浇花"' in r.text
    assert '<option value="daily" selected>' in r.text
    assert dump(db_path) == before


def test_add_edit_with_a_custom_rule_and_outputs(web: WebServer) -> None:
    r = web.post("/add", data={"csrf": web.csrf(), "text": "浇花", "at": "明天早上7点",
                               "every": "custom", "rule": "FREQ=WEEKLY;BYDAY=SA",
                               "lead": "15m", "outputs": ["console", "webhook"],
                               "nag": "5m", "priority": "high"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    made = web.get("/api/reminders").json()[0]
    assert (made["rule"], made["lead"], made["outputs"]) == (
        "FREQ=WEEKLY;BYDAY=SA", "15m", ["console", "webhook"])
    page = web.get(f"/reminders/{made['id']}/edit", headers=HTML).text
    assert 'value="2026-11-29 07:00"' in page and 'value="FREQ=WEEKLY;BYDAY=SA"' in page
    assert '<option value="custom" selected>' in page and "checked> webhook" in page
    assert 'value="5m"' in page and '<option value="high" selected>' in page
    r = web.post(f"/reminders/{made['id']}/edit", data={
        "csrf": web.csrf(), "text": "浇花", "at": "2026-11-29 07:30", "every": "none",
        "lead": "15m", "outputs": ["console"]})
    assert r.status_code == 303
    changed = web.get(f"/api/reminders/{made['id']}").json()
    assert (changed["rule"], changed["outputs"], changed["next"]) == (
        None, ["console"], "2026-11-29T07:30:00+08:00")


def test_resolved_time_fragment(web: WebServer) -> None:
    ok = web.get("/resolve", params={"at": "明天早上8点", "every": "daily"}).text
    assert "将在 明天 08:00，还有 22 小时" in ok
    bad = web.get("/resolve", params={"at": "blorp"}).text
    assert 'class="error"' in bad and "cannot understand" in bad
    rule = web.get("/resolve", params={"at": "8点", "every": "custom", "rule": "FREQ=SECONDLY"})
    assert "too frequent" in rule.text
    assert web.get("/resolve", params={"at": ""}).text == ""


def test_preview_fragment(web: WebServer) -> None:
    r = web.post("/preview", data={"csrf": web.csrf(), "text": "喝水", "at": "明天早上8点"})
    assert r.status_code == 200 and "喝水" in r.text and "template" in r.text
    r = web.post("/preview", data={"csrf": web.csrf(), "text": "", "at": "now"})
    assert 'class="error"' in r.text and "empty" in r.text


def test_subscription_state_and_removal(web: WebServer, httpserver: HTTPServer) -> None:
    ics = ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:a@x\n"
           "DTSTAMP:20261101T000000Z\nDTSTART:20361205T093000Z\nSUMMARY:开会\nEND:VEVENT\n"
           "END:VCALENDAR\n")
    httpserver.expect_request("/team.ics").respond_with_data(ics, content_type="text/calendar")
    httpserver.expect_request("/gone.ics").respond_with_data("no", status=404)
    for path in ("/team.ics", "/gone.ics"):
        r = web.post("/calendars/subscribe", data={"csrf": web.csrf(),
                                                   "url": httpserver.url_for(path)})
        assert r.status_code == 303
    page = web.get("/calendars", headers=HTML).text
    assert "1 个提醒" in page and "错误：" in page and "404" in page
    r = web.post("/calendars/subscribe", data={"csrf": web.csrf(), "url": "ftp://x/y.ics"},
                 headers=HTML)
    assert r.status_code == 400 and "not an http(s) or webcal URL" in r.text
    sub = web.get("/api/calendars").json()[0]
    confirm = web.get(f"/calendars/{sub['id']}/unsubscribe", headers=HTML).text
    assert "1 个提醒会被删除" in confirm
    assert web.post(f"/calendars/{sub['id']}/unsubscribe",
                    data={"csrf": web.csrf()}).status_code == 303
    assert [s["url"] for s in web.get("/api/calendars").json()] == [httpserver.url_for("/gone.ics")]
    assert web.get("/api/reminders").json() == []


def test_upload_errors_show_on_the_page(web: WebServer, fixed_app: App) -> None:
    r = web.post("/calendars/upload", files={"file": ("x.ics", b"not a calendar")},
                 data={"csrf": web.csrf()}, headers=HTML)
    assert r.status_code == 400 and 'class="error"' in r.text
    r = web.post("/calendars/upload", files={"file": ("x.ics", b"BEGIN:VCALENDAR")},
                 data={"csrf": "forged"}, headers=HTML)
    assert r.status_code == 403
    r = web.post("/calendars/upload", data=b"BEGIN:VCALENDAR", headers={"Content-Type": "text/plain"})
    assert r.status_code == 403  # a raw body needs the header instead of the field


def test_web_token_command(db_path: Path) -> None:
    result = cli(db_path, "web", "--port", "9999", "token")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    token = read_token_at(db_path)
    assert lines[0] == token and lines[1] == "http://127.0.0.1:9999/"
    assert any("█" in line or "▀" in line for line in lines[2:])  # the QR code
    again = cli(db_path, "web", "token", "--no-qr")
    assert again.stdout.splitlines() == [token, "http://127.0.0.1:8765/"]


def read_token_at(db_path: Path) -> str | None:
    from daemon.config import load_settings

    return read_token(load_settings(db=db_path))


def test_web_without_the_extra_says_which(db_path: Path) -> None:
    code = ("import sys; sys.modules['uvicorn'] = None; from daemon.cli import main; "
            f"main(['--db', {str(db_path)!r}, 'web'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=child_env(), timeout=60)
    assert result.returncode == 78
    assert "chime web needs the [web] extra" in result.stderr


def test_next_page_shows_the_soonest_fifty(web: WebServer, fixed_app: App) -> None:
    from daemon import reminders

    for i in range(51):  # two a day from 12-01: 任务00 and 任务28 on the 1st, 任务26 on the 27th
        reminders.add(fixed_app, f"任务{i:02d}", f"2026-12-{1 + i % 28:02d}T08:{i:02d}")
    reminders.add(fixed_app, "柏林", "2026-12-24T08:00", tz="Europe/Berlin")  # 15:00 in Shanghai
    page = web.get("/", headers=HTML).text
    assert page.count('class="card"') == 50 and "显示全部 52 个提醒" in page
    assert page.index("任务00") < page.index("任务28") < page.index("任务01")
    assert page.index("任务23") < page.index("柏林") < page.index("任务24")  # by instant
    assert "任务26" not in page and "任务27" not in page  # the two latest
    everything = web.get("/?all", headers=HTML).text
    assert everything.count('class="card"') == 52 and "任务27" in everything


def test_the_menu_marks_the_page_you_are_on(web: WebServer) -> None:
    def current(path: str) -> list[str]:
        page = web.get(path, headers=HTML).text
        return [line.split(">")[1].split("<")[0] for line in page.splitlines()
                if 'aria-current="page"' in line]

    assert current("/") == ["接下来"] and current("/log") == ["记录"]
    assert current("/login") == [] and current("/calendars") == ["日历"]


def test_official_workdays_in_the_menu(web: WebServer) -> None:
    r = web.post("/add", data={"csrf": web.csrf(), "text": "打卡", "at": "周一早上9点",
                               "every": "workdays"})
    assert r.status_code == 303, r.text
    made = web.get("/api/reminders").json()[0]
    assert (made["rule"], made["day_filter"]) == ("FREQ=DAILY", "workdays")
    page = web.get(f"/reminders/{made['id']}/edit", headers=HTML).text
    assert '<option value="workdays" selected>' in page and 'name="rule" value=""' in page
    assert "法定工作日" in web.get("/", headers=HTML).text


def test_log_buttons_on_recent_deliveries_only(web: WebServer, fixed_app: App) -> None:
    from daemon.store.models import Occurrence

    now = fixed_app.clock.now()
    rows = [("missed", timedelta(hours=1)), ("unacknowledged", timedelta(hours=2)),
            ("delivered", timedelta(hours=30)), ("late", timedelta(minutes=3))]
    with fixed_app.db.session() as s:
        for status, ago in rows:
            s.add(Occurrence(task=status, scheduled_at=now - ago, status=status, message="m"))
    page = web.get("/log", headers=HTML).text
    buttons = {card.split('<div class="task">')[1].split("<")[0]: 'name="done"' in card
               for card in page.split('<li class="card')[1:]}
    assert buttons == {"missed": False, "unacknowledged": True, "delivered": False, "late": True}
    assert "未确认" in page and "迟到送达" in page
