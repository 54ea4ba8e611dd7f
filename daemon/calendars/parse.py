"""iCalendar text → items, one per chime event; pure (no database, no network).

Each VEVENT (and each VTODO with a DUE) becomes one :class:`Item` in the shape of an Event row,
so that the spine's planner is the one place that expands recurrences:

* SUMMARY → the task; DTSTART → ``dtstart`` (naive wall time) and ``tz`` (IANA, see zones.py);
  a floating time is read in the calendar's X-WR-TIMEZONE, else the configured zone; a UTC time
  is stored in ``UTC``.
* An all-day DTSTART (a DATE) reminds at ``all_day_at`` in the configured zone on that day.
* RRULE is kept as text with UNTIL rewritten into the event's wall time (the planner expands in
  wall time); RDATE and EXDATE become wall times in the event's zone.
* A RECURRENCE-ID override becomes an EXDATE on its master plus a one-off item keyed
  ``UID#<recurrence-id>``; a cancelled override is the EXDATE alone. STATUS:CANCELLED on a
  master (or a COMPLETED VTODO) lists its UID in ``cancelled``.
* The first VALARM with a usable TRIGGER (``-PT15M``, RELATED=END, absolute) gives ``alarm_s``:
  the reminder rings that long before the start (an alarm after the start rings at it).
  DTEND − DTSTART (or DURATION) gives ``duration_s``, so an export keeps the event's length.

A file that is not iCalendar, or is cut short, raises InputError. A component that cannot be
read is skipped with a :class:`Problem` that names it (UID, SUMMARY) and says why. Components
are split and parsed one by one, so one garbled line costs only the event that holds it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from dateutil import rrule as du_rrule
from icalendar import Component, vRecur
from icalendar.cal.timezone import Timezone
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from daemon.calendars.split import Block, short, split_calendar
from daemon.calendars.zones import UnknownZone, Zone, ZoneResolver, iana
from daemon.errors import InputError
from daemon.planning import Recurrence, next_occurrence, to_instant, zone
from daemon.timeparse import parse_rule

MAX_TASK_CHARS = 200  # as for `chime add`
MAX_ALARM = timedelta(days=7)
FUTURE_SEARCH = timedelta(days=3700)  # a rule with no instance this far ahead is over
UTC = Zone("UTC", zone("UTC"))
OUT_OF_RANGE = "a date or time is out of range"
# Properties whose parse errors make the component unusable (others, like DESCRIPTION, do not).
ESSENTIAL = frozenset({"UID", "SUMMARY", "DTSTART", "DTEND", "DUE", "DURATION", "RRULE",
                       "RDATE", "EXDATE", "RECURRENCE-ID", "STATUS"})
# Properties RFC 5545 allows once: a repeated time makes the event ambiguous (skipped), a
# repeated text is read leniently (the first one counts).
ONCE_TIMES = ("DTSTART", "DTEND", "DUE", "DURATION", "RECURRENCE-ID")
ONCE_TEXTS = ("UID", "SUMMARY", "STATUS", "SEQUENCE", "X-MICROSOFT-CDO-ALLDAYEVENT")


@dataclass
class Item:
    """One future chime event, in the Event row's terms."""

    key: str  # UID, or UID#RECURRENCE-ID for an override
    task: str
    dtstart: str
    tz: str
    rrule: str | None = None
    rdates: list[str] = field(default_factory=list)
    exdates: list[str] = field(default_factory=list)
    alarm_s: int | None = None
    duration_s: int | None = None

    def fields(self) -> dict[str, Any]:
        return {"task": self.task, "dtstart": self.dtstart, "tz": self.tz, "rrule": self.rrule,
                "rdates": sorted(set(self.rdates)), "exdates": sorted(set(self.exdates)),
                "alarm_s": self.alarm_s or None, "duration_s": self.duration_s}


