"""The ntfy output against a local server implementing ntfy's publish API."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ntfy_fixtures import NtfyServer
from pytest_httpserver import HTTPServer

from daemon.config import Settings, load_settings
from daemon.errors import ConfigError, OutputError
from daemon.outputs.base import Reminder, create
from daemon.outputs.ntfy import NtfyOutput
from daemon.web.token import read_token

AT = datetime(2026, 12, 1, 20, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def configured(tmp_path: Path, text: str) -> Settings:
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    return load_settings(config, tmp_path / "chime.db")


def reminder(repeat: int = 0, priority: int | None = None, occurrence_id: int | None = 7
             ) -> Reminder:
    return Reminder(occurrence_id, "吃药", "晚上好！该吃药啦。", AT, repeat=repeat,
                    priority=priority)


def test_publishes_json_with_title_priority_tags_and_token(tmp_path: Path,
                                                           httpserver: HTTPServer) -> None:
    server = NtfyServer(httpserver, token="tk_secret")
    settings = configured(tmp_path, f'[ntfy]\nurl = "{server.url}"\ntopic = "chime-test"\n'
                                    f'token = "tk_secret"\npriority = "high"\n'
                                    f'tags = ["pill", "alarm_clock"]\n')
    output = create("ntfy", settings)
    try:
        detail = output.send(reminder(occurrence_id=None))
    finally:
        output.close()
    (message,) = server.messages
    assert detail == f"published {message['id']} to localhost, priority 4"
    assert (message["topic"], message["title"], message["message"]) == (
        "chime-test", "吃药", "晚上好！该吃药啦。")
    assert (message["priority"], message["tags"], message["actions"]) == (
        4, ["pill", "alarm_clock"], [])
    (request,) = server.requests
    assert (request["method"], request["path"]) == ("POST", "/")
    assert request["headers"]["Authorization"] == "Bearer tk_secret"
    assert "吃药".encode() in request["body"]  # UTF-8 as is, not \\u-escaped


def test_buttons_post_to_the_web_api_with_the_web_token(tmp_path: Path,
                                                        httpserver: HTTPServer) -> None:
    server = NtfyServer(httpserver)
    settings = configured(tmp_path, f'[ntfy]\nurl = "{server.url}"\ntopic = "chime-test"\n'
                                    f'[web]\npublic_url = "https://board.lan:8765/"\n'
                                    f'[desktop]\nsnooze = "15m"\n')
    output = NtfyOutput(settings)
    assert "with buttons" in output.send(reminder())
    token = read_token(settings)
    assert token, "the web token is made on first use"
    done, later = server.messages[0]["actions"]
    assert (done["action"], done["label"], done["method"], done["clear"]) == (
        "http", "完成", "POST", True)
    assert done["url"] == "https://board.lan:8765/api/occurrences/7/done?via=push"
    assert done["headers"] == {"Authorization": f"Bearer {token}"}
    assert later["label"] == "稍后提醒"
    assert later["url"] == "https://board.lan:8765/api/occurrences/7/snooze?via=push"
    assert later["headers"]["Authorization"] == f"Bearer {token}"
    assert json.loads(later["body"]) == {"for": "15m"}


def test_no_public_url_means_no_buttons(tmp_path: Path, httpserver: HTTPServer) -> None:
    server = NtfyServer(httpserver)
    settings = configured(tmp_path, f'[ntfy]\nurl = "{server.url}"\ntopic = "chime-test"\n')
    NtfyOutput(settings).send(reminder())
    assert server.messages[0]["actions"] == []
    assert read_token(settings) is None  # nothing made for buttons that are not sent


@pytest.mark.parametrize(("configured_priority", "event", "repeat", "expected"), [
    ("default", None, 0, 3), ("default", None, 1, 4), ("default", None, 5, 5),
    ("low", None, 1, 3), ("2", 4, 0, 4), ("max", 1, 2, 3),
])
def test_repeats_raise_the_priority(tmp_path: Path, httpserver: HTTPServer,
                                    configured_priority: str, event: int | None, repeat: int,
                                    expected: int) -> None:
    server = NtfyServer(httpserver)
    settings = configured(tmp_path, f'[ntfy]\nurl = "{server.url}"\ntopic = "t"\n'
                                    f'priority = "{configured_priority}"\n')
    NtfyOutput(settings).send(reminder(repeat=repeat, priority=event))
    assert server.messages[0]["priority"] == expected


def test_basic_auth_and_refusals_are_output_errors_sent_once(tmp_path: Path,
                                                             httpserver: HTTPServer) -> None:
    server = NtfyServer(httpserver, user="phil", password="mypass")
    base = f'[ntfy]\nurl = "{server.url}"\ntopic = "t"\n'
    NtfyOutput(configured(tmp_path, base + 'user = "phil"\npassword = "mypass"\n')).send(
        reminder())
    assert len(server.messages) == 1
    with pytest.raises(OutputError, match=r"^ntfy: localhost.*HTTP 403"):
        NtfyOutput(configured(tmp_path, base + 'user = "phil"\npassword = "wrong"\n')).send(
            reminder())
    httpserver.clear()
    failing = NtfyServer(httpserver, status=502)
    with pytest.raises(OutputError, match="HTTP 502"):
        NtfyOutput(configured(tmp_path, base)).send(reminder())
    assert len(failing.requests) == 1, "a publish is never retried"


def test_unreachable_server_is_an_output_error(tmp_path: Path) -> None:
    settings = configured(tmp_path, '[ntfy]\nurl = "http://127.0.0.1:9"\ntopic = "t"\n'
                                    'timeout = 2\n')
    with pytest.raises(OutputError, match=r"^ntfy: 127\.0\.0\.1:9: cannot connect"):
        NtfyOutput(settings).send(reminder())


def test_configuration_mistakes_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[ntfy\] topic: not set"):
        NtfyOutput(configured(tmp_path, ""))
    with pytest.raises(ConfigError, match=r"\[ntfy\] topic: 'a b'"):
        NtfyOutput(configured(tmp_path, '[ntfy]\ntopic = "a b"\n'))
    with pytest.raises(ConfigError, match=r"\[ntfy\] url"):
        NtfyOutput(configured(tmp_path, '[ntfy]\ntopic = "t"\nurl = "ntfy.sh"\n'))
    with pytest.raises(ConfigError, match="token or user and password, not both"):
        configured(tmp_path, '[ntfy]\ntopic = "t"\ntoken = "x"\nuser = "u"\npassword = "p"\n')


def test_doctor_says_why_there_are_no_buttons(tmp_path: Path, httpserver: HTTPServer) -> None:
    from daemon.cli.doctor import ERROR, OK, WARNING, Doctor
    from daemon.cli.doctor.system import check_ntfy

    httpserver.expect_request("/v1/health").respond_with_json({"healthy": True})
    base = f'[ntfy]\nurl = "{httpserver.url_for("/")}"\ntopic = "t"\n'
    check = check_ntfy(Doctor(configured(tmp_path, base)))
    assert check.status == WARNING and "[web] public_url is not set" in check.detail
    assert "public_url" in check.fix
    check = check_ntfy(Doctor(configured(tmp_path, base + '[web]\npublic_url = "http://b:1"\n')))
    assert (check.status, check.detail) == (OK, "localhost reachable; buttons call http://b:1")
    with pytest.raises(ConfigError, match=r"\[ntfy\] topic: not set"):  # refused at load
        configured(tmp_path, '[daemon]\noutputs = ["ntfy"]\n')
    enabled = configured(tmp_path, "")
    enabled.daemon.outputs = ["ntfy"]
    check = check_ntfy(Doctor(enabled))
    assert check.status == ERROR and "[ntfy] topic: not set" in check.detail
    assert not httpserver.log[0][0].get_data(), "the doctor publishes nothing"
    assert check_ntfy(Doctor(configured(tmp_path, ""))).status == OK  # not used


def test_pressing_the_buttons_against_chime_web_snoozes_then_acknowledges(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    import requests
    from web_fixtures import WebServer

    from daemon.app import App
    from daemon.delivery import Courier, Slot
    from daemon.store import repo

    server = NtfyServer(httpserver)
    app = App(configured(tmp_path, f'[ntfy]\nurl = "{server.url}"\ntopic = "t"\n'))
    web = WebServer(app, listen="0.0.0.0")  # every request needs the token
    try:
        app.settings.web.public_url = web.url
        now = app.clock.now().replace(microsecond=0)
        local = now.astimezone(app.settings.tz).replace(tzinfo=None).isoformat()
        with app.db.session() as s:
            event = repo.add_event(s, task="吃药", dtstart=local, tz=app.settings.daemon.timezone,
                                   rrule=None, outputs=["ntfy"], rdates=[], exdates=[],
                                   nag_s=60, nag_max=3)
            event_id = event.id
        assert Courier(app).deliver(Slot(event_id, now, now)) == "delivered"
        later, done = (next(a for a in server.messages[0]["actions"] if a["label"] == label)
                       for label in ("稍后提醒", "完成"))

        def press(action: dict[str, Any], **headers: str) -> requests.Response:
            return requests.request(action["method"], action["url"], timeout=30,
                                    headers={**action["headers"], **headers},
                                    data=action.get("body"))

        assert press(done, Authorization="Bearer wrong").status_code == 401
        assert press(later).status_code == 201
        with app.db.session() as s:
            root, *repeats = repo.event_history(s, event_id, 10)[::-1]
            assert root.acknowledged_at is None  # a snooze is not an acknowledgement
            assert [r.status for r in repeats] == ["cancelled", "prepared"]
            assert repeats[1].scheduled_at >= now + timedelta(minutes=9)  # [desktop] snooze
        assert press(done).status_code == 200
        with app.db.session() as s:
            root, *repeats = repo.event_history(s, event_id, 10)[::-1]
            assert (root.acknowledged_by, [r.status for r in repeats]) == (
                "push", ["cancelled", "cancelled"])
    finally:
        web.stop()
