"""Use cases behind the CLI: add, edit, remove, pause, list, show, log, preview, snooze, done.

Each validates everything first and then writes in one transaction, so bad input changes
nothing. Times going in and out are timezone-aware; JSON views use ISO 8601.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon import nag as nagging
from daemon.context.prompt import build_prompt
from daemon.errors import InputError
from daemon.generation.base import Request, seed_for
from daemon.outputs import base as outputs
from daemon.parts import Planned, Writing
from daemon.planning import Recurrence, Schedule, Workdays, alarm_of, next_occurrence, zone
from daemon.priority import LABELS as PRIORITY_LABELS
from daemon.priority import parse_priority
from daemon.recurrence import describe_every, parse_every
from daemon.store import repo
from daemon.store.models import Event, Occurrence
from daemon.timeparse import describe_when, format_duration, parse_duration, parse_when

MAX_TASK_CHARS = 200


def check_task(text: str) -> str:
    task = " ".join(text.split())
    if not task:
        raise InputError("the reminder text is empty")
    if len(task) > MAX_TASK_CHARS:
        raise InputError(f"the reminder text is {len(task)} characters; at most {MAX_TASK_CHARS}")
    return task


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown time zone {name!r} (use an IANA name like Asia/Shanghai)") from None
    return name


def check_lead(text: str) -> int:
    lead = parse_duration(text)
    if lead < timedelta(0) or lead > timedelta(days=7):
        raise InputError(f"lead time {text!r} must be between 0s and 7d")
    return int(lead.total_seconds())


def check_nag(text: str) -> int:
    """``5m`` → 300 seconds between repeats; ``none`` (or ``off``, ``0``) → 0, no nagging."""
    if text.strip().lower() in ("none", "off", "no", "0"):
        return 0
    every = parse_duration(text)
    if not timedelta(seconds=1) <= every <= timedelta(days=1):
        raise InputError(f"nag interval {text!r} must be between 1s and 1d (or 'none')")
    return int(every.total_seconds())


def check_nag_max(count: int) -> int:
    if not 1 <= count <= 100:
        raise InputError(f"--nag-max {count}: must be between 1 and 100")
    return count


def add(app: Planned, task: str, when: str, every: str | None = None, lead: str | None = None,
        tz: str | None = None, output: list[str] | None = None, nag: str | None = None,
        nag_max: int | None = None, priority: str | None = None) -> Event:
    """Create a reminder; a one-off must lie in the future."""
    fields = _fields(app, task=task, when=when, every=every, lead=lead, tz=tz, output=output)
    fields["nag_s"] = check_nag(nag) if nag is not None else None
    fields["nag_max"] = check_nag_max(nag_max) if nag_max is not None else None
    fields["priority"] = parse_priority(priority) if priority is not None else None
    _refuse_past(app, when, fields["dtstart"], fields["tz"], fields["rrule"],
                 fields["day_filter"])
    with app.db.session() as s:
        return repo.add_event(s, **fields, source="manual")


def _refuse_past(app: Planned, when: str, dtstart: str, tz: str, rrule: str | None,
                 day_filter: str | None) -> None:
    """InputError when the schedule has no time left (a one-off in the past): add and edit."""
    schedule = Recurrence(dtstart, tz, rrule, day_filter=day_filter)
    if next_occurrence(schedule, app.clock.now() - timedelta(seconds=1),
                       workdays=app.workdays) is None:
        raise InputError(f"{when!r} is in the past; give a future time")


def confirmation(view: dict[str, Any], now: datetime) -> str:
    """The line ``chime add`` prints so that a misreading is seen at once:
    ``#12 吃药 — 周二 12-01 00:00 (in 22 h 5 min)``, plus how it repeats."""
    nxt = datetime.fromisoformat(view["next"]) if view["next"] else None
    line = f"#{view['id']} {view['task']} — {describe_when(nxt, now) if nxt else 'no time left'}"
    return line if view["rule"] is None else f"{line}, repeats {view['every']}"


