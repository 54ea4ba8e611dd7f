"""Calendar TZIDs → IANA zone names.

A TZID in an .ics file is one of:

* an IANA name (Google, Apple, Nextcloud): ``Asia/Shanghai``;
* a Windows name (Outlook, Exchange): ``China Standard Time`` — mapped with icalendar's copy of
  the Unicode CLDR table;
* a "globally unique" id (Lightning, Evolution): ``/freeassociation.sourceforge.net/Europe/Berlin``;
* a free-form name defined only by a VTIMEZONE block in the same file (older Outlook:
  ``(UTC+08:00) Beijing, Chongqing, Hong Kong, Urumqi``). Its ``X-LIC-LOCATION`` is used when
  present; otherwise the IANA zone whose UTC offset equals the block's on every day of a
  four-year window (preferring a zone whose city the name mentions, then the configured zone).
  When no IANA zone matches, times are converted to UTC with the block's own rules
  (``exact=False``).

Anything else is an unknown zone: the caller skips that one event and says why.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from icalendar.cal.timezone import Timezone
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from daemon.planning import to_instant, zone


class UnknownZone(ValueError):
    """A TZID that is neither IANA, Windows nor defined by a VTIMEZONE in the file."""


@dataclass(frozen=True)
class Zone:
    """How to read wall times written with one TZID, and which IANA name to store."""

    name: str  # the IANA name events in this zone are stored with
    tzinfo: tzinfo
    exact: bool = True  # False: a custom VTIMEZONE; times are stored converted to UTC

    def instant(self, wall: datetime) -> datetime:
        """A naive wall time in this zone → an aware UTC instant (RFC 5545's DST rules)."""
        if isinstance(self.tzinfo, ZoneInfo):
            return to_instant(wall, self.tzinfo)
        return wall.replace(tzinfo=self.tzinfo).astimezone(timezone.utc)


def iana(name: str) -> str | None:
    """``name`` if it is an IANA zone key that zoneinfo knows, else None."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return name


def clean_tzid(tzid: str) -> str:
    """Undo the text escapes some writers leave in TZIDs (``Beijing\\, Chongqing``)."""
    return re.sub(r"\\([,;\\])", r"\1", str(tzid)).strip().strip('"').strip()


class ZoneResolver:
    """Resolves the TZIDs of one file; ``vtimezones`` are its VTIMEZONE blocks by TZID."""

    def __init__(self, vtimezones: dict[str, Timezone], preferred: str, year: int) -> None:
        self.vtimezones = {clean_tzid(k): v for k, v in vtimezones.items()}
        self.preferred = preferred
        self.year = year
        self._cache: dict[str, Zone] = {}

    def resolve(self, tzid: str) -> Zone:
        key = clean_tzid(tzid)
        if key not in self._cache:
            self._cache[key] = self._resolve(key)
        return self._cache[key]

    def _resolve(self, key: str) -> Zone:
        name = iana(key.strip("/")) or iana(WINDOWS_TO_OLSON.get(key, ""))
        if name is None and key.startswith("/"):  # /vendor/…/Area/City: longest suffix first
            parts = key.strip("/").split("/")
            name = next((n for i in range(1, len(parts))
                         if (n := iana("/".join(parts[i:]))) is not None), None)
        if name is not None:
            return Zone(name, zone(name))
        block = self.vtimezones.get(key)
        if block is None:
            raise UnknownZone(f"unknown time zone {key!r} (no VTIMEZONE defines it)")
        location = block.get("X-LIC-LOCATION")
        if location is not None and (name := iana(str(location))) is not None:
            return Zone(name, zone(name))
        try:
            times, info = block.get_transitions()
            name = self._match(key, times, [offset for offset, _dst, _name in info])
            if name is not None:
                return Zone(name, zone(name))
            return Zone("UTC", block.to_tz(lookup_tzid=False), exact=False)
        except Exception as exc:  # icalendar raises assorted errors (Python's own words)
            raise UnknownZone(f"time zone {key!r}: its VTIMEZONE cannot be read (a STANDARD or "
                              "DAYLIGHT part is missing or broken)") from exc

    def _match(self, key: str, times: list[datetime], offsets: list[timedelta]) -> str | None:
        """The IANA zone with the VTIMEZONE's offsets (its transitions: naive UTC times and
        the offsets they switch to) at noon UTC every day of the window."""
        if not times:
            return None
        days = _days(self.year)
        wanted = tuple(
            offsets[max(bisect_right(times, d.replace(tzinfo=None)) - 1, 0)] for d in days)
        lowered = key.lower()
        named = sorted(n for n in _names()
                       if re.search(rf"\b{re.escape(_city(n))}\b", lowered))
        for first in (named, [self.preferred]):  # the likely ones before the full scan
            found = [n for n in first if _signature(n, days) == wanted]
            if found:
                return found[0]
        weekly = wanted[::7]
        matches = [n for n, sig in _weekly_signatures(self.year).items()
                   if sig == weekly and _signature(n, days) == wanted]
        return min(matches, key=lambda n: (n.startswith("Etc/") or "/" not in n, n),
                   default=None)


def _days(year: int) -> tuple[datetime, ...]:
    """Noon UTC of every day from the year before ``year`` to two years after."""
    start = datetime(year - 1, 1, 1, 12, tzinfo=timezone.utc)
    end = datetime(year + 3, 1, 1, 12, tzinfo=timezone.utc)
    return tuple(start + timedelta(days=i) for i in range((end - start).days))


def _signature(name: str, days: tuple[datetime, ...]) -> tuple[timedelta | None, ...]:
    tz = zone(name)
    return tuple(d.astimezone(tz).utcoffset() for d in days)


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(sorted(n for n in available_timezones() if "/" in n or n == "UTC"))


def _city(name: str) -> str:
    return name.rsplit("/", 1)[-1].replace("_", " ").lower()


@lru_cache(maxsize=2)
def _weekly_signatures(year: int) -> dict[str, tuple[timedelta | None, ...]]:
    """Every IANA zone's offsets once a week over the window (a cheap first filter)."""
    weeks = _days(year)[::7]
    return {n: _signature(n, weeks) for n in _names()}
