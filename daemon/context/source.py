"""Builds the Context for an instant from the weather cache and the day calendar."""

from __future__ import annotations

from datetime import datetime

from daemon.config import Settings
from daemon.context import Context
from daemon.context.daypart import parse_boundaries, part_of_day

UNKNOWN_WEATHER = "多云"  # neutral: asks nothing of the person (no umbrella, no sun hat)


class LocalContext:
    """Context from what is known locally: part of day and weekend/workday."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bounds = parse_boundaries(settings.days.parts_of_day)

    def context_for(self, at: datetime) -> Context:
        weekend = at.weekday() >= 5
        return Context(
            at=at,
            weather=UNKNOWN_WEATHER,
            weather_source="unknown",
            day="双休日" if weekend else "工作日",
            day_kind="weekend" if weekend else "workday",
            part_of_day=part_of_day(at, self.bounds),
            notes=("weather: no forecast configured",),
        )
