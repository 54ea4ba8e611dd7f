"""Commands for calendars: import, export, subscribe, subscriptions, unsubscribe, sync."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from daemon.cli import echo_json, get_app

if TYPE_CHECKING:
    from daemon.app import App
    from daemon.calendars.apply import Outcome


def _app() -> App:
    return get_app(click.get_current_context())


def _report(outcome: Outcome, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        echo_json({**(extra or {}), **outcome.view()})
        return
    click.echo(outcome.summary())
    for problem in outcome.skipped:
        click.echo(f"skipped {problem}", err=True)
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@json_option
def import_(file: str, as_json: bool) -> None:
    """Import the events of an .ics FILE ('-': stdin) as reminders.

    Importing the same file again changes nothing; an edited file updates the events it
    holds (matched by UID). Events of other files and your own reminders stay.
    """
    from daemon import calendars
    from daemon.calendars.apply import decode, read_text

    text = decode(sys.stdin.buffer.read()) if file == "-" else read_text(Path(file))
    _report(calendars.import_text(_app(), text), as_json)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--all", "include_all", is_flag=True,
              help="Also imported and subscribed events (default: only those added with chime).")
def export(file: str, include_all: bool) -> None:
    """Write reminders to an .ics FILE ('-': stdout) that calendars can import."""
    from daemon import calendars

    text, count = calendars.export(_app(), file, include_all)
    if file == "-":
        click.echo(text, nl=False)
    else:
        click.echo(f"exported {count} event(s) to {file}")


@click.command()
@click.argument("url")
@click.option("--every", help="Fetch this often (default [calendars] default_every, 30m).")
@json_option
def subscribe(url: str, every: str | None, as_json: bool) -> None:
    """Subscribe to a calendar URL (http, https or webcal) and fetch it now.

    Its events are kept in the database, so reminders keep coming while offline.
    """
    from daemon import calendars

    app = _app()
    sub = calendars.subscribe(app, url, every)
    result = calendars.sync(app, app.clock.now(), [sub.id], force=True)[0]
    if as_json:
        echo_json(result.view())
        return
    click.echo(f"subscribed: {sub.id}")
    if result.error:
        click.echo(f"chime: fetching failed, will retry: {result.error}", err=True)
    elif result.outcome is not None:
        _report(result.outcome, False)


@click.command(name="subscriptions")
@json_option
def subscriptions_(as_json: bool) -> None:
    """List calendar subscriptions with their state."""
    from daemon import calendars

    items = calendars.subscriptions(_app())
    if as_json:
        echo_json(items)
        return
    if not items:
        click.echo("no subscriptions yet: chime subscribe URL")
    for sub in items:
        state = f"error: {sub['last_error']}" if sub["last_error"] else (
            f"checked {sub['last_checked']}" if sub["last_checked"] else "never fetched")
        click.echo(f"{sub['id']:>4}  every {sub['every']:<6}  {sub['events']:>4} events  "
                   f"{sub['url']}\n      {state}")


@click.command()
@click.argument("subscription_id", type=int)
def unsubscribe(subscription_id: int) -> None:
    """Remove a subscription and its events (delivered history stays)."""
    from daemon import calendars

    removed = calendars.unsubscribe(_app(), subscription_id)
    click.echo(f"unsubscribed {subscription_id}; {removed} event(s) removed")


@click.command()
@click.argument("subscription_ids", type=int, nargs=-1)
@json_option
def sync(subscription_ids: tuple[int, ...], as_json: bool) -> None:
    """Fetch calendar subscriptions now (all, or the given ids), even if not due yet."""
    from daemon import calendars

    app = _app()
    results = calendars.sync(app, app.clock.now(), list(subscription_ids) or None, force=True)
    if as_json:
        echo_json([r.view() for r in results])
        return
    if not results:
        click.echo("no subscriptions yet: chime subscribe URL")
    for r in results:
        detail = r.error or (r.outcome.summary() if r.outcome else
                             "not modified" if r.status == "unchanged" else "asked to wait")
        click.echo(f"{r.subscription_id:>4}  {r.status:<9}  {detail}")
        if r.outcome is not None:
            for problem in r.outcome.skipped:
                click.echo(f"      skipped {problem}", err=True)
    if any(r.status == "error" for r in results):
        sys.exit(1)
