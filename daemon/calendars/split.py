"""Splitting iCalendar text into its top-level components, before icalendar reads each one.

Parsing component by component means one garbled line costs only the event that holds it.
Where a real export's meaning is plain it is read leniently: spaces inside an RRULE (Exchange
writes ``BYDAY=MO, TU, WE, TH, FR``) and empty list items (``BYDAY=MO,``) are dropped.
Structure errors that make the whole file suspect (not iCalendar at all, cut short, an END
without BEGIN at calendar level) raise InputError; a broken component is marked ``broken``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NoReturn

from daemon.errors import InputError

MAX_COMPONENTS = 20_000  # more is not a personal calendar; parsing it would take minutes


@dataclass
class Block:
    name: str
    lines: list[str] = field(default_factory=list)
    broken: str | None = None

    def text(self) -> str:
        return "\r\n".join(self.lines) + "\r\n"

    def raw(self, prop: str) -> str | None:
        """A property's raw value, to name a component that icalendar cannot read."""
        for line in self.lines:
            head, sep, value = line.partition(":")
            if sep and head.split(";")[0].strip().upper() == prop:
                return value.strip().replace("\\,", ",") or None
        return None


def _unfold(text: str) -> list[str]:
    """Content lines, folds joined (once per line: a long folded value costs linear time)."""
    lines: list[list[str]] = []
    for line in re.split(r"\r\n|\n|\r", text):
        if line[:1] in (" ", "\t") and lines:
            lines[-1].append(line[1:])
        elif line.strip():
            lines.append([line])
    return ["".join(parts) for parts in lines]


def split_calendar(text: str) -> tuple[dict[str, str], list[Block]]:
    """The VCALENDAR properties and its top-level components; InputError if not iCalendar."""
    if text.count("BEGIN:VEVENT") + text.count("BEGIN:VTODO") > MAX_COMPONENTS:
        _too_many()  # counted before any line is made: a flood costs no memory
    lines = _unfold(text.lstrip("\ufeff"))
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        raise InputError("not an iCalendar file (it does not begin with BEGIN:VCALENDAR)")
    props: dict[str, str] = {}
    blocks: list[Block] = []
    stack: list[str] = []
    for line in lines:
        head, colon, value = line.partition(":")
        name, word = head.split(";")[0].strip().upper(), value.strip().upper()
        depth = len(stack)
        if not colon:  # every content line is NAME[;PARAMS]:VALUE
            if depth >= 2:
                blocks[-1].broken = f"a line is not iCalendar ({short(line)!r})"
            continue
        if name == "BEGIN":
            if depth == 0 and word != "VCALENDAR":
                raise InputError(f"not an iCalendar file (BEGIN:{word} outside a VCALENDAR)")
            if depth == 1:
                if len(blocks) >= MAX_COMPONENTS:
                    _too_many()
                blocks.append(Block(word))
            stack.append(word)
        elif name == "END" and word not in stack:
            if depth < 2:
                raise InputError(f"broken iCalendar file (END:{word} without BEGIN)")
            blocks[-1].broken = f"END:{word} without BEGIN"
        elif name == "END":
            if stack[-1] != word and depth >= 2:
                blocks[-1].broken = f"BEGIN:{stack[-1]} is never closed"
            while stack.pop() != word:
                pass
        elif depth == 1:
            props.setdefault(name, value.strip())
        if name in ("RRULE", "EXRULE") and depth >= 2:  # Exchange: BYDAY=MO, TU, WE
            line = f"{head}:{_plain_rule(value)}"
        if depth >= 2 or (depth == 1 and name == "BEGIN"):
            blocks[-1].lines.append(line)
    if stack:
        raise InputError(f"the iCalendar file ends inside {stack[-1]} (cut short?)")
    return props, blocks


def _too_many() -> NoReturn:
    raise InputError(f"the calendar has more than {MAX_COMPONENTS} components; chime reads "
                     "calendars up to that size")


def _plain_rule(value: str) -> str:
    """An RRULE value without the slips real exports make: spaces, empty list items."""
    rule = "".join(value.split())
    rule = re.sub(r",+(?=;|$)", "", re.sub(r"([=,]),+", r"\1", rule))
    return rule


def short(exc: BaseException | str) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:119] + "…"
