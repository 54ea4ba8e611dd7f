"""APScheduler as the trigger engine; the events table stays the source of truth.

``Planner.replan()`` computes every slot (event, instant) inside the horizon and makes the job
set match: a *prepare* job at T − lead (in a one-thread executor, so model batches never
overlap) and a *deliver* job at T (in a small pool, so a slow output or a long generation never
delays another reminder). Jobs are cheap to throw away: they are rebuilt from the table at
start-up, on every change (the plan revision in ``meta``), and periodically.

Misfire policy, on purpose: APScheduler 3's default ``misfire_grace_time`` of 1 s would
silently drop a deliver job that starts late on a loaded board. Ours is the configured grace
window; ``coalesce`` is on (a job runs once however late). Beyond the grace window the periodic
catch-up records the slot as missed, so nothing disappears silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from daemon.delivery import Courier, Slot
from daemon.errors import StoreError
from daemon.parts import Planned
from daemon.planning import alarm_of, rings
from daemon.store import repo

log = logging.getLogger("daemon.scheduler")

RETRY_MAX_S = 30


def plan(app: Planned, now: datetime, earliest: datetime | None = None) -> list[Slot]:
    """Every undelivered slot in [now − grace, now + horizon): the rings of active events (at
    their start, or their calendar alarm before it) plus open rows (snoozed repeats), sorted
    by the time they ring. Slots just past stay in the plan so that a deliver job that is a
    little late on a busy board is not thrown away by a replan.
    ``earliest`` moves the start later (while the clock is not trusted: nothing late)."""
    start, end = now - app.settings.daemon.grace, now + app.settings.daemon.horizon
    if earliest is not None:
        start = max(start, earliest)
    default_lead = app.settings.daemon.lead
    slots: dict[tuple[int, datetime], Slot] = {}
    with app.db.session() as s:
        events = {e.id: e for e in repo.list_events(s, include_paused=False)}

        def add(event_id: int, at: datetime, starts_at: datetime | None) -> None:
            lead_s = events[event_id].lead_s
            lead = timedelta(seconds=lead_s) if lead_s is not None else default_lead
            slots.setdefault((event_id, at), Slot(event_id, at, at - lead, starts_at))

        for event in events.values():
            for at, starts_at in rings(event, alarm_of(event.alarm_s),
                                       max(start, event.updated_at), end, app.workdays):
                add(event.id, at, starts_at)
        for occ in repo.open_occurrences(s, end):
            if occ.event_id in events and occ.status != "delivering" and occ.scheduled_at >= start:
                add(occ.event_id, occ.scheduled_at, occ.starts_at)
        for key, occ in repo.find_occurrences(s, list(events), start, end).items():
            if occ.status not in repo.OPEN_STATUSES:
                slots.pop(key, None)
    return sorted(slots.values(), key=lambda sl: sl.at)


class Planner:
    """Keeps APScheduler's jobs equal to the plan."""

    def __init__(self, app: Planned, courier: Courier) -> None:
        self.app = app
        self.courier = courier
        self.scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={
                "default": ThreadPoolExecutor(4),
                "prepare": ThreadPoolExecutor(1),
                "maintenance": ThreadPoolExecutor(1),
                "heartbeat": ThreadPoolExecutor(1),
            },
            job_defaults={"coalesce": True, "max_instances": 1},  # each job sets its grace
        )
        self.slots: dict[str, Slot] = {}
        self.hold_before: datetime | None = None  # set while the clock is not trusted
        self._lock = threading.Lock()

    def start(self) -> None:
        self.scheduler.start()

    def every(self, interval: timedelta, func: Callable[[], None], job_id: str,
              executor: str = "maintenance") -> None:
        """Run ``func`` every ``interval`` in its own one-thread executor (first run now), so
        that a slow maintenance run (a hanging network) never delays the heartbeat."""
        self.scheduler.add_job(func, "interval", seconds=interval.total_seconds(), id=job_id,
                               executor=executor, next_run_time=datetime.now(timezone.utc),
                               replace_existing=True, misfire_grace_time=None)

    def replan(self, everything: bool = False) -> int:
        """Make the jobs match the plan from the table; returns the number of slots.
        ``everything``: schedule every job anew (after a reload: new lead, grace, zone)."""
        now = self.app.clock.now()
        earliest = max(now, self.hold_before) if self.hold_before is not None else None
        desired = {slot.key: slot for slot in plan(self.app, now, earliest)}
        with self._lock:
            for key in set(self.slots) - set(desired):
                for job_id in (f"prepare:{key}", f"deliver:{key}"):
                    if self.scheduler.get_job(job_id):
                        self.scheduler.remove_job(job_id)
            for key, slot in desired.items():
                if key in self.slots and not everything:
                    continue
                self.scheduler.add_job(
                    self._prepare, "date", run_date=max(slot.prepare_at, now), args=[slot],
                    id=f"prepare:{key}", executor="prepare", replace_existing=True,
                    misfire_grace_time=None,
                )
                self.scheduler.add_job(
                    self._deliver, "date", run_date=slot.at, args=[slot],
                    id=f"deliver:{key}", executor="default", replace_existing=True,
                    misfire_grace_time=max(int(self.app.settings.daemon.grace.total_seconds()), 1),
                )
            self.slots = desired
        log.debug("planned %d slot(s) within %s", len(desired), self.app.settings.daemon.horizon)
        return len(desired)

    def upcoming(self, count: int = 5) -> list[Slot]:
        now = self.app.clock.now()
        with self._lock:
            return sorted((s for s in self.slots.values() if s.at >= now),
                          key=lambda s: s.at)[:count]

    def _prepare(self, slot: Slot, attempt: int = 0) -> None:
        """Prepare this slot and every other one whose prepare time falls in the batch window."""
        now = self.app.clock.now()
        window = now + self.app.settings.model.batch_window
        with self._lock:
            batch = [s for s in self.slots.values()
                     if s.at > now and (s.prepare_at <= window or s.key == slot.key)]
        batch.sort(key=lambda s: s.at)
        try:
            self.courier.prepare(batch)
        except StoreError as exc:  # the disk refused: try again in seconds, not at the replan
            self.app.db.note_write_failure(exc)
            self._retry("prepare", self._prepare, slot, attempt)
        except Exception:  # delivery will write the template text itself
            log.exception("preparing %d reminder(s) failed", len(batch))

    def _deliver(self, slot: Slot, attempt: int = 0) -> None:
        try:
            self.courier.deliver(slot)
        except StoreError as exc:
            self.app.db.note_write_failure(exc)
            self._retry("deliver", self._deliver, slot, attempt)
        except Exception:
            log.exception("delivering %s failed; the catch-up will retry", slot.key)

    def _retry(self, kind: str, func: Callable[[Slot, int], None], slot: Slot,
               attempt: int) -> None:
        """Run ``func`` for ``slot`` again after 1, 2, 4 … 30 s, while that still makes sense:
        a prepare until the reminder's time, a delivery within the grace window (after it
        the catch-up records the slot as missed)."""
        at = self.app.clock.now() + timedelta(seconds=min(2 ** attempt, RETRY_MAX_S))
        if at >= slot.at + (self.app.settings.daemon.grace if kind == "deliver" else timedelta(0)):
            return
        log.debug("%s %s: retrying at %s", kind, slot.key, at)
        self.scheduler.add_job(func, "date", run_date=at, args=[slot, attempt + 1],
                               id=f"{kind}:{slot.key}", replace_existing=True,
                               executor="prepare" if kind == "prepare" else "default",
                               misfire_grace_time=None)

    def shutdown(self) -> None:
        """Stop taking new jobs and wait for running ones (an in-flight delivery finishes)."""
        self.scheduler.shutdown(wait=True)
