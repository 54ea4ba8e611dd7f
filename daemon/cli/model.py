"""``chime model pull|build|info|prompts|train``: install the character model, make the device
artifact, and train a character of your own."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import click

from daemon.cli import echo_json, get_app
from daemon.errors import InputError
from daemon.generation.train import TRAINING_JSON, HyperParameters


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
    click.echo(f"character: {_character_line(report['character'])}")
    click.echo("usable: yes" if report["usable"] else f"usable: no — {report['why_not']}")


@model.command()
@click.option("--count", type=int, default=1000, show_default=True, help="How many prompts.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="The same seed, the same grid.")
@click.option("--tasks", "tasks_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Your own tasks, one a line (default: a built-in list of everyday tasks).")
def prompts(count: int, seed: int, tasks_file: Path | None) -> None:
    """Print a balanced grid of training prompts, one JSON object a line.

    Every weather word, day word (holidays, festivals, 调休, weekends, workdays, your [days]
    periods) and part of the day the context can produce, in the exact training format. Have
    a large model answer each in your character's voice: docs/character.md.
    """
    from daemon.generation import prompts as grid

    days = get_app(click.get_current_context()).settings.days
    user_days = [span.name for span in days.periods + days.personal]
    tasks = grid.read_tasks(tasks_file) if tasks_file else grid.TASKS
    for prompt in grid.grid(count, seed, tasks, user_days):
        click.echo(json.dumps({"prompt": prompt}, ensure_ascii=False))


_DEFAULTS = HyperParameters()


@model.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the adapter and training.json (new or empty).")
@click.option("--name", help="The character's name (default: the --out directory's name).")
@click.option("--base", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Base model directory (default: the pulled base in the models dir).")
@click.option("--allow-bad", is_flag=True, help="Skip bad lines instead of refusing the file.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--rank", type=int, default=_DEFAULTS.rank, show_default=True, help="LoRA r.")
@click.option("--alpha", type=int, default=_DEFAULTS.alpha, show_default=True,
              help="LoRA alpha.")
@click.option("--dropout", type=float, default=_DEFAULTS.dropout, show_default=True)
@click.option("--target-modules", default=",".join(_DEFAULTS.target_modules),
              show_default=True, help="Comma-separated module names for the LoRA.")
@click.option("--learning-rate", type=float, default=_DEFAULTS.learning_rate,
              show_default=True)
@click.option("--epochs", type=int, default=_DEFAULTS.epochs, show_default=True)
@click.option("--max-length", type=int, default=_DEFAULTS.max_length, show_default=True,
              help="Tokens per example (prompt + answer).")
@click.option("--batch-size", type=int, default=_DEFAULTS.batch_size, show_default=True)
@click.option("--eval", "eval_share", type=float, default=_DEFAULTS.eval_share,
              show_default=True, help="Share of the examples held out for the eval loss.")
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True,
              help="Split, LoRA init, data order and dropout.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--precision", type=click.Choice(["auto", "int8", "bf16", "fp32"]),
              default="auto", show_default=True,
              help="auto: int8 on CUDA with bitsandbytes, else bf16 there; fp32 on the CPU "
                   "(bf16 when RAM is short; int8 also runs there, with bitsandbytes).")
@click.option("--checks", type=int, default=50, show_default=True,
              help="Held-out prompts written before and after training for the pass rate.")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs, CI).")
def train(data: Path, out: Path, name: str | None, base: Path | None, allow_bad: bool,
          resume: bool, device: str, precision: str, checks: int, no_progress: bool,
          **options: Any) -> None:
    """Train your own character: a LoRA on DATA.jsonl ({"text": "human:…assistant:…end"}).

    Every line is checked first (format, end marker, the delivery checks); a file with bad
    lines is refused unless --allow-bad. Ctrl-C saves a checkpoint; --resume continues it.
    Install the result with [model] adapter = "OUT", chime model pull and chime model build.
    """
    from daemon.generation import checkpoint, dataset, supervisor
    from daemon.generation import train as trainer

    ctx = click.get_current_context()
    settings = get_app(ctx).settings
    state = checkpoint.check_out(out, resume)
    hyper = _hyper(ctx, options, state)
    files = supervisor.model_files(settings)
    base = (base or files.base).resolve()
    if base == files.base.resolve() and files.missing("base"):
        raise InputError(f"no base model in {base}: run `chime model pull --only base` "
                         "(or pass --base DIR)")
    checked = dataset.read(data)
    if checked.bad:
        for number, reason in checked.bad:
            click.echo(f"{data}:{number}: {reason}", err=True)
        if not allow_bad:
            raise InputError(f"{len(checked.bad)} of {checked.lines} lines are bad (listed "
                             "above): fix them, or pass --allow-bad to skip them")
        click.echo(f"skipping {len(checked.bad)} bad lines of {checked.lines}", err=True)
    if state is not None:
        checkpoint.check_resume(state, checked, base)
    train_set, held_out = dataset.split(checked.examples, hyper.eval_share, hyper.seed)
    m = settings.model
    job = trainer.Job(
        checked, train_set, held_out, base, out,
        name or (state["name"] if state else out.resolve().name), hyper,
        {"temperature": m.temperature, "top_p": m.top_p,
         "repetition_penalty": m.repetition_penalty, "max_new_tokens": m.max_new_tokens},
        device, precision, max(checks, 0), progress=not no_progress)
    record = trainer.run(job, state, lambda line: click.echo(line, err=True))
    judged, loss = record["delivery_checks"], record["eval_loss"]
    click.echo(f"wrote {out} ({record['name']}): eval loss {loss['before']} → {loss['after']}"
               + (f", delivery checks passed {_share(judged['pass_rate']['before'])} → "
                  f"{_share(judged['pass_rate']['after'])} of {judged['prompts']} held-out "
                  "prompts" if judged["prompts"] else ""))
    click.echo(f"install it: set [model] adapter = \"{out.resolve()}\", then "
               "`chime model pull --only adapter` and `chime model build`")


def _hyper(ctx: click.Context, options: dict[str, Any],
           state: dict[str, Any] | None) -> HyperParameters:
    """The hyper-parameters: the options, or on --resume the checkpoint's (a differing
    option given on the command line is an error)."""
    from click.core import ParameterSource

    options = dict(options)
    options["target_modules"] = tuple(
        m.strip() for m in options["target_modules"].split(",") if m.strip())
    hyper = HyperParameters.from_dict(options)
    if state is not None:
        saved = HyperParameters.from_dict(state["hyperparameters"])
        for key, value in options.items():
            given = ctx.get_parameter_source(key) == ParameterSource.COMMANDLINE
            if given and getattr(saved, key) != value:
                flag = next(p.opts[0] for p in ctx.command.params if p.name == key)
                raise InputError(f"{flag} differs from the checkpoint's "
                                 f"({getattr(saved, key)}): resume with the same settings")
        hyper = saved
    hyper.check()
    return hyper


def describe(settings: Any) -> dict[str, Any]:
    """What ``chime model info`` reports about the model: its parts, artifact, character."""
    from daemon.generation import supervisor
    from daemon.generation.files import dir_size

    files = supervisor.model_files(settings)
    parts = {}
    for part in ("base", "adapter", "int8"):
        problem = files.missing(part)
        folder = files.root / part
        parts[part] = {"ok": problem is None, "problem": problem, "size_bytes": dir_size(folder),
                       "source": source_of(folder)}
    why = supervisor.unavailable(settings)
    meta = files.artifact_meta()
    return {"models_dir": str(files.root), "backend": settings.model.backend,
            "device": settings.model.device, "kernel": settings.model.kernel,
            "enabled": settings.model.enabled, "parts": parts,
            "artifact": {k: v for k, v in meta.items() if k not in ("base", "adapter")},
            "memory_need_mb": supervisor.memory_need_mb(settings), "usable": why is None,
            "why_not": why, "character": character(files.adapter, source_of(files.adapter),
                                                   files.artifact if meta.get("merged") else None)}


def source_of(folder: Path) -> str | None:
    """``source@revision`` from a pulled part's source.json (None when unknown)."""
    try:
        record = json.loads((folder / "source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return f"{record.get('source')}@{record.get('revision')}"


def character(adapter: Path, source: str | None,
              merged_into: Path | None = None) -> dict[str, Any] | None:
    """Which character the pulled adapter is (its name and checks when chime trained it), and
    whether the merged int8 artifact predates it (then ``chime model build`` is due)."""
    if not (adapter / "adapter_config.json").is_file():
        return None
    try:
        stale = merged_into is not None and (adapter / "source.json").stat().st_mtime > (
            merged_into / "chime.json").stat().st_mtime
    except OSError:
        stale = False
    info: dict[str, Any] = {"name": None, "source": source, "trained_by_chime": False,
                            "artifact_outdated": stale}
    try:
        record = json.loads((adapter / TRAINING_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return info
    checks = record.get("delivery_checks", {})
    return {**info, "name": record.get("name"), "trained_by_chime": True,
            "finished_at": record.get("finished_at"), "eval_loss": record.get("eval_loss"),
            "pass_rate": checks.get("pass_rate")}


def _share(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def _character_line(info: dict[str, Any] | None) -> str:
    if info is None:
        return "none (no adapter pulled)"
    line = f"from {info['source']}"
    if info["trained_by_chime"]:
        rate = info.get("pass_rate") or {}
        line = f"{info['name']} (trained {info.get('finished_at')}"
        if rate.get("after") is not None:
            line += f", delivery checks {_share(rate.get('before'))} → {_share(rate['after'])}"
        line += ")"
    if info["artifact_outdated"]:
        line += " — the int8 artifact was built before it: run `chime model build`"
    return line


def _mb(size: int | float) -> str:
    return f"{size / 1e6:.1f} MB"


