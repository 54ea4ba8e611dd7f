"""The HTML pages: next, add/edit, log, calendars, status, login (Jinja2 + htmx, no build step).

Every form works without JavaScript (POST, then a redirect); htmx boosts links and forms into
partial page swaps and drives the two live parts: the resolved time as you type and the preview.
Every POST checks the CSRF field; Jinja2 escapes every value (a ``<script>`` task stays text).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from daemon import calendars, reminders
from daemon.errors import InputError
from daemon.outputs import base as outputs
from daemon.priority import LABELS as PRIORITY_LABELS
from daemon.timeparse import format_duration
from daemon.web.api import (
    call,
    checked_string,
    ident,
    read_calendar,
    snooze_for,
    the_app,
)
from daemon.web.checks import HERE, SESSION_COOKIE, check_csrf, csrf_token
from daemon.web.token import token_matches
from daemon.web.words import PRESETS, Words, pick_language, preset_of

_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
RECENT = timedelta(hours=24)  # deliveries that still get done/snooze buttons
PAGE = 50  # reminders on the first page
ACTIONABLE = ("delivered", "late", "unacknowledged")  # statuses that get done/snooze buttons
PRIORITIES = tuple(PRIORITY_LABELS.values())


def words(request: Request) -> Words:
    return Words(pick_language(request.headers.get("accept-language", "")))


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    w = words(request)
    app = the_app(request)
    html = _env.get_template(name).render(
        w=w, lang="zh-CN" if w.lang == "zh" else "en", csrf=csrf_token(request),
        path=request.url.path, now=app.clock.now(), **context)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status, message=message)


def back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


async def checked_form(request: Request) -> FormData:
    """The posted form, refused (403) unless its CSRF field echoes the cookie."""
    form = await request.form(max_files=0, max_fields=30)
    csrf = form.get("csrf")
    check_csrf(request, csrf if isinstance(csrf, str) else None)
    return form


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return checked_string(name, value).strip() if isinstance(value, str) else ""


# --- next ------------------------------------------------------------------------------------

def card(item: dict[str, Any], w: Words, now: datetime) -> dict[str, Any]:
    """One reminder for the page: its next time in words, its rule and outputs in words."""
    at = datetime.fromisoformat(item["next"]) if item["next"] else None
    return {**item, "when": w.when(at, now) if at else None,
            "rule_words": w.rule(item["rule"], item["day_filter"])}


async def index(request: Request) -> Response:
    """The next reminders first (the first ``PAGE`` unless ``?all``), then finished, paused."""
    app, w = the_app(request), words(request)
    items = await call(request.app.state.upcoming, app)
    now = app.clock.now()
    items = sorted(items, key=lambda i: (i["paused"], i["next"] is None,
                                         _instant(i["next"]), i["id"]))
    shown = items if "all" in request.query_params else items[:PAGE]
    return render(request, "index.html", cards=[card(i, w, now) for i in shown],
                  hidden=len(items) - len(shown), total=len(items))


def _instant(iso: str | None) -> datetime:
    """Sort key: reminders in different zones compare by instant, not by text."""
    return datetime.fromisoformat(iso) if iso else datetime.max.replace(tzinfo=timezone.utc)


async def pause(request: Request) -> Response:
    await checked_form(request)
    await call(reminders.set_paused, the_app(request), ident(request), True)
    return back("/")


async def resume(request: Request) -> Response:
    await checked_form(request)
    await call(reminders.set_paused, the_app(request), ident(request), False)
    return back("/")


async def remove(request: Request) -> Response:
    if request.method == "GET":
        view = await call(reminders.show, the_app(request), ident(request))
        return render(request, "confirm.html", question=words(request)(
            "confirm.remove", task=view["task"]), action=request.url.path, cancel="/")
    await checked_form(request)
    await call(reminders.remove, the_app(request), ident(request))
    return back("/")


# --- add and edit ----------------------------------------------------------------------------

def form_values(form: FormData) -> dict[str, Any]:
    """The reminder form's fields as the use cases take them."""
    preset = text(form, "every")
    every = text(form, "rule") if preset == "custom" else (preset if preset in PRESETS else None)
    chosen = [checked_string("outputs", o) for o in form.getlist("outputs") if isinstance(o, str)]
    return {"task": text(form, "text"), "when": text(form, "at"), "every": every,
            "lead": text(form, "lead") or None, "tz": text(form, "tz") or None,
            "output": chosen, "nag": text(form, "nag") or None,
            "priority": text(form, "priority") or None}


