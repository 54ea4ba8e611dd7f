"""The doctor's report: each check's outcome (ok / warning / error), and what checks share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.config import Settings

OK, WARNING, ERROR = "ok", "warning", "error"
REDACTED = "**REDACTED**"
MARKS = {OK: "✓", WARNING: "!", ERROR: "✗"}


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]
    config: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(c.status != ERROR for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "config": self.config, "checks": [asdict(c) for c in self.checks]}

    def as_text(self) -> str:
        lines = []
        for c in self.checks:
            lines.append(f"{MARKS[c.status]} {c.name}: {c.detail}")
            if c.fix and c.status != OK:
                lines.append(f"    fix: {c.fix}")
        errors = sum(c.status == ERROR for c in self.checks)
        warnings = sum(c.status == WARNING for c in self.checks)
        lines.append(f"{errors} error(s), {warnings} warning(s)")
        return "\n".join(lines)


@dataclass
class Doctor:
    settings: Settings | None
    hashes: bool = False
    torch_info: dict[str, Any] | None = None  # the probe's answer, once asked

    @property
    def outputs(self) -> list[str]:
        return self.settings.daemon.outputs if self.settings else []

    def needed(self, output: str) -> str:
        """ERROR for an output the config enables, WARNING otherwise."""
        return ERROR if output in self.outputs else WARNING
