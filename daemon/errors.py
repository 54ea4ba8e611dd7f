"""The project's error hierarchy, caught once in the CLI and once in the service loop.

Every error carries a one-line message meant for the person at the keyboard; the CLI prints it
as ``chime: <message>`` and exits with ``exit_code``.
"""

from __future__ import annotations


class ChimeError(Exception):
    """Base of every error chime raises on purpose."""

    exit_code = 1


class InputError(ChimeError):
    """Something the user typed is not acceptable (time, rule, zone, text, id)."""

    exit_code = 2


class NotFoundError(InputError):
    """An id that names nothing."""


class ConfigError(ChimeError):
    """The configuration file or environment is invalid; ``problems`` holds one line per key."""

    exit_code = 78  # EX_CONFIG

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class StoreError(ChimeError):
    """The database cannot be opened, read or written."""

    exit_code = 74  # EX_IOERR


class StoreWriteError(StoreError):
    """The database cannot be written now (disk full, I/O error, read-only): reads still work,
    and the daemon keeps delivering, recording what it sent once the disk takes writes again."""


class StoreReadOnlyError(StoreWriteError):
    """The database file, its folder or its file system is read-only: nothing can start."""

    exit_code = 73  # EX_CANTCREAT: systemd's unit does not restart on it


class FetchError(ChimeError):
    """A remote resource (forecast, holiday feed, calendar) could not be fetched."""


class FetchTimeout(FetchError):
    """The server did not answer in time."""


class FetchConnectionError(FetchError):
    """The server could not be reached (refused, DNS, TLS)."""


class FetchHTTPError(FetchError):
    """The server answered with an error status."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class FetchRateLimited(FetchHTTPError):
    """HTTP 429: the server asked us to come back later (``retry_after`` seconds)."""


class FetchPayloadError(FetchError):
    """The server answered, but not with what we expected (invalid or partial data)."""


class OutputError(ChimeError):
    """An output (console, desktop, speaker, webhook) failed to deliver."""


class GenerationError(ChimeError):
    """The model could not write a reminder (missing files, crash, timeout, guard)."""
