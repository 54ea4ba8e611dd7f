"""Webhook output: POST each reminder as JSON to a URL (ntfy, Gotify, Home Assistant…).

The body is ``{"task", "message", "scheduled_at", "occurrence_id", "late", "title"}`` (UTF-8,
not ASCII-escaped; ``title`` repeats the task for Gotify and ntfy, and ``[webhook] topic`` adds
``topic`` for ntfy's JSON publishing), sent with ``[webhook] headers`` (e.g. an
``Authorization`` token) through :func:`daemon.http.request`, the project's one HTTP function:
anything but a 2xx answer within ``[webhook] timeout`` seconds (one deadline for the whole
request, never retried: a retry could deliver twice) is an ``OutputError`` in that function's
words; redirects are not followed, so a token is never sent somewhere else.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from daemon.config_checks import require
from daemon.errors import FetchError, OutputError
from daemon.http import FetchPolicy, request
from daemon.http_client import Client
from daemon.outputs.base import Actions, Reminder

if TYPE_CHECKING:
    from daemon.config import Settings


def payload(reminder: Reminder, topic: str = "") -> dict[str, Any]:
    """The JSON object a webhook receives."""
    body: dict[str, Any] = {
        "task": reminder.task,
        "message": reminder.message,
        "scheduled_at": reminder.scheduled_at.isoformat(),
        "occurrence_id": reminder.occurrence_id,
        "late": reminder.late,
        "title": reminder.task,
    }
    if topic:
        body["topic"] = topic
    return body


class WebhookOutput:
    """POSTs each reminder as JSON to a URL on the local network."""

    name = "webhook"

    def __init__(self, settings: Settings, actions: Actions | None = None) -> None:
        require(settings, "webhook")
        conf = settings.webhook
        self.url, self.headers = conf.url, dict(conf.headers)
        self.topic = conf.topic
        self.policy = FetchPolicy(connect_timeout=conf.timeout, read_timeout=conf.timeout,
                                  retries=0, total_timeout=conf.timeout, max_bytes=65536)
        self.client = Client()

    def send(self, reminder: Reminder) -> str:
        body = json.dumps(payload(reminder, self.topic), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", **self.headers}
        try:
            reply = request(self.client, self.url, policy=self.policy, method="POST",
                            headers=headers, body=body, follow_redirects=False)
        except FetchError as exc:
            raise OutputError(f"webhook: {exc}") from None
        return f"HTTP {reply.status}"

    def close(self) -> None:
        self.client.close()
