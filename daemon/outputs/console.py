"""Console output: one line on stdout per reminder (the journal, under systemd)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from daemon.errors import OutputError
from daemon.outputs.base import Actions, Reminder

if TYPE_CHECKING:
    from daemon.config import Settings


class ConsoleOutput:
    """``[2026-11-28 08:00 +0800] 买咖啡 — 早上好！该买咖啡啦。``"""

    name = "console"

    def __init__(self, settings: Settings | None = None, actions: Actions | None = None) -> None:
        pass

    def send(self, reminder: Reminder) -> str:
        when = reminder.scheduled_at.strftime("%Y-%m-%d %H:%M %z")
        late = " (late)" if reminder.late else ""
        line = f"[{when}]{late} {reminder.task} — {reminder.message}"
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as exc:
            raise OutputError(f"console: cannot write to stdout: {exc}") from exc
        return "printed"

    def close(self) -> None:
        pass
