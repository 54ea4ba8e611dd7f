"""ntfy output: push each reminder to a phone through an ntfy server (ntfy.sh or your own).

Each reminder is one JSON publish (``POST`` to the server's base URL, as ntfy documents it):
``topic``, ``title`` (the task), ``message`` (the text), ``priority`` (1 min … 5 max: the
event's ``--priority`` or ``[ntfy] priority``, one level higher per nag repeat), ``tags``, and,
when ``[web] public_url`` is set, two ``http`` action buttons — 完成 and 稍后提醒 — that POST
to chime's web API with the web token, so pressing them on the phone acknowledges or snoozes
the reminder. ``[ntfy] token`` (``Authorization: Bearer``) or ``user`` + ``password`` (Basic)
authenticate to the server. The publish is not retried (a retry after a timeout could push
twice); any failure is an ``OutputError``, recorded for this output only.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from daemon.config_checks import require
from daemon.errors import ChimeError, FetchError, OutputError
from daemon.http import FetchPolicy, request
from daemon.http_client import Client
from daemon.outputs.base import Actions, Reminder
from daemon.priority import parse_priority, raised
from daemon.timeparse import format_duration
from daemon.web.token import ensure_token

if TYPE_CHECKING:
    from daemon.config import Settings

log = logging.getLogger("daemon.outputs.ntfy")

DONE_LABEL, SNOOZE_LABEL = "完成", "稍后提醒"


def action_urls(public_url: str, occurrence_id: int) -> tuple[str, str]:
    """The web API's done and snooze URLs for one occurrence, marked as pressed on the phone."""
    base = f"{public_url.rstrip('/')}/api/occurrences/{occurrence_id}"
    return f"{base}/done?via=push", f"{base}/snooze?via=push"


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization: Basic`` value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class NtfyOutput:
    """Publishes each reminder to an ntfy topic, with 完成 / 稍后提醒 buttons."""

    name = "ntfy"

    def __init__(self, settings: Settings, actions: Actions | None = None) -> None:
        require(settings, "ntfy")
        conf = settings.ntfy
        self.settings = settings
        self.url = conf.url.rstrip("/") + "/"
        self.topic, self.tags = conf.topic, list(conf.tags)
        self.priority = parse_priority(conf.priority)
        self.host = urlsplit(conf.url).hostname
        self.headers = {"Content-Type": "application/json; charset=utf-8"}
        if conf.token:
            self.headers["Authorization"] = f"Bearer {conf.token}"
        elif conf.user:
            self.headers["Authorization"] = basic_auth(conf.user, conf.password)
        self.policy = FetchPolicy(connect_timeout=conf.timeout, read_timeout=conf.timeout,
                                  retries=0, total_timeout=conf.timeout, max_bytes=65536)
        self.client = Client()

    def send(self, reminder: Reminder) -> str:
        body = self.publication(reminder)
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            reply = request(self.client, self.url, policy=self.policy, headers=self.headers,
                            method="POST", body=data, follow_redirects=False)
        except FetchError as exc:
            raise OutputError(f"ntfy: {exc}") from None
        try:
            answer = reply.json()
        except FetchError:
            answer = {}
        message_id = answer.get("id") if isinstance(answer, dict) else None
        buttons = " with buttons" if "actions" in body else ""
        return f"published {message_id or '(no id)'} to {self.host}, priority " \
               f"{body['priority']}{buttons}"

    def publication(self, reminder: Reminder) -> dict[str, Any]:
        """The JSON message ntfy receives for ``reminder``."""
        body: dict[str, Any] = {
            "topic": self.topic,
            "title": reminder.task,
            "message": reminder.message,
            "priority": raised(reminder.priority or self.priority, reminder.repeat),
        }
        if self.tags:
            body["tags"] = self.tags
        buttons = self.buttons(reminder.occurrence_id)
        if buttons:
            body["actions"] = buttons
        return body

    def buttons(self, occurrence_id: int | None) -> list[dict[str, Any]]:
        """完成 and 稍后提醒 as ntfy ``http`` actions; none without ``[web] public_url``."""
        public_url = self.settings.web.public_url
        if occurrence_id is None or not public_url:
            return []
        try:
            token = ensure_token(self.settings)
        except ChimeError as exc:  # the push still goes out, without buttons
            log.warning("ntfy buttons left out: %s", exc)
            return []
        done, snooze = action_urls(public_url, occurrence_id)
        auth = {"Authorization": f"Bearer {token}"}
        later = {"for": format_duration(self.settings.desktop.snooze)}
        return [
            {"action": "http", "label": DONE_LABEL, "url": done, "method": "POST",
             "headers": auth, "clear": True},
            {"action": "http", "label": SNOOZE_LABEL, "url": snooze, "method": "POST",
             "headers": {**auth, "Content-Type": "application/json"},
             "body": json.dumps(later), "clear": True},
        ]

    def close(self) -> None:
        self.client.close()
