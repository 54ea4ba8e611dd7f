"""The facts about a moment that the reminder is written from: weather, kind of day, part of day.

``Context`` is what the generator sees and what the occurrence row records (``as_dict``).
A ``ContextSource`` builds it for an instant; it never raises for a missing network or
calendar — unknown facts degrade to well-formed words and are recorded as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Context:
    """Everything the reminder text depends on besides the task."""

    at: datetime  # the occurrence, aware, in the event's zone
    # one of the LoRA's weather words: 晴天, 多云, 阴天, 雾, 霾, 小雨, 雨天, 大雨, 雷暴, 雪天
    weather: str
    weather_source: str  # live | cache | unknown
    day: str  # the day word: a holiday's name, 调休, 双休日, 工作日, or a user period
    day_kind: str  # holiday | makeup | weekend | workday | festival | period | personal
    part_of_day: str  # 凌晨, 早晨, 上午, 中午, 下午, 傍晚, 晚上, 深夜
    temperature: float | None = None
    precipitation_probability: float | None = None
    weather_code: int | None = None
    notes: tuple[str, ...] = ()  # why a fact is degraded (offline, data missing…)
    weather_fetched_at: str | None = None  # ISO instant the forecast used was fetched

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["notes"] = list(self.notes)
        return data


class ContextSource(Protocol):
    """Builds the context for an instant (aware). Must not raise for missing data."""

    def context_for(self, at: datetime) -> Context:
        """The context at ``at`` from cached data only: never touches the network."""
        ...

    def refresh(self, now: datetime) -> None:
        """Fetch what is due (forecast, holiday feed); cheap when nothing is; never raises."""
        ...
