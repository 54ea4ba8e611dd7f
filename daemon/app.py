"""The composition root: builds settings, store, clock, context, generator and outputs.

Everything is built lazily, so that ``chime list`` opens the database and nothing else, and
the daemon process never imports torch (the model runs in a worker process).
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

from daemon.clock import Clock, SystemClock
from daemon.config import Settings
from daemon.context import ContextSource
from daemon.generation.base import Generator, WithFallback
from daemon.generation.template import TemplateGenerator
from daemon.outputs import base as outputs
from daemon.outputs.base import Actions, Output
from daemon.store.db import Database

if TYPE_CHECKING:
    from daemon.context.workdays import OfficialWorkdays

log = logging.getLogger("daemon.app")


class App:
    """One configured chime: what the CLI commands, the service and the web work with.

    It satisfies every Protocol of ``daemon.parts``. A part passed to the constructor is used
    as is (the service keeps its open database across a reload; tests pass a context source
    that never sleeps); the others are built on first use.
    """

    def __init__(self, settings: Settings, clock: Clock | None = None, *,
                 db: Database | None = None, context_source: ContextSource | None = None,
                 generator: Generator | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._db, self._context_source, self._generator = db, context_source, generator

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings.db_path)
        return self._db

    @property
    def context_source(self) -> ContextSource:
        """Weather from the forecast cache, the day calendar, part of day (no network)."""
        if self._context_source is None:
            from daemon.context.source import ContextProvider  # imports requests: when used

            self._context_source = ContextProvider(self.settings, self.db, self.clock)
        return self._context_source

    @cached_property
    def workdays(self) -> OfficialWorkdays:
        """Official working days for ``--every workdays``: planning's Workdays calendar."""
        from daemon.context.workdays import OfficialWorkdays

        return OfficialWorkdays.from_settings(self.settings.days, self.db,
                                              lambda: self.clock.now().date())

    @property
    def generator(self) -> Generator:
        """The character model with the template as fallback, or the template alone."""
        if self._generator is None:
            self._generator = self._build_generator()
        return self._generator

    def _build_generator(self) -> Generator:
        from daemon.generation import supervisor  # torch-free: the model runs in a worker process

        why = supervisor.unavailable(self.settings)
        if why:
            log.info("writing reminders with the template: %s", why)
            return TemplateGenerator()
        guard = supervisor.guard_for(self.settings, self.db)
        return WithFallback(supervisor.LoraGenerator(self.settings, guard), TemplateGenerator())

    def outputs(self, names: list[str], actions: Actions | None = None) -> dict[str, Output]:
        """Build the named outputs (unknown names raise ConfigError)."""
        outputs.check_names(names)
        return {name: outputs.create(name, self.settings, actions) for name in names}

    def close(self, keep_db: bool = False) -> None:
        """Stop what this App started: the generator's worker, and the database unless kept."""
        if self._generator is not None:
            self._generator.close()
        if self._db is not None and not keep_db:
            self._db.close()
