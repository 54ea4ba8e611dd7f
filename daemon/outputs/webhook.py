"""Webhook output: POST each reminder as JSON to a URL (ntfy, Gotify, Home Assistant…).

The body is ``{"task", "message", "scheduled_at", "occurrence_id", "late", "title"}`` (UTF-8,
not ASCII-escaped; ``title`` repeats the task for Gotify and ntfy, and ``[webhook] topic`` adds
``topic`` for ntfy's JSON publishing), sent with ``[webhook] headers`` (e.g. an
``Authorization`` token). Anything
but a 2xx answer within ``[webhook] timeout`` seconds is an ``OutputError``; redirects are not
followed, so a token is never sent somewhere else.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from daemon.config_checks import require
from daemon.errors import OutputError
from daemon.outputs.base import Actions, Reminder

if TYPE_CHECKING:
    from daemon.config import Settings


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx then surfaces as an HTTPError


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
        parts = urlsplit(conf.url)
        self.url, self.timeout, self.headers = conf.url, conf.timeout, dict(conf.headers)
        self.topic = conf.topic
        self.host = parts.hostname
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(self, reminder: Reminder) -> str:
        body = json.dumps(payload(reminder, self.topic), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "chime", **self.headers}
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                response.read(65536)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise OutputError(f"webhook: {self.host} answered HTTP {exc.code} {exc.reason}") \
                from None
        except TimeoutError:
            raise OutputError(f"webhook: {self.host} did not answer within {self.timeout:g}s") \
                from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise OutputError(f"webhook: {self.host} did not answer within "
                                  f"{self.timeout:g}s") from None
            raise OutputError(f"webhook: cannot reach {self.host}: {reason}") from None
        except OSError as exc:
            raise OutputError(f"webhook: connection to {self.host} failed: {exc}") from None
        if not 200 <= status < 300:
            raise OutputError(f"webhook: {self.host} answered HTTP {status}")
        return f"HTTP {status}"

    def close(self) -> None:
        pass
