"""``chime web``: serve the page and JSON API; ``chime web token``: how a phone gets in.

Starlette, uvicorn and Jinja2 (the ``[web]`` extra) are imported inside the commands, so the
rest of the CLI starts without them.
"""

from __future__ import annotations

import sys

import click

from daemon.cli import get_app
from daemon.errors import ConfigError


def _needs_extra(exc: ImportError) -> ConfigError:
    return ConfigError(f"chime web needs the [web] extra ({exc.name} is missing): "
                       "pip install 'chime-reminder[web]'")


def _override(listen: str | None, port: int | None) -> None:
    settings = get_app(click.get_current_context()).settings
    if listen is not None:
        settings.web.listen = listen
    if port is not None:
        settings.web.port = port


@click.group(invoke_without_command=True)
@click.option("--listen", help="Address to listen on (default [web] listen, 127.0.0.1). "
              "Anything but loopback requires the token on every request.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default [web] port, 8765).")
@click.pass_context
def web(ctx: click.Context, listen: str | None, port: int | None) -> None:
    """Serve the web page and JSON API (for a phone or laptop on the LAN)."""
    _override(listen, port)
    if ctx.invoked_subcommand is not None:
        return
    try:
        from daemon.web.server import serve
    except ImportError as exc:
        raise _needs_extra(exc) from exc
    from daemon.web.token import base_url, is_loopback

    app = get_app(ctx)
    w = app.settings.web
    guarded = "" if is_loopback(w.listen) else " (token required: chime web token)"
    click.echo(f"chime web: serving {base_url(app.settings)}{guarded}", err=True)
    serve(app, w.listen, w.port)
    sys.exit(0)


@web.command()
@click.option("--qr/--no-qr", default=True, show_default=True,
              help="Draw a QR code of the login link for a phone's camera.")
def token(qr: bool) -> None:
    """Print the web token and the page's URL (the token is made on first use)."""
    from daemon.web.token import base_url, ensure_token

    settings = get_app(click.get_current_context()).settings
    secret = ensure_token(settings)
    url = base_url(settings)
    click.echo(secret)
    click.echo(f"{url}/")
    click.echo("API: curl -H 'Authorization: Bearer TOKEN' " + f"{url}/api/reminders", err=True)
    if not qr:
        return
    try:
        import segno
    except ImportError as exc:
        raise _needs_extra(exc) from exc
    code = segno.make(f"{url}/login#token={secret}", error="m")
    code.terminal(out=sys.stdout, compact=True, border=2)