def resolve(app: Planned, when: str, every: str | None = None,
            tz: str | None = None) -> dict[str, Any]:
    """What ``--at``/``--every`` would mean now, without storing anything (the web's live
    preview): the start, the rule, the first time and its description; InputError if unread."""
    zone_name = check_zone(tz or app.settings.daemon.timezone)
    now = app.clock.now()
    start = parse_when(when, now, ZoneInfo(zone_name))
    repeat = parse_every(every) if every else None
    schedule = Recurrence(start.replace(tzinfo=None, microsecond=0).isoformat(), zone_name,
                          repeat.rrule if repeat else None,
                          day_filter=repeat.day_filter if repeat else None)
    first = next_occurrence(schedule, now - timedelta(seconds=1), workdays=app.workdays)
    local = first.astimezone(zone(zone_name)) if first else None
    return {
        "start": start.isoformat(),
        "rule": schedule.rrule,
        "day_filter": schedule.day_filter,
        "every": describe_every(schedule.rrule, schedule.day_filter),
        "next": local.isoformat() if local else None,
        "when": describe_when(local, now) if local else None,
    }


def edit(app: Planned, event_id: int, task: str | None = None, when: str | None = None,
         every: str | None = None, lead: str | None = None, tz: str | None = None,
         output: list[str] | None = None, nag: str | None = None, nag_max: int | None = None,
         priority: str | None = None) -> Event:
    """Change some fields of a reminder; ``every="none"`` makes it a one-off."""
    with app.db.session() as s:
        event = repo.get_event(s, event_id)
        zone_name = check_zone(tz) if tz else event.tz
        changes: dict[str, Any] = {}
        if task is not None:
            changes["task"] = check_task(task)
        if when is not None:
            local = parse_when(when, app.clock.now(), ZoneInfo(zone_name))
            changes["dtstart"] = local.replace(tzinfo=None).isoformat()
        if tz is not None:
            changes["tz"] = zone_name
        if every is not None:
            repeat = None if every.strip().lower() in ("none", "once", "") else parse_every(every)
            changes["rrule"] = repeat.rrule if repeat else None
            changes["day_filter"] = repeat.day_filter if repeat else None
        if lead is not None:
            changes["lead_s"] = check_lead(lead)
        if output is not None:
            outputs.check_names(output, InputError)
            changes["outputs"] = list(output) or None
        if nag is not None:
            changes["nag_s"] = check_nag(nag)
        if nag_max is not None:
            changes["nag_max"] = check_nag_max(nag_max)
        if priority is not None:
            changes["priority"] = parse_priority(priority)
        if not changes:
            raise InputError("nothing to change (give --text, --at, --every, --lead, --tz, "
                             "--output, --nag, --nag-max or --priority)")
        if when is not None or every is not None or tz is not None:
            _refuse_past(app, when or event.dtstart, changes.get("dtstart", event.dtstart),
                         changes.get("tz", event.tz), changes.get("rrule", event.rrule),
                         changes.get("day_filter", event.day_filter))
        if changes.get("nag_s") == 0:
            nagging.stop_event(s, event.id)
        return repo.update_event(s, event, **changes)


def remove(app: Planned, event_id: int) -> None:
    with app.db.session() as s:
        repo.remove_event(s, repo.get_event(s, event_id))


def set_paused(app: Planned, event_id: int, paused: bool) -> Event:
    with app.db.session() as s:
        event = repo.get_event(s, event_id)
        return repo.update_event(s, event, paused=paused)


def upcoming(app: Planned) -> list[dict[str, Any]]:
    """Every reminder with its next occurrence (None when it has none left)."""
    now = app.clock.now()
    with app.db.session() as s:
        events = repo.list_events(s)
        # the official calendar (holiday data) is loaded only when a reminder follows it
        workdays = app.workdays if any(e.day_filter for e in events) else None
        return [event_view(e, now, workdays) for e in events]


MAX_SHOWN = 1000


def show(app: Planned, event_id: int, count: int = 5, start: str | None = None) -> dict[str, Any]:
    """One reminder with ``count`` occurrences from ``start`` (a time phrase; default now): when
    each starts (``at``) and when it rings (``rings``: earlier with a calendar alarm); its
    recent history, and notes (a workdays rule in a year without an official calendar)."""
    if not 1 <= count <= MAX_SHOWN:
        raise InputError(f"count must be between 1 and {MAX_SHOWN}, not {count}")
    now = app.clock.now()
    with app.db.session() as s:
        event = repo.get_event(s, event_id)
        since = parse_when(start, now, zone(event.tz)) if start else now
        view = event_view(event, now, app.workdays)
        found = _occurrences_from(event, since, count, app.workdays)
        alarm = alarm_of(event.alarm_s)
        view["occurrences"] = [{"at": at.astimezone(zone(event.tz)).isoformat(),
                                "rings": (at - alarm).astimezone(zone(event.tz)).isoformat()}
                               for at in found]
        view["notes"] = _notes(event, since, found, app)
        history = repo.event_history(s, event.id, 10)
        view["history"] = [occurrence_view(o, event.tz) for o in history]
        return view


