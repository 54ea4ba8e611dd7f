"""The web token: a secret in the state directory, next to the database, readable only by its owner.

Every request to a ``chime web`` that listens on anything but loopback must carry it
(``Authorization: Bearer TOKEN`` or the login cookie). The daemon's outputs read it to build
action buttons that call the API. Standard library only: importing this module stays cheap.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.errors import ConfigError

if TYPE_CHECKING:
    from daemon.config import Settings

TOKEN_FILE = "web-token"


def token_path(settings: Settings) -> Path:
    """Where the token lives: the state directory, beside ``chime.db``."""
    return settings.data_dir / TOKEN_FILE


def read_token(settings: Settings) -> str | None:
    """The token, or None when none was made yet."""
    try:
        token = token_path(settings).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the web token {token_path(settings)}: {exc}") from exc
    return token or None


def ensure_token(settings: Settings) -> str:
    """The token, made on first use (mode 0600; a concurrent maker's token wins)."""
    token = read_token(settings)
    if token:
        return token
    path = token_path(settings)
    new = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(settings) or _replace_empty(path, new)
    except OSError as exc:
        raise ConfigError(f"cannot create the web token {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(new + "\n")
    return new


def _replace_empty(path: Path, new: str) -> str:
    """An empty token file (a crash between create and write): write a fresh token."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(new + "\n")
    os.replace(tmp, path)
    return new


def token_matches(given: str | None, expected: str) -> bool:
    """Compare in constant time (no early exit on the first differing character)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii"))


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only addresses served without a token."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def base_url(settings: Settings) -> str:
    """How a browser reaches the page: ``[web] public_url``, else the listen address and port."""
    if settings.web.public_url:
        return settings.web.public_url.rstrip("/")
    host = settings.web.listen
    if host in ("0.0.0.0", "::", ""):
        host = _lan_address() or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web.port}"


def _lan_address() -> str | None:
    """This machine's outward IPv4 address (no packet is sent: UDP connect only picks a route)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, never contacted
            address: str = s.getsockname()[0]
            return address
    except OSError:
        return None
