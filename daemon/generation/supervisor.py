"""The character model as a Generator: supervises the worker process; never imports torch.

``LoraGenerator.generate`` asks the guard before starting a worker, sends the batch, checks the
guard about every ``[guards] check_every`` while it waits, and stops the worker (terminate, then
kill) on a guard trip or when ``[model] timeout`` passes for the batch. Each text is validated;
a rejected one is written once more with another seed, then left to the template. A failure
before any text yields ``GenerationError``; after that, the requests without a text get an
empty draft whose ``info["error"]`` says why — ``WithFallback`` turns both into template text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import daemon
from daemon.config import Settings
from daemon.context.prompt import build_prompt
from daemon.errors import GenerationError
from daemon.generation import validate
from daemon.generation.base import Draft, Request
from daemon.generation.files import ModelFiles
from daemon.generation.guards import DecisionLog, Guard, WorkerGuard, make_sensor

if TYPE_CHECKING:
    from daemon.store.db import Database

DELIVERY_MARGIN_S = 1.0  # a batch ends this long before its earliest reminder is due
log = logging.getLogger("daemon.generation.supervisor")
wlog = logging.getLogger("daemon.generation.worker")
_EOF = object()


def model_files(settings: Settings) -> ModelFiles:
    return ModelFiles(settings.models_dir)


def unavailable(settings: Settings) -> str | None:
    """Why the character model cannot be used with these settings, or None when it can."""
    if not settings.model.enabled:
        return "the model is disabled ([model] enabled = false)"
    return model_files(settings).usable(settings.model.backend)


def measured_need_mb(settings: Settings) -> int | None:
    """The worker's peak RSS, measured when the int8 artifact was built (None if not)."""
    files = model_files(settings)
    if files.missing("int8"):
        return None
    need = files.artifact_meta().get("memory_need_mb")
    return int(need) if isinstance(need, (int, float)) else None


def memory_need_mb(settings: Settings) -> int | None:
    """The memory need the guard, ``chime status`` and the doctor use: the measured one when
    the configured backend runs the artifact (None if unknown)."""
    if settings.model.backend not in ("auto", "torch-int8"):
        return None
    return measured_need_mb(settings)


def guard_for(settings: Settings, db: Database | None = None,
              notes: list[str] | None = None) -> Guard:
    """The guard around the worker, built here only: the [guards] limits and the measured
    memory need; with ``db`` every decision it makes is recorded there; with ``notes`` what
    the machine lacks (no jtop, no thermal zones) is collected there instead of logged."""
    record = DecisionLog(db, settings.guards.keep_decisions).record if db is not None else None
    return Guard(settings.guards, memory_need_mb(settings),
                 sensor=make_sensor(settings.guards, notes), record=record)


def second_seed(seed: int) -> int:
    """The seed for the one retry of a rejected text (reproducible, far from ``seed``)."""
    return (seed * 1_000_003 + 7_919) % 2**31