def _occurrences_from(schedule: Schedule, since: datetime, count: int,
                      workdays: Workdays) -> list[datetime]:
    found: list[datetime] = []
    after = since - timedelta(microseconds=1)
    while len(found) < count and (at := next_occurrence(schedule, after,
                                                       workdays=workdays)) is not None:
        found.append(at)
        after = at
    return found


def _notes(event: Event, since: datetime, found: list[datetime], app: Planned) -> list[str]:
    if event.day_filter is None:
        return []
    years = {at.astimezone(zone(event.tz)).year for at in found} or {since.year}
    note = app.workdays.fallback_note(years)
    return [note] if note else []


def log(app: Planned, limit: int = 20) -> list[dict[str, Any]]:
    """Occurrences, newest first."""
    with app.db.session() as s:
        tz_by_event = {e.id: e.tz for e in repo.list_events(s)}
        rows = repo.recent_occurrences(s, limit)
        return [occurrence_view(o, tz_by_event.get(o.event_id or -1, app.settings.daemon.timezone))
                for o in rows]


def preview(app: Writing, task: str, when: str, tz: str | None = None) -> dict[str, Any]:
    """Write the reminder text for ``task`` at ``when`` now; deliver nothing, store nothing."""
    task = check_task(task)
    zone_name = check_zone(tz or app.settings.daemon.timezone)
    at = parse_when(when, app.clock.now(), ZoneInfo(zone_name))
    app.context_source.refresh(app.clock.now())  # like `chime context`: fetch if due
    context = app.context_source.context_for(at)
    request = Request(key="preview", task=task, context=context, seed=seed_for(None, at))
    started = datetime.now(timezone.utc)
    draft = app.generator.generate([request])[0]
    assert draft is not None
    return {
        "task": task,
        "at": at.isoformat(),
        "message": draft.text,
        "generator": draft.generator,
        "raw_output": draft.raw_output,
        "rejected": draft.rejected,
        **draft.info,
        "fallback_reason": _fallback_reason(app, draft),
        "context": context.as_dict(),
        "prompt": build_prompt(context, task),
        "guard": _guard_view(app, started),
    }


def _fallback_reason(app: Planned, draft: Any) -> str | None:
    """Why the template wrote the text (None when the model did): the model's failure, else
    why the model is not used at all."""
    if draft.generator != "template":
        return None
    reason = draft.info.get("fallback_reason")
    if reason:
        return str(reason)
    from daemon.generation import supervisor

    why = supervisor.unavailable(app.settings)
    if why is None:
        return "the template was chosen"
    if not app.settings.model.enabled:
        return why
    return f"model not installed: run `chime model pull` ({why})"


def _guard_view(app: Planned, since: datetime) -> dict[str, Any]:
    """The guard decision this preview's generation got; when the model did not run, what the
    guard would decide now."""
    from daemon.generation.guards import DecisionLog, decision_dict
    from daemon.generation.supervisor import guard_for

    recent = DecisionLog(app.db).recent()
    if recent and datetime.fromisoformat(recent[0]["at"]) >= since.replace(microsecond=0):
        return recent[0]
    notes: list[str] = []  # a command shows what the machine lacks; it does not log it
    return {**decision_dict(guard_for(app.settings, notes=notes).peek()), "notes": notes}


def snooze(app: Planned, occurrence_id: int, delay: timedelta | None = None, by: str = "cli"
           ) -> int:
    """Remind again after ``delay``; returns the id of the occurrence that will come.

    A nagging reminder keeps nagging: its next repeat moves to ``delay`` from now. Otherwise a
    new occurrence repeats the reminder's words, and the reminder counts as acknowledged."""
    delay = delay if delay is not None else app.settings.desktop.snooze
    if delay <= timedelta(0):
        raise InputError("snooze duration must be positive")
    with app.db.session() as s:
        original = repo.get_occurrence(s, occurrence_id)
        at = (app.clock.now() + delay).replace(microsecond=0)
        moved = nagging.postpone(s, original, at, app.settings.daemon)
        if moved is not None:
            return moved.id
        original = nagging.root_of(s, original)
        # The repeat says the same words: it is already prepared with the original's text.
        repeat = Occurrence(event_id=original.event_id, task=original.task, scheduled_at=at,
                            status="prepared" if original.message else "pending",
                            message=original.message, generator=original.generator,
                            context=original.context, prepared_at=app.clock.now(),
                            snoozed_from=original.id, starts_at=original.starts_at)
        s.add(repeat)
        s.flush()
        nagging.acknowledge(s, original, by, app.clock.now())
        repo.bump_revision(s)
        return repeat.id


