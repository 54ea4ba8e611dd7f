"""`chime web`: the Starlette application, its guards (token, CSRF, body size) and the server.

Requests pass, outermost first: the body-size limit (413), the token check (401; every request
when the listen address or the request's Host is not loopback, so that neither a reverse proxy
nor DNS rebinding opens the door), then the routes of ``api`` (JSON) and ``pages`` (HTML).
Use cases run in Starlette's thread pool; their ``ChimeError`` becomes a 4xx with a one-line
message, anything else a 500 that says nothing of Python.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import deque
from http.cookies import SimpleCookie
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daemon.app import App
from daemon.errors import ChimeError, InputError, NotFoundError
from daemon.web.checks import CSRF_COOKIE, HERE, SESSION_COOKIE
from daemon.web.token import ensure_token, is_loopback, token_matches
from daemon.web.upcoming import Upcoming

log = logging.getLogger("daemon.web")

JSON_LIMIT = 64 * 1024
UPLOAD_PATHS = ("/api/calendars/import", "/calendars/upload")
OPEN_PATHS = ("/login", "/static/")  # reachable without the token


def session_value(token: str) -> str:
    """What the login cookie holds: derived from the token, so a new token logs everyone out."""
    return hmac.new(token.encode(), b"chime web session", hashlib.sha256).hexdigest()


def error_response(request: Request, status: int, message: str) -> Response:
    """``{"error": ...}`` for the API, the error page for a browser."""
    wants_html = "html" in request.headers.get("accept", "")
    if request.url.path.startswith("/api/") or not wants_html:
        return JSONResponse({"error": message}, status_code=status)
    from daemon.web.pages import error_page

    return error_page(request, status, message)


class Failures:
    """Slows down repeated wrong tokens: the n-th failure within a minute waits 0.05 s × 2ⁿ⁻¹
    (at most 5 s): a typo costs nothing, a guessing client soon waits 5 s per try."""

    def __init__(self, window: float = 60.0, first: float = 0.05, cap: float = 5.0) -> None:
        self.window, self.first, self.cap = window, first, cap
        self.times: deque[float] = deque()

    async def penalize(self) -> None:
        now = time.monotonic()
        self.times.append(now)
        while self.times and self.times[0] < now - self.window:
            self.times.popleft()
        await asyncio.sleep(min(self.first * 2 ** (len(self.times) - 1), self.cap))


class Guards:
    """Pure ASGI middleware: body-size limit, then the token (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, token: str, listen: str, upload_limit: int,
                 failures: Failures) -> None:
        self.app, self.token, self.upload_limit = app, token, upload_limit
        self.listen_loopback = is_loopback(listen)
        self.session = session_value(token)
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        limit = self.upload_limit if scope["path"] in UPLOAD_PATHS else JSON_LIMIT
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await self._too_large(request, limit)(scope, receive, send)
            return
        scope.setdefault("state", {})["auth"] = auth = self._auth(request)
        if auth == "denied":
            if request.headers.get("authorization"):
                await self.failures.penalize()
            await self._denied(request)(scope, receive, send)
            return
        await self.app(scope, _limited(receive, limit), send)

    def _auth(self, request: Request) -> str:
        """``bearer``, ``cookie``, ``local`` (loopback, no token needed), ``open`` (the login
        page and static files) or ``denied``."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token_matches(given.strip(), self.token):
            return "bearer"
        if token_matches(request.cookies.get(SESSION_COOKIE), self.session):
            return "cookie"
        host = (request.url.hostname or "") if "host" in request.headers else ""
        if self.listen_loopback and is_loopback(host) and not request.headers.get(
                "authorization"):
            return "local"
        if request.url.path.startswith(OPEN_PATHS) and not request.headers.get("authorization"):
            return "open"
        return "denied"

    def _denied(self, request: Request) -> Response:
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"error": "missing or wrong token (Authorization: Bearer TOKEN; "
                                 "see `chime web token`)"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return RedirectResponse("/login", status_code=303)

    @staticmethod
    def _too_large(request: Request, limit: int) -> Response:
        return error_response(request, 413, f"the request body is larger than {limit // 1024} KB")


class BodyTooLarge(Exception):
    """A streamed body grew past its limit (no Content-Length, or a false one)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit // 1024} KB")


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counting() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return counting


async def _on_error(request: Request, exc: Exception) -> Response:
    """ChimeError → 4xx (503 for store/config trouble); anything else → a 500 saying nothing."""
    if isinstance(exc, NotFoundError):
        return error_response(request, 404, str(exc))
    if isinstance(exc, InputError):
        return error_response(request, 400, str(exc))
    if isinstance(exc, BodyTooLarge):
        return error_response(request, 413, str(exc))
    if isinstance(exc, HTTPException):
        return error_response(request, exc.status_code, exc.detail)
    if isinstance(exc, ChimeError):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(request, 503, str(exc))
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal error; the server log has the details")


SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class _Headers:
    """Adds the security headers, and the CSRF cookie where the request had none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *SECURITY_HEADERS]
                new = scope.get("state", {}).get("new_csrf")
                if new:
                    cookie: SimpleCookie = SimpleCookie()
                    cookie[CSRF_COOKIE] = new
                    cookie[CSRF_COOKIE].update({"path": "/", "samesite": "Strict"})
                    cookie[CSRF_COOKIE]["httponly"] = True
                    headers.append((b"set-cookie", cookie.output(header="").strip().encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


STATIC = {"htmx.min.js": "text/javascript", "style.css": "text/css", "login.js": "text/javascript"}


def static_routes() -> list[Route]:
    """The page's three files, read once into memory: no request path reaches the disk."""
    routes = []
    for name, media in STATIC.items():
        body = (HERE / "static" / name).read_bytes()

        async def send(request: Request, body: bytes = body, media: str = media) -> Response:
            return Response(body, media_type=media,
                            headers={"Cache-Control": "public, max-age=86400"})

        routes.append(Route(f"/static/{name}", send, methods=["GET"]))
    return routes


def create_app(app: App, *, listen: str | None = None) -> Starlette:
    """The ASGI application serving this App's database."""
    from daemon.web import api, pages

    settings = app.settings
    token = ensure_token(settings)
    app.db  # noqa: B018 - open (and migrate) the database before the first request
    routes = [*api.routes(), *pages.routes(), *static_routes()]
    handlers: dict[Any, Any] = {cls: _on_error for cls in (
        Exception, HTTPException, ChimeError, BodyTooLarge)}
    web = Starlette(routes=routes, exception_handlers=handlers)
    failures = Failures()
    web.state.app = app
    web.state.token = token
    web.state.session = session_value(token)
    web.state.failures = failures
    web.state.upcoming = Upcoming()
    web.add_middleware(_Headers)
    web.add_middleware(Guards, token=token, listen=listen or settings.web.listen,
                       upload_limit=settings.web.max_upload_kb * 1024, failures=failures)
    return web


def serve(app: App, listen: str, port: int) -> None:
    """Run the server in the foreground until SIGTERM/SIGINT."""
    web = create_app(app, listen=listen)
    config = uvicorn.Config(web, host=listen, port=port, log_level="warning",
                            access_log=False, proxy_headers=False, server_header=False,
                            lifespan="off", limit_concurrency=64)
    uvicorn.Server(config).run()

