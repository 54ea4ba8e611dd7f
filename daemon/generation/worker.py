"""The generation worker: ``python -m daemon.generation.worker``, spoken to in JSON lines.

It loads the model once, writes every request of each batch it is sent, and exits when its
stdin closes, when its parent dies, or after ``keep_warm`` seconds without a batch — so the
board gets its memory back. stdout carries only the protocol; logs go to stderr.

Protocol (one JSON object per line)::

    → {"op": "load", "models_dir", "backend", "device", "kernel", "threads", "keep_warm"}
    ← {"event": "ready", "backend", "device", "load_s", "peak_rss_mb", "info"}
    → {"op": "generate", "items": [{"id", "prompt", "seed"}], "decoding": {...}}
    ← {"event": "result", "id", "raw", "tokens", "generate_s"}   (one per item, in order)
    ← {"event": "done", "peak_rss_mb"}
    ← {"event": "error", "message"}   (then exit 1: nothing could be loaded or written)
    ← {"event": "bye", "reason"}      (idle for keep_warm; exit 0)
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from daemon.generation.model import Loaded

log = logging.getLogger("daemon.generation.worker")


class Lines:
    """Lines from a file descriptor, with a timeout (no buffering surprises with select)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self, timeout: float | None) -> str | None:
        """The next line; '' on timeout, None at end of input."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return ""
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8")


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the daemon dies (no orphaned model in RAM)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


Send = Callable[..., None]


def serve(lines: Lines, out: TextIO) -> int:
    """Run the protocol until stdin closes or the worker idles out; the exit status."""

    def send(event: str, **fields: Any) -> None:
        out.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
        out.flush()

    first = lines.next(None)
    if not first:
        return 0
    try:
        spec = json.loads(first)
        loaded, load_s = _load(spec)
    except Exception as exc:  # report every load failure as one line, then exit
        log.exception("load failed")
        from daemon.errors import ChimeError

        message = str(exc) if isinstance(exc, ChimeError) else f"{type(exc).__name__}: {exc}"
        send("error", message=message.splitlines()[0] if message else type(exc).__name__)
        return 1
    from daemon.generation.model import peak_rss_mb

    send("ready", backend=loaded.backend, device=loaded.device, load_s=load_s,
         peak_rss_mb=peak_rss_mb(), info=loaded.info)
    keep_warm = float(spec.get("keep_warm", 60))
    while True:
        line = lines.next(keep_warm)
        if line is None:
            return 0
        if line == "":
            send("bye", reason=f"idle for {keep_warm:g}s")
            return 0
        if not _batch(loaded, line, send):
            return 1


def _load(spec: dict[str, Any]) -> tuple[Loaded, float]:
    """The model the ``load`` command asks for, and the seconds it took."""
    if spec.get("op") != "load":
        raise ValueError("the first command must be load")
    started = time.monotonic()
    from daemon.generation import model
    from daemon.generation.files import ModelFiles

    loaded = model.load(ModelFiles(Path(spec["models_dir"])), spec.get("backend", "auto"),
                        spec.get("device", "auto"), spec.get("kernel", "auto"),
                        int(spec.get("threads", 0)))
    model.trim_memory()
    return loaded, round(time.monotonic() - started, 2)


def _batch(loaded: Loaded, line: str, send: Send) -> bool:
    """Write every request of one ``generate`` command; False when the command is bad."""
    from daemon.generation.model import Decoding, peak_rss_mb

    try:
        command = json.loads(line)
        decoding = Decoding(**command["decoding"])
        items = command["items"]
    except (ValueError, KeyError, TypeError) as exc:
        send("error", message=f"bad command: {exc}")
        return False
    for item in items:
        started = time.monotonic()
        try:
            raw, tokens = loaded.generate(item["prompt"], int(item["seed"]), decoding)
        except Exception as exc:  # one request failing must not lose the others
            log.exception("generation failed")
            send("result", id=item["id"], error=f"{type(exc).__name__}: {exc}"[:300])
            continue
        send("result", id=item["id"], raw=raw, tokens=tokens,
             generate_s=round(time.monotonic() - started, 3))
    send("done", peak_rss_mb=peak_rss_mb())
    return True


def main() -> int:
    _die_with_parent()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    logging.basicConfig(level=os.environ.get("CHIME_WORKER_LOG", "INFO"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    return serve(Lines(0), out)


if __name__ == "__main__":
    sys.exit(main())
