"""Part of the day from a local time, with configurable boundaries.

Boundaries are ``[days] parts_of_day`` as the config parsed them (``config_values.
parse_boundaries``): ascending (start, name) pairs, the first at 00:00; a time belongs to the
last boundary at or before it. Defaults: 凌晨 0–5, 早晨 5–8, 上午 8–11, 中午 11–13,
下午 13–17, 傍晚 17–19, 晚上 19–23, 深夜 23–24.
"""

from __future__ import annotations

from datetime import datetime, time

from daemon.config_values import DEFAULT_PARTS_OF_DAY, PARTS_OF_DAY, parse_boundaries

PARTS = PARTS_OF_DAY
DEFAULT_BOUNDARIES = parse_boundaries(DEFAULT_PARTS_OF_DAY)


def part_of_day(local: datetime, bounds: list[tuple[time, str]] = DEFAULT_BOUNDARIES) -> str:
    """The part of the day that a local time falls in."""
    now = local.time().replace(tzinfo=None)
    name = bounds[0][1]
    for start, part in bounds:
        if now >= start:
            name = part
    return name
