"""Nagging: a delivered reminder comes back every interval until someone acknowledges it.

Each repeat is its own occurrence row (``repeat`` = 1, 2, …; ``repeat_of`` = the first
delivery, the *root* of the chain). The next repeat is created, prepared with a short
follow-up text, in the same transaction that records the previous delivery as finished; from
then on the planner treats it like any reminder: claimed once, one result per output, resumed
after a crash, delivered late or recorded missed after downtime by the same grace rules. So a
``kill -9`` between repeats neither loses nor doubles one.

A chain ends when the root is acknowledged (``acknowledge``), when ``nag_max`` repeats have
been sent, when a repeat is missed, or when the event's next occurrence is delivered; the last
three record the root ``unacknowledged``. A snooze moves the next repeat (``postpone``). A
repeat that will not be sent is never deleted or moved but recorded ``cancelled``: a deliver
job planned for its instant then finds it final, instead of making a new reminder there.
Every function here works inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.config import DaemonSettings
from daemon.errors import InputError
from daemon.planning import EVERY_DAY, alarm_of, rings, zone
from daemon.store import repo
from daemon.store.models import Event, Occurrence

UNACKNOWLEDGED = "unacknowledged"
CANCELLED = "cancelled"  # a repeat that was due but will not be sent
ACKNOWLEDGERS = ("cli", "desktop", "web", "push")
FOLLOW_UP = "follow-up"  # the generator name of a repeat's text
_PUNCTUATION = "。！？!?.，, "


def interval(event: Event, conf: DaemonSettings) -> timedelta | None:
    """How often ``event`` nags; None when it does not."""
    seconds = event.nag_s if event.nag_s is not None else conf.nag.total_seconds()
    return timedelta(seconds=seconds) if seconds > 0 else None


def limit(event: Event, conf: DaemonSettings) -> int:
    """How many repeats ``event`` sends at most."""
    return event.nag_max if event.nag_max is not None else conf.nag_max


def follow_up(task: str, local_at: datetime) -> str:
    """The short text of a repeat: ``还没吃药吗？20:30 的提醒``."""
    return f"还没{task.rstrip(_PUNCTUATION)}吗？{local_at:%H:%M} 的提醒"


def root_of(s: Session, occ: Occurrence) -> Occurrence:
    """The first delivery of the chain ``occ`` belongs to (``occ`` itself for a reminder)."""
    return occ if occ.repeat_of is None else repo.get_occurrence(s, occ.repeat_of)


def after_delivery(s: Session, occ: Occurrence, now: datetime, conf: DaemonSettings) -> None:
    """Called where ``occ`` is recorded delivered: stop older chains of the event that this
    reminder supersedes, then create the next repeat, or record the chain unacknowledged
    when its repeats are spent."""
    event = s.get(Event, occ.event_id) if occ.event_id is not None else None
    if event is None:
        return
    if occ.repeat_of is None and occ.snoozed_from is None:
        _stop_older_chains(s, event.id, occ.scheduled_at)
    root = root_of(s, occ)
    every = interval(event, conf)
    if every is None or root.acknowledged_at is not None or root.status == UNACKNOWLEDGED:
        return
    if occ.repeat >= limit(event, conf) or _superseded(s, root):
        root.status = UNACKNOWLEDGED
        return
    at = max(now + every, root.snoozed_until or now)
    s.add(Occurrence(
        event_id=event.id, task=root.task, scheduled_at=_free_instant(s, event, at),
        status="prepared", generator=FOLLOW_UP, prepared_at=now, repeat=occ.repeat + 1,
        repeat_of=root.id,
        message=follow_up(root.task, (root.starts_at or root.scheduled_at).astimezone(
            zone(event.tz))),
    ))
    repo.bump_revision(s)


def after_missed(s: Session, occ: Occurrence) -> None:
    """A repeat that passed beyond the grace window ends its chain, unacknowledged."""
    if occ.repeat_of is None:
        return
    root = root_of(s, occ)
    if root.acknowledged_at is None:
        root.status = UNACKNOWLEDGED


def acknowledge(s: Session, occ: Occurrence, by: str, now: datetime) -> Occurrence:
    """Record that the person saw the reminder (from ``by``: cli, desktop, web, push) and stop
    its nagging; returns the chain's root. A second acknowledgement keeps the first."""
    if by not in ACKNOWLEDGERS:
        raise InputError(f"unknown acknowledger {by!r} (one of {', '.join(ACKNOWLEDGERS)})")
    root = root_of(s, occ)
    for row in (root, occ):
        if row.acknowledged_at is None:
            row.acknowledged_at, row.acknowledged_by = now, by
    _cancel_open_repeats(s, [root.id], f"acknowledged ({by})")
    return root