@dataclass(frozen=True)
class Problem:
    """A component that was skipped (or imported with a caveat), and why."""

    uid: str | None
    summary: str | None
    reason: str

    def __str__(self) -> str:
        name = repr(self.summary) if self.summary else "an event without SUMMARY"
        return f"{name} (UID {self.uid or '?'}): {self.reason}"


@dataclass
class Parsed:
    items: list[Item] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)  # keys the file explicitly removes
    skipped: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    past: int = 0  # components with no occurrence after ``now``, left out
    total: int = 0  # VEVENTs and dated VTODOs seen


@dataclass(frozen=True)
class Options:
    default_tz: str  # [daemon] timezone: all-day events and floating times
    all_day_at: time  # [calendars] all_day_at
    now: datetime


class _Skip(Exception):
    """This one component cannot become an event (the message says why)."""


# --- parsing -----------------------------------------------------------------------------------

def parse_calendar(text: str, options: Options) -> Parsed:
    """All items of a calendar file, with what was skipped and why (see the module doc)."""
    props, blocks = split_calendar(text)
    parsed = Parsed()
    wr_zone = props.get("X-WR-TIMEZONE", "")
    floating = iana(wr_zone) or iana(WINDOWS_TO_OLSON.get(wr_zone, "")) or options.default_tz
    vtimezones: dict[str, Timezone] = {}
    components: list[Component] = []
    for block in blocks:
        if block.name not in ("VEVENT", "VTODO", "VTIMEZONE"):
            continue
        comp = _component(block, parsed)
        if comp is None:
            continue
        if isinstance(comp, Timezone):
            vtimezones[str(comp.get("TZID", ""))] = comp
        elif comp.name == "VEVENT" or comp.get("DUE") is not None:
            parsed.total += 1
            components.append(comp)
    resolver = ZoneResolver(vtimezones, options.default_tz, options.now.year)
    reader = _Reader(resolver, options, floating)
    masters: dict[str, Component] = {}
    overrides: dict[str, list[Component]] = defaultdict(list)
    for comp in components:
        uid = _uid(comp)
        if comp.get("RECURRENCE-ID") is not None:
            overrides[uid].append(comp)
        elif uid not in masters or _newer(comp, masters[uid]):
            masters[uid] = comp
    found: dict[str, Item] = {}
    failed: set[str] = set()
    for uid, comp in masters.items():
        if _cancelled(comp):
            parsed.cancelled.add(uid)
            continue
        try:
            found[uid] = reader.item(comp, uid, parsed)
        except OverflowError:  # a year near 1 or 9999, moved by a zone or a rule
            parsed.skipped.append(_problem(comp, uid, OUT_OF_RANGE))
            failed.add(uid)
        except _Skip as exc:
            parsed.skipped.append(_problem(comp, uid, str(exc)))
            failed.add(uid)
    for uid, comps in overrides.items():
        for comp in comps:
            if uid in failed or uid in parsed.cancelled:
                if uid in failed:
                    parsed.skipped.append(_problem(comp, uid, "its series was skipped"))
                continue
            try:
                reader.override(comp, uid, found, parsed)
            except OverflowError:
                parsed.skipped.append(_problem(comp, uid, OUT_OF_RANGE))
            except _Skip as exc:
                parsed.skipped.append(_problem(comp, uid, str(exc)))
    for item in found.values():
        schedule = Recurrence(item.dtstart, item.tz, item.rrule, item.rdates, item.exdates)
        try:
            upcoming = next_occurrence(schedule, options.now, FUTURE_SEARCH)
        except OverflowError:  # so far ahead that the search runs past the year 9999
            parsed.skipped.append(Problem(item.key, item.task, OUT_OF_RANGE))
            continue
        if upcoming is None:
            parsed.past += 1
        else:
            parsed.items.append(item)
    return parsed


