"""A local ntfy server for the tests: the publish API as ntfy documents it, recording messages.

Publishing (https://docs.ntfy.sh/publish/): ``POST``/``PUT`` a JSON object with ``topic`` to
the base URL (``message``, ``title``, ``tags``, ``priority`` 1-5, ``actions``), or ``POST``/
``PUT`` the message body to ``/<topic>`` with ``Title``, ``Priority`` (1-5 or min/low/default/
high/max/urgent), ``Tags`` (comma-separated) and ``Actions`` (a JSON array) headers (``X-`` forms
too). With ``token`` (or ``user``/``password``) set, only requests carrying it are accepted.
The answer is the message as JSON, with a fresh ``id``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

TOPIC = re.compile(r"^/([-_A-Za-z0-9]{1,64})$")
PRIORITIES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}


class NtfyServer:
    """Answers ntfy's publish API on ``httpserver``; ``messages`` holds what it accepted."""

    def __init__(self, httpserver: HTTPServer, token: str = "", user: str = "",
                 password: str = "", status: int = 200) -> None:
        self.httpserver = httpserver
        self.token, self.user, self.password, self.status = token, user, password, status
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # every request: path, headers, body
        self._changed = threading.Condition()
        httpserver.expect_request(re.compile(r"^/.*$")).respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return self.httpserver.url_for("/")

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} ntfy message(s) within {timeout}s, "
                                         f"got {len(self.messages)}")
                self._changed.wait(left)
            return list(self.messages)

    # --- the API --------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        body = request.get_data()
        self.requests.append({"method": request.method, "path": request.path,
                              "headers": dict(request.headers), "body": body})
        if request.method not in ("POST", "PUT"):
            return _error(405, 40500, "method not allowed")
        if not self._authorized(request.headers.get("Authorization", "")):
            return _error(403, 40301, "forbidden")
        if self.status != 200:
            return _error(self.status, self.status * 100, "the test server is failing on purpose")
        try:
            message = self._json(body) if request.path == "/" else self._headers(request, body)
        except ValueError as exc:
            return _error(400, 40000, str(exc))
        message.update(id=secrets.token_hex(6), time=int(time.time()), event="message")
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        return Response(json.dumps(message, ensure_ascii=False), 200,
                        content_type="application/json")

    def _authorized(self, header: str) -> bool:
        if not self.token and not self.user:
            return True
        if self.token and header == f"Bearer {self.token}":
            return True
        if self.user and header.startswith("Basic "):
            pair = base64.b64decode(header[6:]).decode("utf-8")
            return pair == f"{self.user}:{self.password}"
        return False

    def _json(self, body: bytes) -> dict[str, Any]:
        data = json.loads(body.decode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("topic"), str) \
                or not re.fullmatch(r"[-_A-Za-z0-9]{1,64}", data["topic"]):
            raise ValueError("invalid request: the JSON needs a valid topic")
        message = {"topic": data["topic"], "message": data.get("message", "triggered"),
                   "title": data.get("title", ""), "tags": list(data.get("tags") or []),
                   "priority": data.get("priority", 3)}
        if not isinstance(message["priority"], int) or not 1 <= message["priority"] <= 5:
            raise ValueError(f"invalid priority {message['priority']!r}")
        message["actions"] = _actions(data.get("actions") or [])
        return message

    def _headers(self, request: Request, body: bytes) -> dict[str, Any]:
        match = TOPIC.match(request.path)
        if not match:
            raise ValueError("invalid topic")

        def header(*names: str) -> str:
            for name in names:
                for form in (name, f"X-{name}"):
                    if form in request.headers:
                        return request.headers[form]
            return ""

        raw = header("Priority", "Prio", "P") or "3"
        priority = PRIORITIES.get(raw.lower()) or (int(raw) if raw.isdigit() else 0)
        if not 1 <= priority <= 5:
            raise ValueError(f"invalid priority {raw!r}")
        actions = header("Actions", "Action")
        return {"topic": match.group(1), "message": body.decode("utf-8") or "triggered",
                "title": header("Title", "T"), "priority": priority,
                "tags": [t.strip() for t in header("Tags", "Tag", "Ta").split(",") if t.strip()],
                "actions": _actions(json.loads(actions) if actions else [])}


def _actions(actions: Any) -> list[dict[str, Any]]:
    if not isinstance(actions, list) or len(actions) > 3:
        raise ValueError("actions: at most three")
    for action in actions:
        if not isinstance(action, dict) or action.get("action") not in ("view", "http",
                                                                         "broadcast"):
            raise ValueError(f"invalid action {action!r}")
        if not action.get("label") or (action["action"] != "broadcast"
                                       and not action.get("url")):
            raise ValueError("an action needs a label and a url")
    return [dict(a, id=secrets.token_hex(5)) for a in actions]


def _error(status: int, code: int, text: str) -> Response:
    return Response(json.dumps({"code": code, "http": status, "error": text}), status,
                    content_type="application/json")
