"""Commands for reminders: add, list, show, edit, remove, pause, resume, log, preview,
snooze, done, status, run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from daemon.cli import echo_json, get_app

if TYPE_CHECKING:
    from daemon.app import App


def _app() -> App:
    return get_app(click.get_current_context())


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
nag_option = click.option(
    "--nag", help="Repeat every INTERVAL until acknowledged (5m), or 'none' "
                  "(default: [daemon] nag).")
nag_max_option = click.option("--nag-max", type=int,
                              help="At most this many repeats (default: [daemon] nag_max).")
priority_option = click.option(
    "--priority", help="min, low, default, high, max or 1-5 (phone push; repeats raise it).")


@click.command()
@click.argument("text")
@click.option("--at", "when", required=True,
              help="When: '明天晚上12点', '下周三 14:00', '一个半小时后', 'tomorrow at noon', "
                   "'next friday 8pm', ISO 8601…")
@click.option("--every",
              help="Repeat: 每天, 每周一三五, 每两周, 每月15号, workdays (official working "
                   "days), weekdays, 'every monday', 'every 2 weeks' or an RRULE.")
@click.option("--lead", help="Prepare the text this long before (90s, 10m, 1h30m).")
@click.option("--tz", help="IANA time zone of the event (default: the configured one).")
@click.option("--output", multiple=True, help="Deliver through this output (repeatable).")
@nag_option
@nag_max_option
@priority_option
@json_option
def add(text: str, when: str, every: str | None, lead: str | None, tz: str | None,
        output: tuple[str, ...], nag: str | None, nag_max: int | None,
        priority: str | None, as_json: bool) -> None:
    """Add a reminder and confirm when it rings: `#12 吃药 — 周二 12-01 00:00 (in 22 h 5 min)`
    (--json: the reminder, with its id)."""
    from daemon import reminders

    app = _app()
    event = reminders.add(app, text, when, every, lead, tz, list(output) or None, nag=nag,
                          nag_max=nag_max, priority=priority)
    view = reminders.event_view(event, app.clock.now(), app.workdays)
    if as_json:
        echo_json(view)
    else:
        click.echo(reminders.confirmation(view, app.clock.now()))


@click.command(name="list")
@json_option
def list_(as_json: bool) -> None:
    """List reminders with their next occurrence."""
    from daemon import reminders

    items = reminders.upcoming(_app())
    if as_json:
        echo_json(items)
        return
    if not items:
        click.echo("no reminders yet: chime add TEXT --at WHEN")
    for e in items:
        nxt = "paused" if e["paused"] else (e["next"] or "done")
        click.echo(f"{e['id']:>4}  {nxt:<25}  {e['every']:<22}  {e['task']}")


@click.command()
@click.argument("event_id", type=int)
@click.option("--from", "start", help="List the occurrences from this date or time "
                                      "(default: now), e.g. 2026-09-28.")
@click.option("--count", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="How many occurrences.")
@json_option
def show(event_id: int, start: str | None, count: int, as_json: bool) -> None:
    """Show one reminder, its occurrences and its history."""
    from daemon import reminders

    view = reminders.show(_app(), event_id, count, start)
    if as_json:
        echo_json(view)
        return
    for key in ("id", "task", "start", "timezone", "every", "lead", "alarm", "outputs", "nag",
                "nag_max", "priority", "paused", "source"):
        click.echo(f"{key:>9}: {view[key]}")
    nexts = [o["at"] if o["rings"] == o["at"] else f"{o['at']} (reminder {o['rings']})"
             for o in view["occurrences"]]  # a calendar alarm rings before the start
    click.echo("     next: " + (", ".join(nexts) or "none"))
    for note in view["notes"]:
        click.echo(f"     note: {note}")
    for h in view["history"]:
        click.echo(f"  {h['scheduled_at']}  {h['status']:<9}  {h['message'] or ''}")


@click.command()
@click.argument("event_id", type=int)
@click.option("--text", help="New reminder text.")
@click.option("--at", "when", help="New start time.")
@click.option("--every", help="New recurrence ('none' for a one-off).")
@click.option("--lead", help="New lead time.")
@click.option("--tz", help="New time zone.")
@click.option("--output", multiple=True, help="New outputs (repeatable).")
@nag_option
@nag_max_option
@priority_option
def edit(event_id: int, text: str | None, when: str | None, every: str | None, lead: str | None,
         tz: str | None, output: tuple[str, ...], nag: str | None, nag_max: int | None,
         priority: str | None) -> None:
    """Change a reminder ('--nag none' stops its nagging)."""
    from daemon import reminders

    reminders.edit(_app(), event_id, text, when, every, lead, tz, list(output) if output else None,
                   nag=nag, nag_max=nag_max, priority=priority)
    click.echo(f"updated {event_id}")


@click.command()
@click.argument("event_id", type=int)
def remove(event_id: int) -> None:
    """Remove a reminder (its delivered history stays in the log)."""
    from daemon import reminders

    reminders.remove(_app(), event_id)
    click.echo(f"removed {event_id}")


@click.command()
@click.argument("event_id", type=int)
def pause(event_id: int) -> None:
    """Pause a reminder: nothing is delivered until it is resumed."""
    from daemon import reminders

    reminders.set_paused(_app(), event_id, True)
    click.echo(f"paused {event_id}")


@click.command()
@click.argument("event_id", type=int)
def resume(event_id: int) -> None:
    """Resume a paused reminder."""
    from daemon import reminders

    reminders.set_paused(_app(), event_id, False)
    click.echo(f"resumed {event_id}")


@click.command(name="log")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="How many occurrences.")
@json_option
def log_(limit: int, as_json: bool) -> None:
    """Show delivered, late, missed, failed and unacknowledged reminders and their nag
    repeats, newest first."""
    from daemon import reminders

    rows = reminders.log(_app(), limit)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        repeat = f"  (repeat {r['repeat']} of {r['repeat_of']})" if r["repeat"] else ""
        ack = f"  [done by {r['acknowledged_by']}]" if r["acknowledged_by"] else ""
        click.echo(f"{r['id']:>5}  {r['scheduled_at']}  {r['status']:<9}  {r['task']}"
                   f"{'  — ' + r['message'] if r['message'] else ''}{repeat}{ack}")


@click.command()
@click.argument("text")
@click.option("--at", "when", default="now", show_default=True, help="When the reminder is for.")
@click.option("--tz", help="IANA time zone (default: the configured one).")
@json_option
def preview(text: str, when: str, tz: str | None, as_json: bool) -> None:
    """Write the reminder text now, without storing or delivering anything."""
    from daemon import reminders

    result = reminders.preview(_app(), text, when, tz)
    if as_json:
        echo_json(result)
        return
    click.echo(result["message"])
    click.echo(f"({result['generator']}; {result['prompt']})", err=True)


@click.command()
@click.argument("occurrence_id", type=int)
@click.argument("duration", required=False)
def snooze(occurrence_id: int, duration: str | None) -> None:
    """Remind again after DURATION (default: [desktop] snooze) — ID from `chime log`.

    A nagging reminder's next repeat moves instead."""
    from daemon import reminders
    from daemon.timeparse import parse_duration

    delay = parse_duration(duration) if duration else None
    new_id = reminders.snooze(_app(), occurrence_id, delay)
    click.echo(new_id)


