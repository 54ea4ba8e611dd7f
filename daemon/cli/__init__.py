"""The command line: a thin layer over the use-case functions.

Every ``ChimeError`` is caught here once and printed as one line on stderr
(``chime: <message>``) with the error's exit code; nothing is half-written.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from daemon import __version__
from daemon.app import App
from daemon.config import load_settings
from daemon.errors import ChimeError


class ChimeGroup(click.Group):
    """A click group that turns ChimeError into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ChimeError as exc:
            click.echo(f"chime: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=ChimeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="CHIME_DB", type=click.Path(dir_okay=False),
              help="Database file (default: $STATE_DIRECTORY or XDG data dir).")
@click.option("--config", envvar="CHIME_CONFIG", type=click.Path(dir_okay=False),
              help="Config file (default: $XDG_CONFIG_HOME/chime/config.toml).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="chime")
@click.pass_context
def main(ctx: click.Context, db: str | None, config: str | None, verbose: int) -> None:
    """chime — a personal reminder daemon that speaks in a character's voice."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose < 2:  # APScheduler logs every job run at INFO
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    ctx.obj = _LazyApp(config, db)


class _LazyApp:
    """Loads settings only when a command asks for them, so ``--help`` always works."""

    def __init__(self, config: str | None, db: str | None) -> None:
        self.config, self.db = config, db
        self._app: App | None = None

    def get(self) -> App:
        if self._app is None:
            self._app = App(load_settings(self.config, self.db))
        return self._app


def get_app(ctx: click.Context) -> App:
    """The App for this invocation (settings loaded and validated on first use)."""
    lazy: _LazyApp = ctx.find_root().obj
    return lazy.get()


def echo_json(data: Any) -> None:
    """Print machine-readable output (``--json``): UTF-8 as is, indented."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))

# Command modules register themselves on ``main`` when imported.
from daemon.cli import calendars, context, doctor, events, model, outputs, service  # noqa: E402,F401
