"""The checkpoint of an unfinished ``chime model train``: what it holds, saving and restoring it.

``OUT/checkpoint/`` holds the adapter so far (PEFT layout), ``optimizer.pt`` (optimizer,
schedule and RNG states: loaded with ``weights_only=True``) and ``state.json`` (the step, the
losses so far, the data hash, the hyper-parameters and the texts written before training).
It is saved after each epoch and on Ctrl-C, replaced atomically, and removed when the
training finishes. torch is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.errors import InputError
from daemon.generation.files import write_json

if TYPE_CHECKING:
    from daemon.generation.dataset import DataSet

FORMAT = "chime-character/1"
CHECKPOINT = "checkpoint"


def saved_state(out: Path) -> dict[str, Any] | None:
    """The saved state of an unfinished training in ``out`` (None when there is none)."""
    try:
        data = json.loads((out / CHECKPOINT / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def check_out(out: Path, resume: bool) -> dict[str, Any] | None:
    """Refuse an ``--out`` that would lose work; the checkpoint state when resuming."""
    state = saved_state(out)
    if resume:
        if state is None:
            raise InputError(f"{out} holds no checkpoint to resume from")
        return state
    if state is not None:
        raise InputError(f"{out} holds an unfinished training (step {state['step']} of "
                         f"{state['total_steps']}): add --resume, or choose another --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} is not an empty directory: choose another --out")
    return None


def check_resume(state: dict[str, Any], data: DataSet, base: Path) -> None:
    """The checkpoint must continue the same data on the same base."""
    if state["data"]["sha256"] != data.sha256:
        raise InputError(f"{data.path} is not the data the checkpoint was trained on")
    if state["base"] != str(base):
        raise InputError(f"the checkpoint was trained on the base {state['base']}, not {base}")


def save(out: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
    """Adapter, optimizer, schedule, RNG and progress; replaced atomically."""
    import torch

    tmp, final, old = out / ".checkpoint.partial", out / CHECKPOINT, out / ".checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
               tmp / "optimizer.pt")
    write_json(tmp / "state.json", state)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.replace(old)
    tmp.replace(final)
    shutil.rmtree(old, ignore_errors=True)


def restore(out: Path, model: Any, optimizer: Any, scheduler: Any) -> None:
    """Put the saved adapter, optimizer, schedule and RNG states back in place."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = out / CHECKPOINT
    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
    saved = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])


class CtrlC:
    """The first Ctrl-C asks the loop to stop after its step; a second one quits at once."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.asked, self.echo = False, echo
        self.previous: Any = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        self.echo("Ctrl-C: saving a checkpoint after this step (Ctrl-C again: quit without)")

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
