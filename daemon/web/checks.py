"""What the request handlers check, shared by the API and the pages: the CSRF double-submit
cookie, the origin of a cookie-authenticated API call, a JSON body.

A leaf of ``daemon.web``: ``server`` (which assembles the routes), ``api`` and ``pages`` import
from here, so none of them imports another in a circle.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from daemon.errors import InputError
from daemon.web.token import token_matches

HERE = Path(__file__).parent
SESSION_COOKIE = "chime_session"
CSRF_COOKIE = "chime_csrf"


def csrf_token(request: Request) -> str:
    """The double-submit CSRF value: the cookie's, or a fresh one the response will set."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) >= 32:
        return existing
    state = request.scope.setdefault("state", {})
    new: str = state.setdefault("new_csrf", secrets.token_urlsafe(32))
    return new


def check_csrf(request: Request, given: str | None) -> None:
    """Refuse a state change whose form field or header does not echo the CSRF cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not token_matches(given or request.headers.get("x-csrf-token"), cookie):
        raise HTTPException(403, "the form is stale or came from another site; reload the page")


def check_origin(request: Request) -> None:
    """API calls without a bearer token must not come from another site's page."""
    if request.scope.get("state", {}).get("auth") == "bearer":
        return
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site", "")
    if site in ("cross-site", "same-site") or (
            origin and origin.split("://", 1)[-1] != request.headers.get("host")):
        raise HTTPException(403, "cross-site requests need the token (Authorization: Bearer)")


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``), else InputError."""
    check_origin(request)
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object")
    return body