@click.command()
@click.argument("occurrence_id", type=int)
def done(occurrence_id: int) -> None:
    """Mark a delivered reminder as done (stops its nagging) — ID from `chime log`."""
    from daemon import reminders

    reminders.done(_app(), occurrence_id, by="cli")
    click.echo(f"done {occurrence_id}")


@click.command()
@json_option
def status(as_json: bool) -> None:
    """Is the daemon running, and what comes next (the web's status page shows the same)."""
    from daemon.status import overview

    data: dict[str, Any] = overview(_app())
    running, nexts, guard = data["running"], data["next"], data["guard"]
    if as_json:
        echo_json(data)
    else:
        state = f"running (pid {data['pid']})" if running else "not running"
        click.echo(f"daemon: {state}; last heartbeat {data['heartbeat'] or 'never'}")
        click.echo(f"database: {data['database']}")
        if data["clock"] == "waiting":
            click.echo("clock: waiting for the system clock to be synchronised; until then no "
                       "reminder is delivered late or recorded as missed")
        for n in nexts:
            click.echo(f"  next: {n['at']}  {n['task']}")
        hottest = guard["readings"].get("hottest")
        click.echo(f"guard ({guard['sensor']}): {'ok' if guard['now']['ok'] else 'refusing'}"
                   f"{' — ' + guard['now']['reason'] if guard['now']['reason'] else ''}"
                   f"{f'; hottest {hottest}' if hottest else ''}")
        for d in guard["decisions"][:3]:
            click.echo(f"  {d['at']}  {d['decision']}  {d['reason']}")
        for note in guard["notes"]:
            click.echo(f"  note: {note}")
        click.echo(f"model: {'usable' if data['model']['usable'] else data['model']['reason']}")
        fetched = data["weather"]["fetched_at"]
        click.echo(f"weather: {'fetched ' + fetched if fetched else 'no forecast cached'}")
    if not running:
        sys.exit(3)


@click.command()
def run() -> None:
    """Run the daemon in the foreground (logs to stderr; SIGTERM stops, SIGHUP reloads)."""
    import logging

    from daemon.service import Service

    lazy = click.get_current_context().find_root().obj
    app = _app()
    root = logging.getLogger()
    root.setLevel(app.settings.daemon.log_level.upper())
    service = Service(app.settings, lazy.config, lazy.db)
    sys.exit(service.run())
