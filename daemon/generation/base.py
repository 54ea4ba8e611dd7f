"""The Generator protocol, and the fallback that guarantees every request gets a text.

A generator takes a batch of requests and returns one draft per request, in order. The
character model may fail in many ways (missing files, guard tripped, worker crashed or timed
out, text rejected); ``WithFallback`` turns each failure into the template text and records why.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from daemon.context import Context

log = logging.getLogger("daemon.generation")


def seed_for(event_id: int | None, instant: datetime) -> int:
    """A stable seed per occurrence, so its text can be reproduced."""
    return zlib.crc32(f"{event_id}:{instant.astimezone(timezone.utc).isoformat()}".encode())


@dataclass(frozen=True)
class Request:
    """One reminder to write."""

    key: str  # the occurrence id, or "preview"
    task: str
    context: Context
    seed: int  # fixed per occurrence, so a preview can be reproduced


@dataclass
class Draft:
    """A written reminder and how it was made."""

    text: str
    generator: str  # "template" or "lora"
    raw_output: str | None = None
    rejected: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # backend, timings, tokens, fallback


class Generator(Protocol):
    """Writes drafts for a batch of requests, one per request, in order.

    May raise ``GenerationError`` (or return ``None`` for a request) when it cannot write;
    callers wrap it in ``WithFallback``.
    """

    name: str

    def generate(self, requests: Sequence[Request]) -> Sequence[Draft | None]: ...

    def close(self) -> None:
        """Release what it holds (a warm worker process)."""
        ...


class WithFallback:
    """Runs ``primary``; any failure, whole or per request, becomes ``fallback``'s text."""

    def __init__(self, primary: Generator, fallback: Generator) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    def generate(self, requests: Sequence[Request]) -> list[Draft]:
        if not requests:
            return []
        reason = ""
        try:
            drafts = list(self.primary.generate(requests))
            if len(drafts) != len(requests):
                raise ValueError(f"{self.primary.name} returned {len(drafts)} drafts")
        except Exception as exc:  # any failure of the model path must degrade, never drop
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log.warning("%s failed, using %s text: %s", self.primary.name, self.fallback.name,
                        reason)
            drafts = [None] * len(requests)
        missing = [r for r, d in zip(requests, drafts, strict=True) if d is None or not d.text]
        backups = iter(self.fallback.generate(missing)) if missing else iter(())
        out: list[Draft] = []
        for draft in drafts:
            if draft is not None and draft.text:
                out.append(draft)
                continue
            backup = next(backups)
            assert backup is not None
            backup.info["fallback_reason"] = reason or (draft.info.get("error") if draft else "")
            if draft is not None:
                backup.raw_output, backup.rejected = draft.raw_output, draft.rejected
                backup.info = {**draft.info, **backup.info}
            out.append(backup)
        return out

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()
