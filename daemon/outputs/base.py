"""The Output protocol and the registry of outputs by short name.

An output delivers one reminder and either returns a short detail (an id, a file, a status)
or raises ``OutputError`` with a one-line reason and, where useful, the fix. Outputs are built
lazily by name, so that an optional dependency (jeepney for the desktop) is imported only when
that output is used. Outputs that talk back (the desktop's "snooze" button) get ``Actions``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from daemon.config_values import OUTPUTS, unknown_outputs
from daemon.errors import ChimeError, ConfigError

if TYPE_CHECKING:
    from daemon.config import Settings


@dataclass(frozen=True)
class Reminder:
    """What an output delivers."""

    occurrence_id: int | None  # None for previews and test sends
    task: str
    message: str
    scheduled_at: datetime  # aware; its zone is the event's
    late: bool = False
    repeat: int = 0  # 0: the reminder; n: its n-th nag repeat
    priority: int | None = None  # 1 (min) … 5 (max) set on the event; None: the output's own


class Actions(Protocol):
    """What a person can do with a delivered reminder (from a notification's buttons)."""

    def snooze(self, occurrence_id: int, delay: timedelta | None = None) -> int | None:
        """Schedule a repeat after ``delay`` (config default if None); the new occurrence id."""
        ...

    def done(self, occurrence_id: int) -> None:
        """Record that the person acknowledged the reminder."""
        ...


class Output(Protocol):
    """Delivers reminders to one place."""

    name: str

    def send(self, reminder: Reminder) -> str:
        """Deliver now; return a short detail, or raise OutputError."""
        ...

    def close(self) -> None:
        """Release what the output holds (connections, listener threads)."""
        ...


# name → "module:factory"; kept beside the config, which checks ``[daemon] outputs`` against it
REGISTRY = OUTPUTS


def available() -> list[str]:
    return sorted(REGISTRY)


def check_names(names: list[str], error: type[ChimeError] = ConfigError) -> None:
    """Raise ``error`` naming every unknown output."""
    problem = unknown_outputs(names)
    if problem:
        raise error(problem)


def create(name: str, settings: Settings, actions: Actions | None = None) -> Output:
    """Build the output registered under ``name``."""
    check_names([name])
    module_name, _, factory_name = REGISTRY[name].partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    output: Output = factory(settings, actions)
    return output
