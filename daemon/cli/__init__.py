"""The command line: a thin layer over the use-case functions.

Every ``ChimeError`` is caught here once and printed as one line on stderr
(``chime: <message>``) with the error's exit code; nothing is half-written.

Commands load lazily (click's ``LazyGroup`` pattern), so ``chime --version`` imports click and
this module only, and ``chime add`` imports what adding needs. To add a command:

1. write it in a module under ``daemon/cli/`` with ``@click.command()`` (or ``@click.group()``
   for a group of subcommands) — not ``@main.command()``;
2. keep that module's top-level imports light (click, ``daemon.errors``, the standard library):
   import the store, ``daemon.app``, generation, HTTP clients… inside the command function
   (``chime --help`` imports every command module to show the one-line helps);
3. add one line to ``COMMANDS`` below: ``"name": "daemon.cli.module:attribute"``.

``tests/test_cli.py`` checks that every entry loads and that ``chime --version`` imports no
SQLAlchemy, requests or ``daemon.app``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from daemon import __version__
from daemon.errors import ChimeError

if TYPE_CHECKING:
    from daemon.app import App
    from daemon.config import Settings

# name shown to the user -> "module:attribute" of its click command (alphabetical)
COMMANDS: dict[str, str] = {
    "add": "daemon.cli.events:add",
    "context": "daemon.cli.context:context_cmd",
    "doctor": "daemon.cli.doctor:doctor",
    "done": "daemon.cli.events:done",
    "edit": "daemon.cli.events:edit",
    "export": "daemon.cli.calendars:export",
    "import": "daemon.cli.calendars:import_",
    "list": "daemon.cli.events:list_",
    "log": "daemon.cli.events:log_",
    "model": "daemon.cli.model:model",
    "outputs": "daemon.cli.outputs:list_outputs",
    "pause": "daemon.cli.events:pause",
    "preview": "daemon.cli.events:preview",
    "remove": "daemon.cli.events:remove",
    "resume": "daemon.cli.events:resume",
    "run": "daemon.cli.events:run",
    "service": "daemon.cli.service:service",
    "show": "daemon.cli.events:show",
    "snooze": "daemon.cli.events:snooze",
    "status": "daemon.cli.events:status",
    "subscribe": "daemon.cli.calendars:subscribe",
    "subscriptions": "daemon.cli.calendars:subscriptions_",
    "sync": "daemon.cli.calendars:sync",
    "test-output": "daemon.cli.outputs:test_output",
    "unsubscribe": "daemon.cli.calendars:unsubscribe",
    "web": "daemon.cli.web:web",
}


class ChimeGroup(click.Group):
    """The root group: loads each command from ``COMMANDS`` when it is first needed, and turns
    ChimeError into one line on stderr and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta["chime.help"] = any(arg in ("-h", "--help") for arg in ctx.args)
        try:
            return super().invoke(ctx)
        except ChimeError as exc:
            for line in getattr(exc, "problems", None) or [str(exc)]:
                click.echo(f"chime: {line}", err=True)
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
    # A bad config stops every command at once, one line per problem; help still works, and
    # the doctor reports the config among its checks.
    if ctx.invoked_subcommand not in (None, "doctor") and not ctx.meta.get("chime.help"):
        ctx.obj.load()


def entry() -> None:
    """The ``chime`` program: :func:`main`, without two costs a short command does not need.

    * Python's cycle collector is held off while the command's modules load (SQLAlchemy
      alone makes ~200 000 objects, which it would scan over and over: 30–40 ms of
      ``chime list``); :meth:`_LazyApp.get` freezes what was loaded and starts it again.
    * Freeing every module and object at exit costs 50–70 ms and serves nothing: by then
      threads are joined and the other atexit handlers (logging, multiprocessing) have run —
      this one is registered first, so it runs last — and it flushes the output and exits
      with the command's code.
    """
    gc.disable()
    code = 1  # an exception escaped main (Python has printed it)

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    atexit.register(leave)
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        raise


class _LazyApp:
    """Loads settings only when a command asks for them, so ``--help`` always works."""

    def __init__(self, config: str | None, db: str | None) -> None:
        self.config, self.db = config, db
        self._settings: Settings | None = None
        self._app: App | None = None

    def load(self) -> Settings:
        """The settings, loaded and validated once (ConfigError lists every problem)."""
        if self._settings is None:
            from daemon.config import load_settings

            self._settings = load_settings(self.config, self.db)
        return self._settings

    def get(self, root: click.Context) -> App:
        if self._app is None:
            from daemon.app import App

            self._app = App(self.load())
            # closed when the command ends: the database checkpoints its WAL, a worker stops
            root.call_on_close(self._app.close)
            if not gc.isenabled():  # entry() held the collector off while modules loaded
                gc.freeze()  # they live as long as the process: never scan them again
                gc.enable()
        return self._app


def get_app(ctx: click.Context | None = None) -> App:
    """The App for this invocation (settings loaded and validated on first use)."""
    root = (ctx or click.get_current_context()).find_root()
    lazy: _LazyApp = root.obj
    return lazy.get(root)


def echo_json(data: Any) -> None:
    """Print machine-readable output (``--json``): UTF-8 as is, indented."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))