class Worker:
    """One worker process and the lines it writes (read by a thread, so waits can time out)."""

    def __init__(self, settings: Settings, python: str) -> None:
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false",
                   PYTHONUNBUFFERED="1", CHIME_WORKER_LOG="DEBUG" if wlog.isEnabledFor(
                       logging.DEBUG) else "INFO")
        root = str(Path(daemon.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        if settings.model.threads > 0:
            env["OMP_NUM_THREADS"] = str(settings.model.threads)
        try:
            self.proc = subprocess.Popen(
                [python, "-m", "daemon.generation.worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            raise GenerationError(f"cannot start the worker: {exc}") from exc
        self.events: queue.Queue[Any] = queue.Queue()
        self.tail: deque[str] = deque(maxlen=30)
        self.ready: dict[str, Any] = {}
        self.said_bye = False
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        m = settings.model
        self.send({"op": "load", "models_dir": str(settings.models_dir), "backend": m.backend,
                   "device": m.device, "kernel": m.kernel, "threads": m.threads,
                   "keep_warm": m.keep_warm.total_seconds()})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                self.tail.append(raw.decode("utf-8", "replace").rstrip())
                continue
            if event.get("event") == "bye":
                self.said_bye = True
            self.events.put(event)
        self.events.put(_EOF)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(line)
            wlog.log(logging.WARNING if line.startswith(("ERROR", "CRITICAL")) else
                     logging.DEBUG, "%s", line)

    def send(self, command: dict[str, Any]) -> bool:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(command, ensure_ascii=False) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def next(self, timeout: float) -> Any:
        """The next event, None on timeout, ``_EOF`` when the worker closed its output."""
        try:
            return self.events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.said_bye

    def death(self) -> str:
        """Why the worker ended, in one line."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "worker stopped answering"
        if code < 0:
            hint = " (out of memory?)" if code == -9 else ""
            return f"worker killed by signal {-code}{hint}"
        last = next((t for t in reversed(self.tail) if t.strip()), "")
        return f"worker exited with status {code}" + (f": {last[-200:]}" if last else "")

    def stop(self) -> None:
        """Terminate, then kill if it does not go within 2 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class _Stop(Exception):
    """The batch must stop (timeout, guard, worker gone); the message says why."""


class LoraGenerator:
    """Writes reminders with the character model in a supervised worker process."""

    name = "lora"

    def __init__(self, settings: Settings, guard: WorkerGuard | None = None,
                 python: str | None = None) -> None:
        self.settings = settings
        self.guard = guard
        self.python = python or sys.executable
        self.worker: Worker | None = None
        self._lock = threading.Lock()
        self._last_ready: dict[str, Any] = {}
        self._peak: float | None = None
        self._warm = False
        self._checked_at = -1.0  # monotonic time of the last guard check
        self._budget = settings.model.timeout.total_seconds()

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None when none runs)."""
        return self.worker.pid if self.worker is not None else None

    def close(self) -> None:
        """Stop the worker now (it also exits by itself after ``keep_warm``)."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def generate(self, requests: Sequence[Request]) -> list[Draft | None]:
        if not requests:
            return []
        with self._lock:
            try:
                return self._generate(requests)
            except BaseException:
                self.close()  # whatever went wrong (a guard's sensor, a signal), no orphan
                raise

    def _generate(self, requests: Sequence[Request]) -> list[Draft | None]:
        deadline = self._deadline(requests)
        self._warm = self.worker is not None and self.worker.alive()
        prompts = [build_prompt(r.context, r.task) for r in requests]
        items = [(i, prompts[i], r.seed) for i, r in enumerate(requests)]
        results, error = self._round(items, deadline)
        checked = {i: self._check(results.get(i), requests[i], prompts[i]) for i in results}
        again = [(i, prompts[i], second_seed(r.seed)) for i, r in enumerate(requests)
                 if i in checked and checked[i][1]]
        retried: dict[int, dict[str, Any]] = {}
        retry_error = None
        if again and error is None:
            try:
                retried, retry_error = self._round(again, deadline)
            except GenerationError as exc:
                retry_error = str(exc)
        drafts: list[Draft | None] = []
        for i, request in enumerate(requests):
            if i not in results:
                drafts.append(Draft("", self.name, info={**self._info(None),
                                                         "error": error or "no result"}))
                continue
            text, reasons = checked[i]
            draft = self._draft(results[i], text, reasons)
            if reasons:
                draft.info["attempts"] = 2
                second = retried.get(i)
                if second is None:
                    draft.info["error"] = retry_error or "; ".join(reasons)
                else:
                    text2, reasons2 = self._check(second, request, prompts[i])
                    draft = self._draft(second, text2, reasons2, attempts=2)
                    draft.info["first_rejected"] = reasons
            drafts.append(draft)
        return drafts

    def _check(self, result: dict[str, Any] | None, request: Request,
               prompt: str) -> tuple[str, list[str]]:
        if result is None or "error" in result:
            reason = (result or {}).get("error", "no result")
            return "", [f"generation failed: {reason}"]
        text = validate.clean(result.get("raw", ""))
        return text, validate.problems(text, request.task, prompt)

    def _info(self, result: dict[str, Any] | None) -> dict[str, Any]:
        ready = self.worker.ready if self.worker is not None else self._last_ready
        info = {k: ready.get(k) for k in ("backend", "device", "load_s")}
        info.update(warm=self._warm, load_s=0.0 if self._warm else info["load_s"])
        info["engine"] = (ready.get("info") or {}).get("engine")
        info["peak_rss_mb"] = self._peak
        if result is not None and "error" not in result:
            seconds = float(result.get("generate_s") or 0.0)
            tokens = int(result.get("tokens") or 0)
            info.update(generate_s=seconds, tokens=tokens,
                        tok_per_s=round(tokens / seconds, 2) if seconds > 0 else None)
        return info

    def _draft(self, result: dict[str, Any], text: str, reasons: list[str],
               attempts: int = 1) -> Draft:
        info = {**self._info(result), "attempts": attempts}
        if reasons:
            info["error"] = "rejected: " + "; ".join(reasons)
        return Draft("" if reasons else text, self.name, raw_output=result.get("raw"),
                     rejected=reasons, info=info)

    # ---- the worker ------------------------------------------------------------------------

    def _round(self, items: list[tuple[int, str, int]],
               deadline: float) -> tuple[dict[int, dict[str, Any]], str | None]:
        """Send one batch; (results by index, why the rest has none)."""
        for attempt in (1, 2):
            worker = self._worker(deadline)
            m = self.settings.model
            decoding = {"temperature": m.temperature, "top_p": m.top_p,
                        "repetition_penalty": m.repetition_penalty,
                        "max_new_tokens": m.max_new_tokens}
            sent = worker.send({"op": "generate", "decoding": decoding,
                                "items": [{"id": i, "prompt": p, "seed": s} for i, p, s in items]})
            results: dict[int, dict[str, Any]] = {}
            try:
                while True:
                    event: Any = self._wait(worker, deadline) if sent else _EOF
                    if event is _EOF:
                        if worker.said_bye and not results and attempt == 1:
                            break  # it idled out as we wrote: start a fresh one
                        raise _Stop(worker.death())
                    if event.get("event") == "result":
                        results[int(event["id"])] = event
                    elif event.get("event") == "done":
                        self._peak = event.get("peak_rss_mb")
                        return results, None
                    elif event.get("event") == "error":
                        raise _Stop(f"worker: {event.get('message')}")
            except _Stop as stop:
                self.close()
                log.warning("generation stopped: %s", stop)
                return results, str(stop)
            self.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _deadline(self, requests: Sequence[Request]) -> float:
        """When this batch must be done (monotonic): ``[model] timeout`` from now, but never
        after the earliest reminder's own time, so that a slow start cannot outlive the event
        and the reason for a fallback is recorded before delivery."""
        budget = self.settings.model.timeout.total_seconds()
        now = datetime.now(timezone.utc)
        until_event = min(r.context.at for r in requests) - now
        if until_event.total_seconds() > 0:  # a preview of a past instant keeps the timeout
            budget = min(budget, until_event.total_seconds() - DELIVERY_MARGIN_S)
        self._budget = max(budget, 0.0)
        return time.monotonic() + self._budget

    def _worker(self, deadline: float) -> Worker:
        """The warm worker, or a new one once the guard admits it and it has loaded."""
        if self.worker is not None and self.worker.alive():
            return self.worker
        self.close()
        if self.guard is not None:
            # Waiting for a cool, roomy board may use half the time; loading needs the rest.
            now = time.monotonic()
            decision = self.guard.admit(now + (deadline - now) / 2)
            if not decision.ok:
                raise GenerationError(f"guard: {decision.reason}")
        worker = self.worker = Worker(self.settings, self.python)
        try:
            event = self._wait(worker, deadline)
        except _Stop as stop:
            self.close()
            raise GenerationError(f"{stop} while loading the model") from None
        if event is _EOF:
            reason = worker.death()
            self.close()
            raise GenerationError(reason)
        if event.get("event") != "ready":
            self.close()
            raise GenerationError(f"worker: {event.get('message', event)}")
        worker.ready = event
        self._last_ready = worker.ready
        self._peak = event.get("peak_rss_mb")
        log.info("worker %s ready: %s on %s in %.1fs (%s MB)", worker.pid, event.get("backend"),
                 event.get("device"), event.get("load_s", 0.0), event.get("peak_rss_mb"))
        return worker

    def _wait(self, worker: Worker, deadline: float) -> Any:
        """The worker's next event, checking the guard and the deadline meanwhile."""
        every = max(self.settings.guards.check_every.total_seconds(), 0.05)
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                raise _Stop(f"timeout after {self._budget:g}s ([model] timeout, or the time "
                            "left before the reminder is due)")
            if self.guard is not None and now - self._checked_at >= every:
                self._checked_at = now  # checked on time even while results stream in
                decision = self.guard.check()
                if not decision.ok:
                    raise _Stop(f"guard: {decision.reason}")
            event = worker.next(min(every, left))
            if event is not None:
                return event


def measure(settings: Settings) -> dict[str, Any]:
    """Load the model in a worker, write one reminder, and report timings and peak RSS."""
    from datetime import datetime

    from daemon.context import Context

    context = Context(at=datetime.now().astimezone(), weather="晴天", weather_source="unknown",
                      day="工作日", day_kind="workday", part_of_day="上午")
    generator = LoraGenerator(settings)
    try:
        draft = generator.generate([Request("measure", "喝水", context, 1)])[0]
    finally:
        generator.close()
    assert draft is not None
    if "error" in draft.info and not draft.raw_output:
        raise GenerationError(draft.info["error"])
    return {**draft.info, "raw_output": draft.raw_output}
