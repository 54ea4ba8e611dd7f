"""What the use cases take from the composition root, each Protocol naming only what it uses.

``App`` (app.py) builds all of these parts and satisfies every Protocol here; the use cases
(reminders, delivery, scheduler, calendars, status) are typed with the narrowest one they
need and never import ``App``, so the arrows point down: front ends (cli, service, web) →
App → use cases → store, context, generation, outputs. A test may pass any object with these
attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from daemon.clock import Clock
    from daemon.config import Settings
    from daemon.context import ContextSource
    from daemon.context.workdays import OfficialWorkdays
    from daemon.generation.base import Generator
    from daemon.outputs.base import Actions, Output
    from daemon.store.db import Database


class Stored(Protocol):
    """The settings, the clock and the database: reading and writing reminders."""

    settings: Settings
    clock: Clock

    @property
    def db(self) -> Database: ...


class Planned(Stored, Protocol):
    """… and the official working days, to compute occurrences (``--every workdays``)."""

    @property
    def workdays(self) -> OfficialWorkdays: ...


class Writing(Planned, Protocol):
    """… and the context and the generator, to write a reminder's text."""

    @property
    def context_source(self) -> ContextSource: ...

    @property
    def generator(self) -> Generator: ...


class Delivering(Writing, Protocol):
    """… and the outputs, to deliver it."""

    def outputs(self, names: list[str], actions: Actions | None = None) -> dict[str, Output]: ...