def postpone(s: Session, occ: Occurrence, until: datetime, conf: DaemonSettings
             ) -> Occurrence | None:
    """Snooze a nagging chain: no repeat before ``until``. Returns the moved repeat (or the
    root, while a delivery is in flight); None when the chain does not nag (any more)."""
    root = root_of(s, occ)
    event = s.get(Event, root.event_id) if root.event_id is not None else None
    if (event is None or interval(event, conf) is None or root.acknowledged_at is not None
            or root.status in (*repo.OPEN_STATUSES, UNACKNOWLEDGED, "missed")
            or _superseded(s, root)):
        return None
    root.snoozed_until = until
    upcoming = s.scalars(select(Occurrence).where(
        Occurrence.repeat_of == root.id, Occurrence.status.in_(repo.OPEN_STATUSES))).first()
    if upcoming is None:  # being delivered now: the next repeat will honour snoozed_until
        return root
    _cancel_open_repeats(s, [root.id], "snoozed")
    moved = Occurrence(
        event_id=event.id, task=upcoming.task, scheduled_at=_free_instant(s, event, until),
        status="prepared", message=upcoming.message, generator=upcoming.generator,
        prepared_at=upcoming.prepared_at, repeat=upcoming.repeat, repeat_of=root.id)
    s.add(moved)
    s.flush()
    return moved


def stop_event(s: Session, event_id: int) -> None:
    """Nagging was turned off for the event: its open repeats are cancelled."""
    roots = s.scalars(select(Occurrence.repeat_of).where(
        Occurrence.event_id == event_id, Occurrence.repeat_of.is_not(None),
        Occurrence.status.in_(repo.OPEN_STATUSES))).all()
    _cancel_open_repeats(s, [r for r in roots if r is not None], "nagging turned off")


def _stop_older_chains(s: Session, event_id: int, at: datetime) -> None:
    """The reminder of ``at`` is out: chains of earlier occurrences stop, unacknowledged."""
    nagging = s.scalars(select(Occurrence.repeat_of).where(
        Occurrence.event_id == event_id, Occurrence.repeat_of.is_not(None),
        Occurrence.status.in_(repo.OPEN_STATUSES))).all()
    roots = [root for root in (s.get(Occurrence, i) for i in set(nagging))
             if root is not None and root.scheduled_at < at]
    for root in roots:
        if root.acknowledged_at is None:
            root.status = UNACKNOWLEDGED
    _cancel_open_repeats(s, [r.id for r in roots], "the next occurrence came")


def _superseded(s: Session, root: Occurrence) -> bool:
    """Has a later occurrence of the same event been delivered (or missed) since?"""
    newer = s.scalars(select(Occurrence.id).where(
        Occurrence.event_id == root.event_id, Occurrence.repeat_of.is_(None),
        Occurrence.snoozed_from.is_(None), Occurrence.scheduled_at > root.scheduled_at,
        Occurrence.status.not_in(repo.OPEN_STATUSES),
    )).first()
    return newer is not None


def _cancel_open_repeats(s: Session, root_ids: list[int], why: str) -> None:
    if not root_ids:
        return
    result = s.execute(update(Occurrence).where(
        Occurrence.repeat_of.in_(root_ids), Occurrence.status.in_(repo.OPEN_STATUSES),
    ).values(status=CANCELLED, error=f"not sent: {why}"))
    if result.rowcount:  # type: ignore[attr-defined]
        repo.bump_revision(s)


def _free_instant(s: Session, event: Event, at: datetime) -> datetime:
    """The first whole second from ``at`` on that no other row of the event holds and at
    which the event does not ring itself (the table is unique on event + instant)."""
    at = at.replace(microsecond=0) + (timedelta(seconds=1) if at.microsecond else timedelta(0))
    while True:
        taken = s.scalars(select(Occurrence.id).where(
            Occurrence.event_id == event.id, Occurrence.scheduled_at == at)).first()
        # a superset of the event's own rings is enough here: every day counts as a workday
        own = rings(event, alarm_of(event.alarm_s), at, at + timedelta(seconds=1), EVERY_DAY)
        if taken is None and not own:
            return at
        at += timedelta(seconds=1)
