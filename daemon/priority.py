"""Priorities of a reminder, as ntfy names them: 1 min, 2 low, 3 default, 4 high, 5 max.

A leaf module: the config, the CLI and the outputs read priorities through ``parse_priority``,
and a nag repeat is made more urgent through ``raised``.
"""

from __future__ import annotations

from daemon.errors import InputError

NAMES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}
LABELS = {1: "min", 2: "low", 3: "default", 4: "high", 5: "max"}
DEFAULT = 3


def parse_priority(value: str | int) -> int:
    """``high`` / ``4`` → 4; InputError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lower() in NAMES:
        return NAMES[value.strip().lower()]
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise InputError(f"unknown priority {value!r} (min, low, default, high, max or 1-5)")
    if not 1 <= number <= 5:
        raise InputError(f"priority {number} is out of range (1 min … 5 max)")
    return number


def raised(base: int, repeat: int) -> int:
    """The priority of nag repeat ``repeat`` (0 = the reminder itself): one level more urgent
    per repeat, up to max, so an ignored reminder gets louder on the phone."""
    return min(5, base + max(0, repeat))