def form_page(request: Request, status: int = 200, error: str = "", **values: Any) -> Response:
    settings = the_app(request).settings
    defaults: dict[str, Any] = {"text": "", "at": "", "every": "none", "rule": "", "lead": "",
                                "tz": "", "outputs": [], "nag": "", "priority": "", "id": None}
    return render(request, "form.html", status, error=error, v={**defaults, **values},
                  presets=PRESETS, priorities=PRIORITIES, known_outputs=outputs.available(),
                  default_outputs=", ".join(settings.daemon.outputs),
                  default_lead=format_duration(settings.daemon.lead))


def _echo(form: FormData) -> dict[str, Any]:
    """The posted values, to show the form again with an error."""
    return {"text": text(form, "text"), "at": text(form, "at"), "every": text(form, "every"),
            "rule": text(form, "rule"), "lead": text(form, "lead"), "tz": text(form, "tz"),
            "outputs": [o for o in form.getlist("outputs") if isinstance(o, str)],
            "nag": text(form, "nag"), "priority": text(form, "priority")}


async def add(request: Request) -> Response:
    if request.method == "GET":
        return form_page(request)
    form = await checked_form(request)
    try:
        v = form_values(form)
        await call(reminders.add, the_app(request), v["task"], v["when"], v["every"], v["lead"],
                   v["tz"], v["output"] or None, v["nag"], None, v["priority"])
    except InputError as exc:
        return form_page(request, 400, str(exc), **_echo(form))
    return back("/")


async def edit(request: Request) -> Response:
    event_id = ident(request)
    if request.method == "GET":
        view = await call(reminders.show, the_app(request), event_id)
        default_zone = the_app(request).settings.daemon.timezone
        start = datetime.fromisoformat(view["start"])
        preset = preset_of(view["rule"], view["day_filter"])
        return form_page(request, id=event_id, text=view["task"], at=f"{start:%Y-%m-%d %H:%M}",
                         every=preset, rule=view["rule"] if preset == "custom" else "",
                         lead=view["lead"] or "",
                         tz="" if view["timezone"] == default_zone else view["timezone"],
                         outputs=view["outputs"] or [], nag=view["nag"] or "",
                         priority=view["priority"] or "")
    form = await checked_form(request)
    try:
        v = form_values(form)
        await call(reminders.edit, the_app(request), event_id, v["task"], v["when"],
                   v["every"] or "none", v["lead"], v["tz"], v["output"], v["nag"], None,
                   v["priority"])
    except InputError as exc:
        return form_page(request, 400, str(exc), id=event_id, **_echo(form))
    return back("/")


async def resolved(request: Request) -> Response:
    """The fragment under the time field: when the reminder would come, or why not."""
    w, q = words(request), request.query_params
    at = q.get("at", "").strip()
    if not at:
        return HTMLResponse("")
    preset = q.get("every", "")
    every = q.get("rule", "") if preset == "custom" else (preset if preset in PRESETS else None)
    app = the_app(request)
    try:
        found = await call(reminders.resolve, app, checked_string("at", at), every or None,
                           q.get("tz") or None)
    except InputError as exc:
        return render(request, "_resolved.html", error=str(exc))
    nxt = datetime.fromisoformat(found["next"]) if found["next"] else None
    return render(request, "_resolved.html",
                  when=w("resolved", when=w.when(nxt, app.clock.now())) if nxt else None,
                  start=found["start"])


async def preview(request: Request) -> Response:
    form = await checked_form(request)
    try:
        result = await call(reminders.preview, the_app(request), text(form, "text"),
                            text(form, "at") or "now", text(form, "tz") or None)
    except InputError as exc:
        return render(request, "_preview.html", error=str(exc))
    return render(request, "_preview.html", result=result)


# --- log -------------------------------------------------------------------------------------

async def log_page(request: Request) -> Response:
    app, w = the_app(request), words(request)
    rows = await call(reminders.log, app, 50)
    now = app.clock.now()
    for row in rows:
        at = datetime.fromisoformat(row["scheduled_at"])
        row["when"] = f"{w.day(at, now)} {at:%H:%M}"
        row["actionable"] = (row["status"] in ACTIONABLE
                             and not row["acknowledged_at"] and now - at < RECENT)
        acked = row["acknowledged_at"]
        row["acked_words"] = w.relative(datetime.fromisoformat(acked), now) if acked else None
    snooze = format_duration(app.settings.desktop.snooze)
    return render(request, "log.html", rows=rows, snooze=snooze)


