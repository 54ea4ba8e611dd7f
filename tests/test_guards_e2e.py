"""End to end: a guard that refuses or stops the real worker never costs a reminder.

The App's own wiring (``App.generator``: LoRA worker behind a ``Guard``, template fallback),
the real scheduler and courier, the tiny BLOOM model, and a fake sysfs tree whose temperature
the tests change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from daemon import reminders
from daemon.app import App
from daemon.context import Context
from daemon.delivery import Courier
from daemon.generation.base import Request, WithFallback, seed_for
from daemon.generation.files import ModelFiles
from daemon.generation.guards import DecisionLog, Guard
from daemon.generation.supervisor import LoraGenerator
from daemon.generation.template import TemplateGenerator
from daemon.scheduler import Planner
from daemon.store import repo
from tests.generation_fixtures import model_settings
from tests.guard_fixtures import FakeSysfs

pytestmark = pytest.mark.slow

CPU = 1  # CPU-therm in the Nano tree: passive trip 97 °C → start limit 77, abort limit 92


@pytest.fixture
def board(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path / "sys").add_nano()


@pytest.fixture
def make_app(installed: ModelFiles, board: FakeSysfs,
             tmp_path: Path) -> Iterator[Any]:
    apps: list[App] = []

    def make(timeout_s: float = 60, **guards: Any) -> App:
        settings = model_settings(installed, tmp_path, timeout=timedelta(seconds=timeout_s))
        settings.guards.use_jtop = False
        settings.guards.sysfs_root = str(board.root)
        for key, value in guards.items():
            setattr(settings.guards, key, value)
        app = App(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def run_until_delivered(app: App, task: str, at: datetime, lead_s: int) -> dict[str, Any]:
    """Add a one-off reminder and run the real scheduler until it is delivered."""
    event = reminders.add(app, task, at.isoformat(), lead=f"{lead_s}s")
    courier = Courier(app)
    planner = Planner(app, courier)
    planner.start()
    try:
        planner.replan()
        deadline = time.monotonic() + (at - datetime.now(timezone.utc)).total_seconds() + 30
        while time.monotonic() < deadline:
            with app.db.session() as s:
                occ = repo.recent_occurrences(s, 1)
                if occ and occ[0].status not in ("pending", "prepared", "delivering"):
                    row = occ[0]
                    return {"event_id": event.id, "status": row.status, "message": row.message,
                            "generator": row.generator, "context": row.context,
                            "scheduled_at": row.scheduled_at, "delivered_at": row.delivered_at,
                            "prepared_at": row.prepared_at}
            time.sleep(0.05)
        raise AssertionError("the reminder was not delivered")
    finally:
        planner.shutdown()
        courier.close()


def template_text(row: dict[str, Any], task: str) -> str:
    """What the template writes for this occurrence, from the context it recorded."""
    record = row["context"]
    values = {f.name: record[f.name] for f in fields(Context) if f.name in record}
    values["at"] = datetime.fromisoformat(values["at"])
    values["notes"] = tuple(values.get("notes") or ())
    seed = seed_for(row["event_id"], row["scheduled_at"])
    draft = TemplateGenerator().generate([Request("e2e", task, Context(**values), seed)])[0]
    assert draft is not None
    return draft.text


def test_a_refusing_guard_still_delivers_the_template_on_time(
    make_app: Any, board: FakeSysfs
) -> None:
    board.set_temp(CPU, 85.0)  # above the start limit, and it stays hot
    # The supervisor gives admit() its batch deadline ([model] timeout): 3 s, inside the lead.
    app = make_app(timeout_s=3, wait_step=timedelta(seconds=0.2))
    generator = app.generator
    assert isinstance(generator, WithFallback) and isinstance(generator.primary, LoraGenerator)
    assert isinstance(generator.primary.guard, Guard)
    at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=6)

    row = run_until_delivered(app, "喝水", at, lead_s=5)

    assert row["status"] == "delivered"
    assert 0 <= (row["delivered_at"] - at).total_seconds() < 1.0
    assert row["prepared_at"] < at
    assert row["generator"] == "template"
    assert row["message"] == template_text(row, "喝水")
    reason = row["context"]["generation"]["fallback_reason"]
    assert "guard: too hot to start the model: CPU-therm at 85.0 °C, start limit 77.0 °C" in reason
    assert "gave up after waiting" in reason
    assert generator.primary.pid is None  # no worker was started
    decisions = DecisionLog(app.db).recent()
    assert decisions[0]["decision"] == "refused"
    assert decisions[0]["reason"] in reason


def test_a_worker_stopped_by_the_guard_falls_back_on_time(
    make_app: Any, board: FakeSysfs
) -> None:
    app = make_app()
    generator = app.generator
    assert isinstance(generator, WithFallback) and isinstance(generator.primary, LoraGenerator)
    lora = generator.primary
    seen: dict[str, int] = {}

    def heat_when_the_worker_runs() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pid = lora.pid
            if pid is not None and psutil.pid_exists(pid):
                seen["pid"] = pid
                board.set_temp(CPU, 95.0)  # past the abort limit of 92 °C
                return
            time.sleep(0.01)

    heater = threading.Thread(target=heat_when_the_worker_runs, daemon=True)
    heater.start()
    at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=10)

    row = run_until_delivered(app, "吃药", at, lead_s=8)
    heater.join(1)

    assert "pid" in seen, "the worker never started"
    assert not psutil.pid_exists(seen["pid"]) or psutil.Process(seen["pid"]).status() == "zombie"
    assert lora.pid is None
    assert row["status"] == "delivered"
    assert 0 <= (row["delivered_at"] - at).total_seconds() < 1.0
    assert row["generator"] == "template"
    assert row["message"] == template_text(row, "吃药")
    reason = row["context"]["generation"]["fallback_reason"]
    assert "guard: too hot to go on: CPU-therm at 95.0 °C, abort limit 92.0 °C" in reason
    decisions = DecisionLog(app.db).recent()
    assert [d["decision"] for d in decisions[:2]] == ["refused", "ok"]  # stopped, admitted
    assert decisions[0]["readings"]["phase"] == "running"


def test_the_admit_deadline_leaves_time_before_the_event(make_app: Any, board: FakeSysfs) -> None:
    board.set_temp(CPU, 85.0)
    app = make_app(timeout_s=12, wait_step=timedelta(seconds=0.2))  # timeout longer than lead
    at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=5)

    row = run_until_delivered(app, "喝水", at, lead_s=4)

    assert row["status"] == "delivered"  # on time either way: delivery writes the template
    assert 0 <= (row["delivered_at"] - at).total_seconds() < 1.0
    assert row["prepared_at"] is not None and row["prepared_at"] < at
    assert "too hot to start" in row["context"]["generation"]["fallback_reason"]
