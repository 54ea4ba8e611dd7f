"""``chime context``: the weather, kind of day, part of day and exact prompt for an instant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from daemon.cli import echo_json, get_app
from daemon.errors import InputError

if TYPE_CHECKING:
    from daemon.app import App

DEFAULT_TASK = "喝水"


def context_report(app: App, when: str, tz: str | None = None, task: str = DEFAULT_TASK,
                   offline: bool = False) -> dict[str, Any]:
    """Refresh what is due (unless ``offline``), then the context and prompt for ``when``."""
    from daemon.context.prompt import build_prompt
    from daemon.timeparse import parse_when

    zone_name = tz or app.settings.daemon.timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown time zone {zone_name!r}") from exc
    now = app.clock.now()
    at = parse_when(when, now, zone)
    source = app.context_source
    refresh = getattr(source, "refresh", None)
    if refresh is not None and not offline:
        refresh(now)
    context = source.context_for(at)
    report = context.as_dict()
    report["location"] = app.settings.location.name or None
    report["task"] = task
    report["prompt"] = build_prompt(context, task)
    return report


@click.command("context")
@click.option("--at", "when", default="now", show_default=True,
              help="The instant: ISO 8601, 'tomorrow 8:00', '明天早上8点'…")
@click.option("--tz", help="IANA time zone for --at (default: the configured one).")
@click.option("--task", default=DEFAULT_TASK, show_default=True,
              help="The task to put into the prompt.")
@click.option("--offline", is_flag=True, help="Do not fetch anything; use the cache only.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def context_cmd(when: str, tz: str | None, task: str, offline: bool, as_json: bool) -> None:
    """Show the weather (live/cache/unknown), day, part of day and prompt for a time."""
    report = context_report(get_app(click.get_current_context()), when, tz, task, offline)
    if as_json:
        echo_json(report)
        return
    details = [report["weather_source"]]
    if report["temperature"] is not None:
        details.append(f"{report['temperature']:.0f}°C")
    if report["precipitation_probability"] is not None:
        details.append(f"降水概率 {report['precipitation_probability']:.0f}%")
    if report["weather_fetched_at"]:
        details.append(f"fetched {report['weather_fetched_at']}")
    click.echo(f"at:          {report['at']}")
    click.echo(f"weather:     {report['weather']} ({', '.join(details)})")
    click.echo(f"day:         {report['day']} ({report['day_kind']})")
    click.echo(f"part of day: {report['part_of_day']}")
    click.echo(f"prompt:      {report['prompt']}")
    for note in report["notes"]:
        click.echo(f"note:        {note}")
