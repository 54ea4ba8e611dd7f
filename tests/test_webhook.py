"""The webhook output against a real HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from daemon.config import Settings
from daemon.errors import ConfigError, OutputError
from daemon.outputs import base as outputs
from daemon.outputs.base import Reminder
from daemon.outputs.webhook import WebhookOutput

AT = datetime(2026, 11, 28, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
HOSTILE = "他说\"别忘了\" $(touch /tmp/pwned) ; rm -rf / \\ 🎉 " + "长" * 5000


def webhook(settings: Settings, url: str, **keys: object) -> WebhookOutput:
    settings.webhook.url = url
    for key, value in keys.items():
        setattr(settings.webhook, key, value)
    return WebhookOutput(settings, None)


def test_posts_the_reminder_as_json_with_the_configured_headers(
        settings: Settings, httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/chime", method="POST").respond_with_data("ok")
    out = webhook(settings, httpserver.url_for("/chime"), headers={"Authorization": "Bearer t0k"})
    assert out.send(Reminder(42, "买咖啡", "早上好！该买咖啡啦。", AT, late=True)) == "HTTP 200"
    httpserver.check_assertions()
    (request, _), = httpserver.log
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(request.get_data().decode("utf-8")) == {
        "task": "买咖啡",
        "message": "早上好！该买咖啡啦。",
        "scheduled_at": "2026-11-28T08:00:00+08:00",
        "occurrence_id": 42,
        "late": True,
        "title": "买咖啡",
    }
    assert "早上好".encode() in request.get_data()  # UTF-8, not \\u escapes


def test_a_topic_is_added_for_ntfy(settings: Settings, httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/", method="POST").respond_with_data("{}")
    webhook(settings, httpserver.url_for("/"), topic="chime").send(Reminder(1, "t", "m", AT))
    body = json.loads(httpserver.log[0][0].get_data())
    assert (body["topic"], body["title"], body["message"]) == ("chime", "t", "m")


def test_hostile_text_arrives_verbatim(settings: Settings, httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/", method="POST").respond_with_data("", status=204)
    out = webhook(settings, httpserver.url_for("/"))
    assert out.send(Reminder(None, HOSTILE[:50], HOSTILE, AT)) == "HTTP 204"
    body = json.loads(httpserver.log[0][0].get_data())
    assert (body["task"], body["message"], body["occurrence_id"]) == (HOSTILE[:50], HOSTILE, None)


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_an_error_status_is_a_failure(settings: Settings, httpserver: HTTPServer,
                                      status: int) -> None:
    httpserver.expect_request("/").respond_with_data("no", status=status)
    with pytest.raises(OutputError, match=f"webhook: localhost:[0-9]+: HTTP {status}"):
        webhook(settings, httpserver.url_for("/")).send(Reminder(1, "t", "m", AT))


def test_a_redirect_is_not_followed(settings: Settings, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/new")})
    httpserver.expect_request("/new").respond_with_data("ok")
    with pytest.raises(OutputError, match=r"webhook: .*unexpected HTTP 302"):
        webhook(settings, httpserver.url_for("/old"),
                headers={"Authorization": "secret"}).send(Reminder(1, "t", "m", AT))
    assert [r.path for r, _ in httpserver.log] == ["/old"]


def test_a_slow_server_times_out(settings: Settings, httpserver: HTTPServer) -> None:
    def slow(_request: Request) -> Response:
        time.sleep(2.0)
        return Response("late")

    httpserver.expect_request("/").respond_with_handler(slow)
    out = webhook(settings, httpserver.url_for("/"), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(OutputError, match=r"webhook: .*(no answer|no complete answer within 0.5s)"):
        out.send(Reminder(1, "t", "m", AT))
    assert time.monotonic() - started < 1.9


def test_nobody_listening_is_a_failure(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(OutputError, match=r"webhook: 127\.0\.0\.1:[0-9]+: cannot connect"):
        webhook(settings, f"http://127.0.0.1:{port}/").send(Reminder(1, "t", "m", AT))


@pytest.mark.parametrize(("url", "keys", "message"), [
    ("", {}, r"\[webhook\] url: not set"),
    ("ftp://example.org/x", {}, r"\[webhook\] url: expected an http"),
    ("http:///nohost", {}, r"\[webhook\] url"),
    ("http://127.0.0.1/", {"timeout": 0.0}, r"\[webhook\] timeout"),
    ("http://127.0.0.1/", {"headers": {"X-A": "b\r\nX-Evil: 1"}}, r"\[webhook\] headers"),
])
def test_bad_settings_are_config_errors(settings: Settings, url: str, keys: dict[str, object],
                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        webhook(settings, url, **keys)


def test_registered_by_name(settings: Settings, httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/").respond_with_data("ok")
    settings.webhook.url = httpserver.url_for("/")
    out = outputs.create("webhook", settings)
    assert out.name == "webhook" and out.send(Reminder(1, "t", "m", AT)) == "HTTP 200"
    out.close()
