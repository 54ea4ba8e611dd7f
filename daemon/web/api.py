"""The JSON API under ``/api/`` (docs/web.md): the CLI's use cases over HTTP.

Bodies are JSON objects whose fields are checked here (names, types, lengths) before a use case
sees them; the use cases check the values. Every refusal is ``{"error": "..."}`` with a 4xx and
leaves the database as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from daemon import calendars, reminders
from daemon.app import App
from daemon.calendars.apply import decode
from daemon.errors import InputError, NotFoundError
from daemon.timeparse import format_duration, parse_duration
from daemon.web.checks import check_origin, read_json

log = logging.getLogger("daemon.web")
T = TypeVar("T")
MAX_ID = 2**62
MAX_TEXT = 1000  # characters in any one string field (the task itself allows fewer)
VIAS = ("web", "push")

REMINDER_FIELDS = {"text": "str", "at": "str", "every": "str?", "lead": "str?",
                   "outputs": "list?", "tz": "str?", "nag": "str?", "nag_max": "int?",
                   "priority": "str?"}
EDIT_FIELDS = {**REMINDER_FIELDS, "paused": "bool"}


def the_app(request: Request) -> App:
    app: App = request.app.state.app
    return app


async def call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a use case in the thread pool; overflowing numbers in input become a 400."""
    try:
        return await run_in_threadpool(func, *args, **kwargs)
    except (OverflowError, ValueError) as exc:
        # Out-of-range input reaching datetime/timedelta arithmetic (e.g. lead "9e999s").
        log.info("input out of range: %s", exc)
        raise InputError("a value is out of range (a time or duration too far away)") from None


def fields(body: dict[str, Any], spec: dict[str, str], required: tuple[str, ...] = ()
           ) -> dict[str, Any]:
    """Check the names and types of a body's fields: ``str``, ``str?`` (or null), ``list?``
    (of strings, or null), ``int?`` (a whole number, or null), ``bool``."""
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r} (known: {', '.join(spec)})")
    missing = [name for name in required if body.get(name) is None]
    if missing:
        raise InputError(f"the field {missing[0]!r} is required")
    for name, value in body.items():
        kind = spec[name]
        if value is None and kind.endswith("?"):
            continue
        if kind.startswith("str"):
            checked_string(name, value)
        elif kind.startswith("list"):
            if not isinstance(value, list):
                raise InputError(f"{name!r} must be a list of strings")
            for item in value:
                checked_string(name, item)
        elif kind == "bool" and not isinstance(value, bool):
            raise InputError(f"{name!r} must be true or false")
        elif kind.startswith("int") and (not isinstance(value, int) or isinstance(value, bool)):
            raise InputError(f"{name!r} must be a whole number")
    return body


def checked_string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InputError(f"{name!r} must be a string")
    if len(value) > MAX_TEXT:
        raise InputError(f"{name!r} is longer than {MAX_TEXT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{name!r} holds invalid characters (lone surrogates)") from None
    if "\x00" in value:
        raise InputError(f"{name!r} holds a NUL character")
    return value


def ident(request: Request, name: str = "id") -> int:
    value: int = request.path_params[name]
    if value > MAX_ID:
        raise NotFoundError(f"no such id {value}")
    return value


def via(request: Request) -> str:
    """Who acknowledges: ``web`` (default) or ``push`` (a phone notification's button)."""
    value = request.query_params.get("via", "web")
    if value not in VIAS:
        raise InputError(f"via must be one of {', '.join(VIAS)}, not {value[:20]!r}")
    return value


# --- reminders -------------------------------------------------------------------------------

async def list_reminders(request: Request) -> Response:
    return JSONResponse(await call(request.app.state.upcoming, the_app(request)))


def _add(app: App, body: dict[str, Any]) -> dict[str, Any]:
    event = reminders.add(app, body["text"], body["at"], body.get("every"), body.get("lead"),
                          body.get("tz"), body.get("outputs"), body.get("nag"),
                          body.get("nag_max"), body.get("priority"))
    return reminders.event_view(event, app.clock.now(), app.workdays)


async def add_reminder(request: Request) -> Response:
    body = fields(await read_json(request), REMINDER_FIELDS, ("text", "at"))
    view = await call(_add, the_app(request), body)
    return JSONResponse(view, status_code=201, headers={"Location": f"/api/reminders/{view['id']}"})


async def show_reminder(request: Request) -> Response:
    return JSONResponse(await call(reminders.show, the_app(request), ident(request)))


def _edit(app: App, event_id: int, body: dict[str, Any]) -> dict[str, Any]:
    changes = {k: v for k, v in body.items() if k != "paused"}
    if "every" in changes and changes["every"] is None:
        changes["every"] = "none"
    if not body:
        raise InputError("nothing to change (give text, at, every, lead, outputs, tz, nag, "
                         "nag_max, priority or paused)")
    if changes:
        event = reminders.edit(app, event_id, changes.get("text"), changes.get("at"),
                               changes.get("every"), changes.get("lead"), changes.get("tz"),
                               changes.get("outputs"), changes.get("nag"),
                               changes.get("nag_max"), changes.get("priority"))
    if "paused" in body:
        event = reminders.set_paused(app, event_id, body["paused"])
    return reminders.event_view(event, app.clock.now(), app.workdays)


