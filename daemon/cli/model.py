"""``chime model pull|build|info``: install the character model and make the device artifact."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import click

from daemon.cli import echo_json, get_app
from daemon.errors import InputError


@click.group()
def model() -> None:
    """The local character model: pull it, build the int8 artifact, show what is installed."""


@model.command()
@click.option("--only", type=click.Choice(["base", "adapter"]), help="Pull just one part.")
@click.option("--revision", help="A hub revision (branch, tag or commit) instead of main.")
def pull(only: str | None, revision: str | None) -> None:
    """Download the base model and the LoRA ([model] base/adapter: hub id or local dir).

    Only the needed files are fetched, each checked against the hub's sha256; a pickled
    adapter_model.bin is converted to safetensors once, so nothing is unpickled at run time.
    """
    from daemon.generation import supervisor
    from daemon.generation.files import pull as fetch

    settings = get_app(click.get_current_context()).settings
    files = supervisor.model_files(settings)
    files.root.mkdir(parents=True, exist_ok=True)
    for part, source in (("base", settings.model.base), ("adapter", settings.model.adapter)):
        if only and part != only:
            continue
        click.echo(f"pulling {part} from {source} …")
        record = fetch(source, part, files, revision)
        names = ", ".join(sorted(record["files"]))
        click.echo(f"{part}: {record['revision']} → {files.root / part} ({names})")


@model.command()
@click.option("--separate", is_flag=True,
              help="Keep the LoRA apart (swap characters without a rebuild); default: merged.")
@click.option("--embedding", type=click.Choice(["int8", "bf16"]), default="int8",
              show_default=True, help="Precision of the tied embedding/output matrix.")
@click.option("--vocab", type=int, default=0, show_default=True,
              help="Prune the vocabulary to about this many Chinese/English tokens (0: keep).")
@click.option("--no-measure", is_flag=True, help="Skip the test load that measures memory.")
def build(separate: bool, embedding: str, vocab: int, no_measure: bool) -> None:
    """Make the device artifact: int8 per-channel weights that load mapped, without fp32.

    Streams one tensor at a time (runs on the board itself), then loads the result in a
    worker, writes one reminder and records the measured memory need for the guards.
    """
    if vocab < 0:
        raise InputError("--vocab must be 0 (keep) or a positive number of tokens")
    from daemon.generation import supervisor
    from daemon.generation.build import build as build_artifact

    settings = get_app(click.get_current_context()).settings
    files = supervisor.model_files(settings)
    meta = build_artifact(files, merge=not separate, embedding=embedding, vocab=vocab)
    click.echo(f"built {files.artifact} ({_mb(meta['size_bytes'])}, vocabulary "
               f"{meta['vocab_size']}, {'merged' if meta['merged'] else 'separate'} LoRA) "
               f"in {meta['build_s']}s")
    if no_measure:
        return
    trial = copy.deepcopy(settings)
    trial.model.backend, trial.model.device = "torch-int8", "cpu"
    info = supervisor.measure(trial)
    need = math.ceil(float(info.get("peak_rss_mb") or 0))
    files.write_artifact_meta({"memory_need_mb": need, "measured": {
        k: info.get(k) for k in ("engine", "load_s", "tok_per_s", "peak_rss_mb")}})
    click.echo(f"measured: load {info.get('load_s')}s, {info.get('tok_per_s')} tok/s, "
               f"peak {need} MB ({info.get('engine')}); sample: {info.get('raw_output')!r}")


@model.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(as_json: bool) -> None:
    """Show what is installed, sizes, the artifact's settings and its measured memory need."""
    settings = get_app(click.get_current_context()).settings
    report = describe(settings)
    if as_json:
        echo_json(report)
        return
    click.echo(f"models dir: {report['models_dir']}")
    click.echo(f"backend {report['backend']}, device {report['device']}, "
               f"kernel {report['kernel']}, enabled {report['enabled']}")
    for part in ("base", "adapter", "int8"):
        entry = report["parts"][part]
        state = "ok" if entry["ok"] else f"missing ({entry['problem']})"
        click.echo(f"  {part:8} {state}, {_mb(entry['size_bytes'])}"
                   + (f", from {entry['source']}" if entry.get("source") else ""))
    art = report["artifact"]
    if art:
        click.echo(f"  artifact: {'merged' if art.get('merged') else 'separate'} LoRA, "
                   f"embedding {art.get('embedding')}, vocabulary {art.get('vocab_size')}, "
                   f"memory need {art.get('memory_need_mb', 'not measured')} MB")
    click.echo("usable: yes" if report["usable"] else f"usable: no — {report['why_not']}")


def describe(settings: Any) -> dict[str, Any]:
    """What ``chime model info`` (and ``chime doctor``) report about the model."""
    from daemon.generation import supervisor
    from daemon.generation.files import dir_size

    files = supervisor.model_files(settings)
    parts = {}
    for part in ("base", "adapter", "int8"):
        problem = files.missing(part)
        folder = files.root / part
        source = None
        try:
            record = json.loads((folder / "source.json").read_text(encoding="utf-8"))
            source = f"{record.get('source')}@{record.get('revision')}"
        except (OSError, ValueError):
            pass
        parts[part] = {"ok": problem is None, "problem": problem, "size_bytes": dir_size(folder),
                       "source": source}
    why = supervisor.unavailable(settings)
    meta = files.artifact_meta()
    return {"models_dir": str(files.root), "backend": settings.model.backend,
            "device": settings.model.device, "kernel": settings.model.kernel,
            "enabled": settings.model.enabled, "parts": parts,
            "artifact": {k: v for k, v in meta.items() if k not in ("base", "adapter")},
            "memory_need_mb": supervisor.memory_need_mb(settings), "usable": why is None,
            "why_not": why}


def _mb(size: int | float) -> str:
    return f"{size / 1e6:.1f} MB"


