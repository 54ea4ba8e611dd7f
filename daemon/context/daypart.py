"""Part of the day from a local time, with configurable boundaries.

Boundaries are strings ``"HH:MM 名字"`` in ascending order, the first at 00:00; a time belongs
to the last boundary at or before it. Defaults: 凌晨 0–5, 早晨 5–8, 上午 8–11, 中午 11–13,
下午 13–17, 傍晚 17–19, 晚上 19–23, 深夜 23–24.
"""

from __future__ import annotations

from datetime import datetime, time

from daemon.errors import ConfigError

PARTS = ("凌晨", "早晨", "上午", "中午", "下午", "傍晚", "晚上", "深夜")


def parse_boundaries(specs: list[str]) -> list[tuple[time, str]]:
    """``["00:00 凌晨", "05:00 早晨", …]`` → sorted (start, name) pairs, validated."""
    bounds: list[tuple[time, str]] = []
    for spec in specs:
        clock, _, name = spec.strip().partition(" ")
        try:
            start = time.fromisoformat(clock)
        except ValueError as exc:
            raise ConfigError(f"[days] parts_of_day: bad time in {spec!r}") from exc
        if name.strip() not in PARTS:
            raise ConfigError(
                f"[days] parts_of_day: {name.strip()!r} is not one of {', '.join(PARTS)}"
            )
        bounds.append((start, name.strip()))
    if not bounds or bounds[0][0] != time(0, 0):
        raise ConfigError("[days] parts_of_day: the first part must start at 00:00")
    if [b[0] for b in bounds] != sorted({b[0] for b in bounds}):
        raise ConfigError("[days] parts_of_day: boundaries must be strictly ascending")
    return bounds


DEFAULT_BOUNDARIES = parse_boundaries(
    ["00:00 凌晨", "05:00 早晨", "08:00 上午", "11:00 中午", "13:00 下午",
     "17:00 傍晚", "19:00 晚上", "23:00 深夜"]
)


def part_of_day(local: datetime, bounds: list[tuple[time, str]] = DEFAULT_BOUNDARIES) -> str:
    """The part of the day that a local time falls in."""
    now = local.time().replace(tzinfo=None)
    name = bounds[0][1]
    for start, part in bounds:
        if now >= start:
            name = part
    return name