def _component(block: Block, parsed: Parsed) -> Component | None:
    """icalendar's reading of one block, or None (with a Problem) when it is unusable."""
    reason = block.broken
    comp = None
    if reason is None:
        try:
            comp = Component.from_ical(block.text())
        except Exception:  # icalendar raises ValueError, KeyError, TypeError… in its words
            reason = _unreadable(block)
    if comp is not None:
        errors = [f"{prop}: cannot read {short(block.raw(str(prop).upper()) or '')!r}"
                  for prop, _ in getattr(comp, "errors", []) if str(prop).upper() in ESSENTIAL]
        errors += _repeated(comp)
        if errors:
            reason = "; ".join(errors)
    if reason is None:
        return comp
    if block.name != "VTIMEZONE":
        parsed.total += 1
        parsed.skipped.append(Problem(block.raw("UID"), block.raw("SUMMARY"), reason))
    return None


def _unreadable(block: Block) -> str:
    """Why icalendar cannot read a block, in our words: the first line it cannot read."""
    for line in block.lines[1:]:
        head, _, value = line.partition(":")
        name = head.split(";")[0].strip().upper()
        if name in ("BEGIN", "END"):
            continue
        try:
            Component.from_ical(f"BEGIN:{block.name}\r\n{line}\r\nEND:{block.name}\r\n")
        except Exception:
            return f"{name}: cannot read {short(value)!r}"
    return "cannot be parsed"


def _repeated(comp: Component) -> list[str]:
    """Problems with properties that appear more than once; a repeated text keeps its first."""
    problems = []
    for name in (*ONCE_TIMES, *ONCE_TEXTS):
        values = comp.get(name)
        if isinstance(values, list):
            if name in ONCE_TIMES:
                problems.append(f"{name} appears {len(values)} times (one is allowed)")
            else:
                comp[name] = values[0]
    return problems