async def done(request: Request) -> Response:
    await checked_form(request)
    await call(reminders.done, the_app(request), ident(request), by="web")
    return back("/log")


async def snooze(request: Request) -> Response:
    form = await checked_form(request)
    await call(snooze_for, the_app(request), ident(request), text(form, "for") or None)
    return back("/log")


# --- calendars -------------------------------------------------------------------------------

async def calendars_page(request: Request, status: int = 200, **extra: Any) -> Response:
    app = the_app(request)
    subs = await call(calendars.subscriptions, app)
    return render(request, "calendars.html", status, subs=subs,
                  limit_kb=app.settings.web.max_upload_kb,
                  default_every=format_duration(app.settings.calendars.default_every), **extra)


async def upload(request: Request) -> Response:
    try:
        body = await read_calendar(
            request, lambda csrf: check_csrf(request, csrf if isinstance(csrf, str) else None))
        outcome = await call(calendars.import_text, the_app(request), body)
    except InputError as exc:
        return await calendars_page(request, 400, error=str(exc))
    return await calendars_page(request, imported=outcome.view())


async def subscribe(request: Request) -> Response:
    form = await checked_form(request)
    app = the_app(request)
    try:
        sub = await call(calendars.subscribe, app, text(form, "url"), text(form, "every") or None)
    except InputError as exc:
        return await calendars_page(request, 400, error=str(exc))
    await call(calendars.sync, app, app.clock.now(), [sub.id], force=True)
    return back("/calendars")


async def unsubscribe(request: Request) -> Response:
    sub_id = ident(request)
    if request.method == "GET":
        subs = await call(calendars.subscriptions, the_app(request))
        sub = next((s for s in subs if s["id"] == sub_id), None)
        if sub is None:
            raise InputError(f"no subscription with id {sub_id}")
        return render(request, "confirm.html", question=words(request)(
            "confirm.unsubscribe", url=sub["url"], count=sub["events"]),
            action=request.url.path, cancel="/calendars")
    await checked_form(request)
    await call(calendars.unsubscribe, the_app(request), sub_id)
    return back("/calendars")


# --- status and login ------------------------------------------------------------------------

async def status_page(request: Request) -> Response:
    from daemon.status import overview

    app, w = the_app(request), words(request)
    view = await call(overview, app)
    now = app.clock.now()
    nexts = [{**n, "when": w.when(datetime.fromisoformat(n["at"]), now)} for n in view["next"]]
    return render(request, "status.html", s=view, nexts=nexts,
                  beat_age=w.age(timedelta(seconds=view["heartbeat_age_s"] or 0)),
                  weather_age=w.age(timedelta(seconds=view["weather"]["age_s"] or 0)),
                  db_size=_size(view["storage"]["database_bytes"]),
                  free=_size(view["storage"]["free_bytes"]))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "login.html")
    form = await checked_form(request)
    given = form.get("token")
    if not token_matches(given.strip() if isinstance(given, str) else None,
                         request.app.state.token):
        await request.app.state.failures.penalize()
        return render(request, "login.html", 401, error=True)
    response = back("/")
    secure = the_app(request).settings.web.public_url.startswith("https://")
    response.set_cookie(SESSION_COOKIE, request.app.state.session, max_age=90 * 86400,
                        httponly=True, samesite="strict", secure=secure)
    return response


def routes() -> list[Route]:
    both = ["GET", "POST"]
    return [
        Route("/", index, methods=["GET"]),
        Route("/add", add, methods=both),
        Route("/reminders/{id:int}/edit", edit, methods=both),
        Route("/reminders/{id:int}/pause", pause, methods=["POST"]),
        Route("/reminders/{id:int}/resume", resume, methods=["POST"]),
        Route("/reminders/{id:int}/remove", remove, methods=both),
        Route("/resolve", resolved, methods=["GET"]),
        Route("/preview", preview, methods=["POST"]),
        Route("/log", log_page, methods=["GET"]),
        Route("/log/{id:int}/done", done, methods=["POST"]),
        Route("/log/{id:int}/snooze", snooze, methods=["POST"]),
        Route("/calendars", calendars_page, methods=["GET"]),
        Route("/calendars/upload", upload, methods=["POST"]),
        Route("/calendars/subscribe", subscribe, methods=["POST"]),
        Route("/calendars/{id:int}/unsubscribe", unsubscribe, methods=both),
        Route("/status", status_page, methods=["GET"]),
        Route("/login", login, methods=both),
    ]
