"""Guards around the generation worker: temperature and free RAM, read through jtop or sysfs/psutil.

The generation code sees only ``WorkerGuard``: ``admit`` before starting the worker (it may
wait and re-check until a deadline), ``check`` while the worker runs (about every second).
A decision that is not ok carries the reason, which is recorded on the occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class GuardDecision:
    """The outcome of one guard check."""

    ok: bool
    reason: str = ""  # empty when ok
    readings: dict[str, Any] = field(default_factory=dict)


class WorkerGuard(Protocol):
    """What the generation worker's supervisor asks before and while it runs."""

    def admit(self, deadline: float) -> GuardDecision:
        """May the worker start? Waits and re-checks until ``deadline`` (time.monotonic())."""
        ...

    def check(self) -> GuardDecision:
        """May the running worker go on? Instant; called about every second."""
        ...