class _Reader:
    """Turns components into items in one file's context (zones, options)."""

    def __init__(self, resolver: ZoneResolver, options: Options, floating: str) -> None:
        self.resolver, self.options, self.floating = resolver, options, floating
        self.frames: dict[str, _Frame] = {}  # by key: to read an override's RECURRENCE-ID

    def item(self, comp: Component, key: str, parsed: Parsed,
             inherit_alarm: int | None = None, one_off: bool = False) -> Item:
        start_prop = "DUE" if comp.name == "VTODO" else "DTSTART"
        if comp.get(start_prop) is None:
            raise _Skip(f"has no {start_prop}")
        start = self.moment(comp[start_prop], start_prop)
        if _outlook_all_day(comp, start.value):
            start = _Moment(start.value.date(), None)  # type: ignore[union-attr]
        frame = self.frames[key] = self.frame(start)
        item = Item(key, _task(comp), frame.wall.isoformat(), frame.tz)
        if not start.zone_exact and comp.get("RRULE") is not None:
            parsed.notes.append(_problem(comp, key, "its time zone matches no IANA zone; "
                                         "its times are kept in UTC"))
        if comp.get("RRULE") is not None and not one_off:
            item.rrule = self.rule(comp, frame)
            if not _on_rule(item.rrule, frame.wall):  # RFC 5545: DTSTART is always an instance
                item.rdates.append(item.dtstart)
        if not one_off:
            for prop, target in (("RDATE", item.rdates), ("EXDATE", item.exdates)):
                for value in _values(comp.get(prop)):
                    target.append(frame.convert(self.moment(value, prop)).isoformat())
        alarm = _alarm(comp, frame)
        item.alarm_s = alarm if alarm is not None else inherit_alarm
        length = _duration(comp)  # an all-day event becomes a reminder at one time of day
        if length > timedelta(0) and not frame.all_day:
            item.duration_s = int(length.total_seconds())
        return item

    def override(self, comp: Component, uid: str, found: dict[str, Item],
                 parsed: Parsed) -> None:
        """A RECURRENCE-ID: an EXDATE on the master, plus a one-off unless cancelled."""
        rid = self.moment(comp["RECURRENCE-ID"], "RECURRENCE-ID")
        if isinstance(rid.value, datetime) and rid.zone is not None:
            label = rid.zone.instant(rid.value).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            label = rid.value.isoformat()
        key = f"{uid}#{label}"
        master = found.get(uid)
        if master is not None:
            master.exdates.append(self.frames[uid].convert(rid).isoformat())
        if _cancelled(comp):
            parsed.cancelled.add(key)
            return
        found[key] = self.item(comp, key, parsed, master.alarm_s if master else None,
                               one_off=True)

    def moment(self, prop: Any, name: str) -> _Moment:
        try:
            value = prop.dt
        except Exception as exc:
            raise _Skip(f"{name}: {short(exc)}") from exc
        if isinstance(value, tuple):  # RDATE;VALUE=PERIOD
            value = value[0]
        if isinstance(value, datetime):
            tzid = getattr(prop, "params", {}).get("TZID")
            wall = value.replace(tzinfo=None, microsecond=0)
            if tzid:
                try:
                    return _Moment(wall, self.resolver.resolve(tzid))
                except UnknownZone as exc:
                    raise _Skip(str(exc)) from exc
            if value.tzinfo is not None:
                utc = value.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
                return _Moment(utc, UTC)
            return _Moment(wall, None)
        if isinstance(value, date):
            return _Moment(value, None)
        raise _Skip(f"{name} is not a date or a time")

    def frame(self, start: _Moment) -> _Frame:
        """The event's zone and wall-clock start, from its DTSTART."""
        opts = self.options
        if not isinstance(start.value, datetime):
            return _Frame(opts.default_tz, datetime.combine(start.value, opts.all_day_at), True,
                          opts)
        if start.zone is None:
            return _Frame(self.floating, start.value, False, opts)
        if start.zone.exact:
            return _Frame(start.zone.name, start.value, False, opts)
        utc = start.zone.instant(start.value).replace(tzinfo=None)
        return _Frame("UTC", utc, False, opts)

    def rule(self, comp: Component, frame: _Frame) -> str:
        recur = comp["RRULE"]
        if isinstance(recur, list):
            recur = recur[0]  # several RRULEs are deprecated (RFC 5545); the first one counts
        copy = vRecur(recur)
        if copy.get("COUNT") and copy.get("UNTIL"):
            raise _Skip("RRULE has both COUNT and UNTIL (RFC 5545 allows one of them)")
        until = copy.get("UNTIL")
        if until:
            copy["UNTIL"] = [frame.until(until[0], self.resolver)]
        text = copy.to_ical().decode()
        try:
            rule = parse_rule(text)
            du_rrule.rrulestr(rule, dtstart=frame.wall, forceset=False)
        except InputError as exc:
            raise _Skip(str(exc).replace(repr(text), "RRULE")) from exc
        except (ValueError, TypeError) as exc:
            raise _Skip(f"invalid RRULE ({short(exc)})") from exc
        return rule


@dataclass(frozen=True)
class _Moment:
    value: date | datetime  # naive wall time (in ``zone``), or a DATE
    zone: Zone | None  # None: floating time or DATE

    @property
    def zone_exact(self) -> bool:
        return self.zone is None or self.zone.exact


@dataclass(frozen=True)
class _Frame:
    """An event's own time frame: its zone, its wall-clock start, all-day or not."""

    tz: str
    wall: datetime
    all_day: bool
    options: Options

    def convert(self, m: _Moment) -> datetime:
        """Another moment of the same component (EXDATE, RDATE…) as a wall time in this frame."""
        if not isinstance(m.value, datetime):
            at = self.options.all_day_at if self.all_day else self.wall.time()
            return datetime.combine(m.value, at)
        if self.all_day:  # a date-time on an all-day series: its own calendar day counts
            return datetime.combine(m.value.date(), self.options.all_day_at)
        if m.zone is None or (m.zone.name == self.tz and m.zone.exact):
            return m.value
        return m.zone.instant(m.value).astimezone(zone(self.tz)).replace(tzinfo=None)

    def until(self, value: date | datetime, resolver: ZoneResolver) -> datetime:
        """RRULE's UNTIL as a naive wall time in this frame (DATE: the end of that day)."""
        if isinstance(value, datetime) and value.tzinfo is not None:
            local = value.astimezone(zone(self.tz)).replace(tzinfo=None)
            return datetime.combine(local.date(), time(23, 59, 59)) if self.all_day else local
        if isinstance(value, datetime) and not self.all_day:
            return value
        day = value.date() if isinstance(value, datetime) else value
        return datetime.combine(day, time(23, 59, 59))