async def edit_reminder(request: Request) -> Response:
    body = fields(await read_json(request), EDIT_FIELDS)
    return JSONResponse(await call(_edit, the_app(request), ident(request), body))


async def remove_reminder(request: Request) -> Response:
    await read_json(request)
    await call(reminders.remove, the_app(request), ident(request))
    return Response(status_code=204)


# --- log and acknowledgements ----------------------------------------------------------------

async def get_log(request: Request) -> Response:
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InputError("limit must be a whole number from 1 to 1000")
    return JSONResponse(await call(reminders.log, the_app(request), int(raw)))


async def done(request: Request) -> Response:
    await read_json(request)
    occurrence_id, who = ident(request), via(request)
    await call(reminders.done, the_app(request), occurrence_id, by=who)
    return JSONResponse({"id": occurrence_id, "done": True, "via": who})


def snooze_for(app: App, occurrence_id: int, text: str | None, by: str = "web"
               ) -> dict[str, Any]:
    """Snooze by ``text`` (``10m``; default [desktop] snooze), at most a week."""
    delay = parse_duration(text) if text else app.settings.desktop.snooze
    if delay > timedelta(days=7):
        raise InputError("snooze for at most 7 days")
    new_id = reminders.snooze(app, occurrence_id, delay, by=by)
    return {"id": new_id, "snoozed_from": occurrence_id, "for": format_duration(delay)}


async def snooze(request: Request) -> Response:
    body = fields(await read_json(request), {"for": "str?"})
    occurrence_id, who = ident(request), via(request)
    result = await call(snooze_for, the_app(request), occurrence_id, body.get("for"), by=who)
    return JSONResponse({**result, "via": who}, status_code=201)


# --- preview, resolve, status ----------------------------------------------------------------

async def preview(request: Request) -> Response:
    body = fields(await read_json(request), {"text": "str", "at": "str?", "tz": "str?"},
                  ("text",))
    return JSONResponse(await call(reminders.preview, the_app(request), body["text"],
                                   body.get("at") or "now", body.get("tz")))


async def resolve_time(request: Request) -> Response:
    q = fields(dict(request.query_params), {"at": "str", "every": "str?", "tz": "str?"}, ("at",))
    return JSONResponse(await call(reminders.resolve, the_app(request), q["at"],
                                   q.get("every") or None, q.get("tz") or None))


async def status(request: Request) -> Response:
    from daemon.status import overview

    return JSONResponse(await call(overview, the_app(request)))


# --- calendars -------------------------------------------------------------------------------

async def read_calendar(request: Request, check: Callable[[Any], None] | None = None) -> str:
    """An uploaded calendar: a multipart form's ``file`` field or the raw body (text/calendar).
    ``check`` sees the form's ``csrf`` field first (None for a raw body: the header then)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        if check is not None:
            check(None)
        return decode(await request.body())
    limit = the_app(request).settings.web.max_upload_kb * 1024
    async with request.form(max_files=1, max_fields=10, max_part_size=limit) as form:
        if check is not None:
            check(form.get("csrf"))
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("choose an .ics file to upload (form field 'file')")
        return decode(await upload.read())


async def import_calendar(request: Request) -> Response:
    check_origin(request)
    text = await read_calendar(request)
    outcome = await call(calendars.import_text, the_app(request), text)
    return JSONResponse(outcome.view())


async def list_calendars(request: Request) -> Response:
    return JSONResponse(await call(calendars.subscriptions, the_app(request)))


def _subscribe(app: App, url: str, every: str | None) -> dict[str, Any]:
    sub = calendars.subscribe(app, url, every)
    return calendars.sync(app, app.clock.now(), [sub.id], force=True)[0].view()


async def subscribe(request: Request) -> Response:
    body = fields(await read_json(request), {"url": "str", "every": "str?"}, ("url",))
    result = await call(_subscribe, the_app(request), body["url"], body.get("every"))
    return JSONResponse(result, status_code=201)


async def unsubscribe(request: Request) -> Response:
    await read_json(request)
    removed = await call(calendars.unsubscribe, the_app(request), ident(request))
    return JSONResponse({"id": ident(request), "removed_events": removed})


def routes() -> list[Route]:
    return [
        Route("/api/reminders", list_reminders, methods=["GET"]),
        Route("/api/reminders", add_reminder, methods=["POST"]),
        Route("/api/reminders/{id:int}", show_reminder, methods=["GET"]),
        Route("/api/reminders/{id:int}", edit_reminder, methods=["PATCH"]),
        Route("/api/reminders/{id:int}", remove_reminder, methods=["DELETE"]),
        Route("/api/log", get_log, methods=["GET"]),
        Route("/api/occurrences/{id:int}/done", done, methods=["POST"]),
        Route("/api/occurrences/{id:int}/snooze", snooze, methods=["POST"]),
        Route("/api/preview", preview, methods=["POST"]),
        Route("/api/resolve", resolve_time, methods=["GET"]),
        Route("/api/status", status, methods=["GET"]),
        Route("/api/calendars", list_calendars, methods=["GET"]),
        Route("/api/calendars", subscribe, methods=["POST"]),
        Route("/api/calendars/{id:int}", unsubscribe, methods=["DELETE"]),
        Route("/api/calendars/import", import_calendar, methods=["POST"]),
    ]