def done(app: Planned, occurrence_id: int, by: str = "cli") -> None:
    """Record that the person acknowledged the reminder (any repeat of it will do), from
    ``by``: cli, desktop, web or push; its nagging stops."""
    with app.db.session() as s:
        nagging.acknowledge(s, repo.get_occurrence(s, occurrence_id), by, app.clock.now())


class AppActions:
    """The Actions an output's buttons call (desktop: 完成 / 稍后提醒), acknowledging as ``by``."""

    def __init__(self, app: Planned, by: str = "desktop") -> None:
        self.app = app
        self.by = by

    def snooze(self, occurrence_id: int, delay: timedelta | None = None) -> int | None:
        return snooze(self.app, occurrence_id, delay, self.by)

    def done(self, occurrence_id: int) -> None:
        done(self.app, occurrence_id, self.by)


# --- views ------------------------------------------------------------------------------------

def event_view(event: Event, now: datetime, workdays: Workdays | None) -> dict[str, Any]:
    nxt = None if event.paused else next_occurrence(event, now, workdays=workdays)
    tz = zone(event.tz)
    local = nxt.astimezone(tz) if nxt else None  # in the event's zone, as the person reads it
    return {
        "id": event.id,
        "task": event.task,
        "start": datetime.fromisoformat(event.dtstart).replace(tzinfo=tz).isoformat(),
        "timezone": event.tz,
        "rule": event.rrule,
        "day_filter": event.day_filter,
        "every": describe_every(event.rrule, event.day_filter),
        "exdates": event.exdates,
        "lead": None if event.lead_s is None else format_duration(timedelta(seconds=event.lead_s)),
        "alarm": None if not event.alarm_s else format_duration(timedelta(seconds=event.alarm_s)),
        "outputs": event.outputs,
        "nag": None if event.nag_s is None else (
            format_duration(timedelta(seconds=event.nag_s)) if event.nag_s else "none"),
        "nag_max": event.nag_max,
        "priority": PRIORITY_LABELS[event.priority] if event.priority else None,
        "paused": event.paused,
        "source": event.source,
        "next": local.isoformat() if local else None,
    }


def occurrence_view(o: Occurrence, tz_name: str) -> dict[str, Any]:
    tz = zone(tz_name)

    def iso(t: datetime | None) -> str | None:
        return t.astimezone(tz).isoformat() if t else None

    return {
        "id": o.id,
        "event_id": o.event_id,
        "task": o.task,
        "scheduled_at": iso(o.scheduled_at),
        "starts_at": iso(o.starts_at),
        "status": o.status,
        "delivered_at": iso(o.delivered_at),
        "message": o.message,
        "generator": o.generator,
        "results": o.results,
        "error": o.error,
        "snoozed_from": o.snoozed_from,
        "repeat": o.repeat,
        "repeat_of": o.repeat_of,
        "acknowledged_at": iso(o.acknowledged_at),
        "acknowledged_by": o.acknowledged_by,
    }


# --- helpers ----------------------------------------------------------------------------------

def _fields(app: Planned, *, task: str, when: str, every: str | None, lead: str | None,
            tz: str | None, output: list[str] | None) -> dict[str, Any]:
    zone_name = check_zone(tz or app.settings.daemon.timezone)
    fields: dict[str, Any] = {"task": check_task(task), "tz": zone_name}
    local = parse_when(when, app.clock.now(), ZoneInfo(zone_name))
    fields["dtstart"] = local.replace(tzinfo=None, microsecond=0).isoformat()
    repeat = parse_every(every) if every else None
    fields["rrule"] = repeat.rrule if repeat else None
    fields["day_filter"] = repeat.day_filter if repeat else None
    fields["lead_s"] = check_lead(lead) if lead is not None else None
    if output:
        outputs.check_names(output, InputError)
    fields["outputs"] = list(output) if output else None
    fields["rdates"], fields["exdates"] = [], []
    return fields