def _values(prop: Any) -> list[Any]:
    """The single values of an RDATE/EXDATE (a property may repeat and hold lists)."""
    if prop is None:
        return []
    props = prop if isinstance(prop, list) else [prop]
    return [dt for p in props for dt in getattr(p, "dts", [p])]


def _on_rule(rule: str, start: datetime) -> bool:
    first = du_rrule.rrulestr(rule, dtstart=start, forceset=False).after(start, inc=True)
    return first == start


def _alarm(comp: Component, frame: _Frame) -> int | None:
    """Seconds before the start that the first usable VALARM rings, or None."""
    for alarm in comp.subcomponents:
        if alarm.name != "VALARM" or str(alarm.get("ACTION", "")).upper() == "NONE":
            continue
        trigger = alarm.get("TRIGGER")
        try:
            value = trigger.dt
        except Exception:
            continue
        if isinstance(value, timedelta):
            if str(trigger.params.get("RELATED", "START")).upper() == "END":
                value += _duration(comp)
            before = -value
        elif isinstance(value, datetime) and value.tzinfo is not None and not frame.all_day:
            before = to_instant(frame.wall, zone(frame.tz)) - value
        else:
            continue
        return int(min(max(before, timedelta(0)), MAX_ALARM).total_seconds())
    return None


def _duration(comp: Component) -> timedelta:
    """DTEND − DTSTART (or DURATION); zero when unknown or unreadable."""
    duration: Any = comp.get("DURATION")
    end: Any = comp.get("DTEND") if comp.name == "VEVENT" else None
    start: Any = comp.get("DTSTART")
    try:
        value = duration.dt if duration is not None else end.dt - start.dt
    except Exception:  # no DTEND, broken values, a date minus a date-time
        return timedelta(0)
    return value if isinstance(value, timedelta) else timedelta(0)


def _task(comp: Component) -> str:
    task = " ".join(str(comp.get("SUMMARY", "")).split())
    if not task:
        raise _Skip("has no SUMMARY (nothing to remind of)")
    return task if len(task) <= MAX_TASK_CHARS else task[: MAX_TASK_CHARS - 1] + "…"


def _uid(comp: Component) -> str:
    uid = " ".join(str(comp.get("UID", "")).split())
    if uid:
        return uid
    props: list[Any] = [comp.get(p) for p in ("SUMMARY", "DTSTART", "DUE", "RRULE")]
    raw = "|".join(p.to_ical().decode() if p is not None else "" for p in props)
    return "chime-" + hashlib.sha1(raw.encode()).hexdigest()[:16]


def _newer(a: Component, b: Component) -> bool:
    """Of two masters with one UID (a broken export), the later SEQUENCE wins, else the last."""
    try:
        return int(a.get("SEQUENCE", 0)) >= int(b.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        return True


def _cancelled(comp: Component) -> bool:
    status = str(comp.get("STATUS", "")).upper()
    return status == "CANCELLED" or (
        comp.name == "VTODO" and (status == "COMPLETED" or comp.get("COMPLETED") is not None))


def _outlook_all_day(comp: Component, value: date | datetime) -> bool:
    flag = str(comp.get("X-MICROSOFT-CDO-ALLDAYEVENT", "")).upper() == "TRUE"
    return flag and isinstance(value, datetime) and value.time() == time(0)


def _problem(comp: Component, uid: str, reason: str) -> Problem:
    summary = " ".join(str(comp.get("SUMMARY", "")).split()) or None
    return Problem(uid, summary, reason)
