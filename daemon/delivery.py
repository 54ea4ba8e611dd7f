"""Preparing and delivering occurrences, exactly once.

The life of an occurrence row (unique on event + instant):

``pending`` → (prepare: text written) ``prepared`` → (deliver: claimed) ``delivering`` →
``delivered`` | ``late`` | ``failed``; or ``missed`` when its time passed beyond the grace
window while the daemon was down.

Exactly once: delivery starts by atomically moving the row from pending/prepared to
``delivering`` (only one claimer wins), then each output's result is committed as soon as that
output returns. After a crash, a row left in ``delivering`` is resumed at start-up by sending
only to the outputs that have no recorded result. The one window that cannot be closed is
between an output accepting the reminder and its result being committed (a few milliseconds):
a crash exactly there repeats that one output.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import update

from daemon import nag
from daemon.context import Context
from daemon.context.source import LocalContext
from daemon.errors import ChimeError, StoreError
from daemon.generation.base import Draft, Request, seed_for
from daemon.generation.template import TemplateGenerator, start_note
from daemon.outputs.base import Actions, Output, Reminder
from daemon.parts import Delivering
from daemon.planning import alarm_of, rings, zone
from daemon.store import repo
from daemon.store.models import Event, Occurrence

log = logging.getLogger("daemon.delivery")

_INSTANT = timedelta(microseconds=1)
WRITE_ATTEMPTS = 4  # writing prepared texts: 0.25 + 0.5 + 1 s of retries before giving up


@dataclass(frozen=True)
class Slot:
    """One planned occurrence: the event and the instant it rings (aware UTC); ``starts_at``
    is when the event starts, when a calendar alarm rings before it."""

    event_id: int
    at: datetime
    prepare_at: datetime
    starts_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.event_id}@{int(self.at.timestamp())}"


@dataclass
class _Claim:
    """What one delivery sends, and what it has sent so far (outputs → results)."""

    occ_id: int | None  # None: the row could not even be created (full disk)
    task: str
    tz: str
    names: list[str]
    message: str | None = None
    generator: str | None = None
    context: dict[str, Any] | None = None
    repeat: int = 0
    priority: int | None = None
    note: str = ""  # when a calendar alarm rings before the event: when it starts
    results: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, event: Event, occ: Occurrence | None, outputs: list[str], slot: Slot) -> _Claim:
        claim = cls(None, event.task, event.tz, list(event.outputs or outputs),
                    priority=event.priority)
        if occ is not None:
            claim.occ_id, claim.task, claim.message = occ.id, occ.task, occ.message
            claim.generator, claim.context, claim.repeat = occ.generator, occ.context, occ.repeat
            claim.results = dict(occ.results or {})
            claim.note = _start_note(occ, event.tz)
        elif slot.starts_at is not None and slot.starts_at != slot.at:
            claim.note = start_note(slot.at, slot.starts_at.astimezone(zone(event.tz)))
        return claim


class Courier:
    """Prepares texts before their time and delivers them to the outputs at their time."""

    def __init__(self, app: Delivering, actions: Actions | None = None) -> None:
        self.app = app
        self.actions = actions
        self._outputs: dict[str, Output] = {}
        self._lock = threading.Lock()
        self._busy: set[tuple[int, datetime]] = set()  # (event, instant) being delivered now
        self._kept: dict[tuple[int, datetime], Callable[[], None]] = {}  # sent, not recorded

    # --- prepare --------------------------------------------------------------------------

    def prepare(self, slots: Sequence[Slot]) -> int:
        """Write the text of every pending slot; returns how many were prepared."""
        rows: list[tuple[Slot, int, str, str, str]] = []  # slot, occurrence, task, zone, note
        with self.app.db.session() as s:
            for slot in slots:
                event = s.get(Event, slot.event_id)
                if event is None or event.paused:
                    continue
                occ = repo.ensure_occurrence(s, event, slot.at, slot.starts_at)
                if occ.status != "pending" or occ.message:
                    continue
                rows.append((slot, occ.id, occ.task, event.tz, _start_note(occ, event.tz)))
        # The contexts are made after the commit: the write lock must not wait for them.
        todo: list[tuple[int, Request, str]] = [  # occurrence, request, note on the start
            (occ_id, Request(str(occ_id), task, self.context(slot.at.astimezone(zone(tz))),
                             seed_for(slot.event_id, slot.at)), note)
            for slot, occ_id, task, tz, note in rows]
        if not todo:
            return 0
        started = datetime.now(timezone.utc)
        drafts = self.app.generator.generate([r for _, r, _ in todo])
        log.info("prepared %d reminder(s) with %s in %.1fs", len(todo),
                 self.app.generator.name, (datetime.now(timezone.utc) - started).total_seconds())
        now = self.app.clock.now()
        for attempt in range(WRITE_ATTEMPTS):  # the drafts cost a model run: keep them
            try:
                with self.app.db.session() as s:
                    for (occ_id, request, note), draft in zip(todo, drafts, strict=True):
                        assert draft is not None
                        s.execute(
                            update(Occurrence)
                            .where(Occurrence.id == occ_id, Occurrence.status == "pending")
                            .values(status="prepared", message=draft.text + note,
                                    generator=draft.generator, prepared_at=now,
                                    context=_context_record(request.context, draft))
                        )
                return len(todo)
            except StoreError as exc:
                self.app.db.note_write_failure(exc)
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.25 * 2 ** attempt)
        return 0  # pragma: no cover (the loop returns or raises)

    def context(self, local_at: datetime) -> Context:
        """The context for a local instant; never raises."""
        try:
            return self.app.context_source.context_for(local_at)
        except Exception:  # a broken context source must not cost the reminder
            log.exception("context source failed; using local facts only")
            return LocalContext(self.app.settings).context_for(local_at)

    # --- deliver --------------------------------------------------------------------------

    def deliver(self, slot: Slot, *, resume: bool = False, late: bool = False) -> str | None:
        """Deliver one slot if nobody has; returns its final status, or None if not ours.

        ``late`` marks a delivery after downtime; otherwise it is late when it happens more
        than ``[daemon] late_after`` after its time. ``resume`` continues a row that a crash
        left in ``delivering``. When the database cannot be written (full disk, failing
        card), the reminder is still sent and its record kept in memory until ``record_kept``
        can write it: a delivery this process made is never sent again."""
        key = (slot.event_id, slot.at)
        with self._lock:
            if key in self._busy:
                return None
            self._busy.add(key)
        try:
            return self._deliver(slot, resume, late)
        finally:
            with self._lock:
                if key not in self._kept:
                    self._busy.discard(key)

    def _deliver(self, slot: Slot, resume: bool, late: bool) -> str | None:
        try:
            claim = self._claim(slot, resume)
        except StoreError as exc:  # not claimed in the table: ours alone within this process
            self.app.db.note_write_failure(exc)
            claim = self._unclaimed(slot, resume)
        if claim is None:
            return None
        if not claim.message:
            local = slot.at.astimezone(zone(claim.tz))
            context = self.context(local)
            draft = TemplateGenerator().generate(
                [Request(str(claim.occ_id), claim.task, context,
                         seed_for(slot.event_id, slot.at))])[0]
            claim.message, claim.generator = draft.text + claim.note, draft.generator
            claim.context = _context_record(context, draft)
        late = late or self.app.clock.now() - slot.at > self.app.settings.daemon.late_after
        reminder = Reminder(claim.occ_id, claim.task, claim.message,
                            slot.at.astimezone(zone(claim.tz)), late,
                            repeat=claim.repeat, priority=claim.priority)
        todo = [n for n in claim.names if n not in claim.results]  # sent before a crash: once
        for i, name in enumerate(todo):
            claim.results[name] = self._send(name, reminder)
            if claim.occ_id is not None and i < len(todo) - 1:  # the last goes with the status
                try:
                    with self.app.db.session() as s:
                        repo.get_occurrence(s, claim.occ_id).results = dict(claim.results)
                except StoreError as exc:  # kept in memory; written with the final status
                    self.app.db.note_write_failure(exc)
        return self._finish(slot, claim, late)

    def _claim(self, slot: Slot, resume: bool) -> _Claim | None:
        """Move the row to ``delivering`` (only one claimer wins); None if not ours."""
        with self.app.db.session() as s:
            event = s.get(Event, slot.event_id)
            if event is None or event.paused:
                return None
            occ = repo.ensure_occurrence(s, event, slot.at, slot.starts_at)
            if not repo.claim(s, occ.id) and not (resume and occ.status == "delivering"):
                return None
            return _Claim.of(event, occ, self.app.settings.daemon.outputs, slot)

    def _unclaimed(self, slot: Slot, resume: bool) -> _Claim | None:
        """What to send when the claim could not be written: read only; None if not ours."""
        with self.app.db.session() as s:
            event = s.get(Event, slot.event_id)
            if event is None or event.paused:
                return None
            occ = repo.find_occurrences(s, [event.id], slot.at, slot.at + _INSTANT).get(
                (event.id, slot.at))
            if occ is not None and occ.status not in (
                    *repo.OPEN_STATUSES, *(("delivering",) if resume else ())):
                return None
            return _Claim.of(event, occ, self.app.settings.daemon.outputs, slot)

    def _send(self, name: str, reminder: Reminder) -> dict[str, Any]:
        started = datetime.now(timezone.utc)
        try:
            detail = self.output(name).send(reminder)
            result: dict[str, Any] = {"ok": True, "detail": detail}
        except ChimeError as exc:
            log.warning("output %s failed for %r: %s", name, reminder.task, exc)
            result = {"ok": False, "error": str(exc)}
        except Exception as exc:  # an output's bug must not stop the other outputs
            log.exception("output %s crashed", name)
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result["at"] = started.isoformat()
        return result

    def _finish(self, slot: Slot, claim: _Claim, late: bool) -> str:
        now = self.app.clock.now()
        failures = [f"{n}: {r['error']}" for n, r in claim.results.items() if not r["ok"]]
        if claim.results and len(failures) == len(claim.results):
            status = "failed"
        else:
            status = "late" if late else "delivered"
        record = functools.partial(self._record, slot, claim, status, now,
                                   "; ".join(failures) or None)
        try:
            record()
        except StoreError as exc:
            self.app.db.note_write_failure(exc)
            with self._lock:
                self._kept[(slot.event_id, slot.at)] = record
            log.warning("%s %s, not yet recorded (kept in memory)", slot.key, status)
            return status
        log.info("occurrence %s %s (%s)", claim.occ_id or slot.key, status,
                 ", ".join(claim.results) or "no outputs")
        return status

    def _record(self, slot: Slot, claim: _Claim, status: str, at: datetime,
                error: str | None) -> None:
        """Write a delivery's outcome: text, per-output results, final status, next repeat."""
        with self.app.db.session() as s:
            event = s.get(Event, slot.event_id)
            if event is None:  # removed meanwhile: nothing left to record against
                return
            occ = repo.ensure_occurrence(s, event, slot.at, slot.starts_at)
            if occ.status not in (*repo.OPEN_STATUSES, "delivering"):
                return
            if not occ.message:
                occ.message, occ.generator, occ.context = (claim.message, claim.generator,
                                                           claim.context)
            occ.results = dict(claim.results)
            occ.status, occ.delivered_at, occ.error = status, at, error
            nag.after_delivery(s, occ, at, self.app.settings.daemon)

    def record_kept(self) -> int:
        """Write the deliveries kept in memory while the database refused writes; returns how
        many are still waiting."""
        with self._lock:
            kept = list(self._kept.items())
        done = 0
        for key, record in kept:
            try:
                record()
            except StoreError as exc:
                self.app.db.note_write_failure(exc)
                break
            with self._lock:
                del self._kept[key]
                self._busy.discard(key)
            done += 1
        if done:
            self.app.db.note_write_ok()
            log.warning("recorded %d delivery(ies) made while the database could not be "
                        "written", done)
        return len(kept) - done

    def output(self, name: str) -> Output:
        """The output called ``name``, built on first use and kept."""
        with self._lock:
            if name not in self._outputs:
                self._outputs[name] = self.app.outputs([name], self.actions)[name]
            return self._outputs[name]

    # --- downtime -------------------------------------------------------------------------

    def catch_up(self, since: datetime, until: datetime, *, startup: bool) -> dict[str, int]:
        """Handle slots in [since, until) that were never delivered.

        Within the grace window they are delivered now (marked late); beyond it they are
        recorded as missed. With ``startup``, rows interrupted mid-delivery (left in
        ``delivering`` and not being delivered by this process) are resumed.
        """
        now = self.app.clock.now()
        grace = self.app.settings.daemon.grace
        counts = {"late": 0, "missed": 0}
        # (event, instant it rings) → (resume?, when the event starts)
        todo: dict[tuple[int, datetime], tuple[bool, datetime | None]] = {}
        with self.app.db.session() as s:
            events = {e.id: e for e in repo.list_events(s, include_paused=False)}
            for event in events.values():
                start = max(since, event.updated_at)
                for at, starts in rings(event, alarm_of(event.alarm_s), start, until,
                                         self.app.workdays):
                    todo[(event.id, at)] = (False, starts)
            statuses = ("pending", "prepared", "delivering") if startup else ("pending", "prepared")
            for occ in repo.open_occurrences(s, until):
                if occ.event_id in events and occ.status in statuses:
                    todo[(occ.event_id, occ.scheduled_at)] = (occ.status == "delivering",
                                                              occ.starts_at)
            done = repo.find_occurrences(s, list(events), since, until) if todo else {}
        for (event_id, at), (resume, starts_at) in sorted(todo.items(), key=lambda kv: kv[0][1]):
            row = done.get((event_id, at))
            if row is not None and row.status not in ("pending", "prepared", "delivering"):
                continue
            with self._lock:
                if (event_id, at) in self._busy:
                    continue
            slot = Slot(event_id, at, at, starts_at)
            if now - at <= grace:
                if self.deliver(slot, resume=resume, late=True):
                    counts["late"] += 1
            elif self.mark_missed(slot):
                counts["missed"] += 1
        if any(counts.values()):
            log.warning("after downtime: %d delivered late, %d missed", counts["late"],
                        counts["missed"])
        return counts

    def mark_missed(self, slot: Slot) -> bool:
        """Record a slot as missed (no notification); False if it was already final."""
        with self.app.db.session() as s:
            event = s.get(Event, slot.event_id)
            if event is None:
                return False
            occ = repo.ensure_occurrence(s, event, slot.at, slot.starts_at)
            if occ.status not in ("pending", "prepared", "delivering"):
                return False
            reached = any(r.get("ok") for r in (occ.results or {}).values())
            if occ.status == "delivering" and reached:
                occ.status = "delivered"  # it did reach someone before the crash
            else:
                occ.status = "missed"
                occ.error = "chime was not running at the time (beyond the grace window)"
            nag.after_missed(s, occ)
            return True

    def rebind(self, app: Delivering) -> None:
        """Work with ``app`` (a reloaded configuration) from now on. An output whose settings
        did not change is kept, so the buttons of notifications it showed keep working; the
        others are closed and built anew on their next use."""
        with self._lock:
            old, new = self.app.settings, app.settings
            self.app = app
            for name, output in list(self._outputs.items()):
                same = (getattr(old, name, None) == getattr(new, name, None)
                        and old.daemon.timezone == new.daemon.timezone and old.web == new.web)
                if not same:
                    del self._outputs[name]
                    try:
                        output.close()
                    except Exception:
                        log.exception("closing output %s failed", output.name)

    def close(self) -> None:
        with self._lock:
            for output in self._outputs.values():
                try:
                    output.close()
                except Exception:
                    log.exception("closing output %s failed", output.name)
            self._outputs.clear()


def _start_note(occ: Occurrence, tz: str) -> str:
    """What the text adds when a calendar alarm rings before the event: when it starts."""
    if occ.starts_at is None or occ.starts_at == occ.scheduled_at:
        return ""
    return start_note(occ.scheduled_at, occ.starts_at.astimezone(zone(tz)))


def _context_record(context: Context, draft: Draft) -> dict[str, Any]:
    record = context.as_dict()
    record["generation"] = {
        "generator": draft.generator,
        "raw_output": draft.raw_output,
        "rejected": draft.rejected,
        **draft.info,
    }
    return record


def lookback_start(now: datetime, heartbeat: dict[str, Any] | None, grace: timedelta) -> datetime:
    """Where start-up catch-up begins: the last heartbeat (minus the grace window, for slots
    that were due but not yet delivered then), at most 7 days back. Each event is further
    bounded by its own last change, so a paused-then-resumed event is not reported missed."""
    floor = now - timedelta(days=7)
    if heartbeat and heartbeat.get("at"):
        return max(floor, datetime.fromisoformat(heartbeat["at"]) - grace)
    return floor
