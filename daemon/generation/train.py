"""Training a character LoRA on a checked data set: ``chime model train DATA --out DIR``.

A plain PyTorch loop over PEFT: AdamW with a linear schedule (5 % warm-up), the loss on the
answer tokens only (prompt tokens are labelled -100), gradient clipping at 1.0, a held-out
split for the eval loss. The data order of each epoch comes from the seed, so a run stopped
by Ctrl-C (a checkpoint is saved after the current step; one is also saved after each epoch)
continues with ``--resume`` exactly where it stopped: same batches, same dropout, same result.

Where it runs: CUDA with bitsandbytes → the base in int8 (``prepare_model_for_kbit_training``),
as the shipped character was trained; CUDA without it → bf16; the CPU → fp32, or bf16 when
fp32 would not fit in the available RAM (``--precision int8`` runs on the CPU too, with
bitsandbytes ≥ 0.45: the tests use it there). Before and after training, texts are generated for
up to ``checks`` held-out prompts with the worker's own sampling code and judged by the
delivery checks (``validate``): the pass rates go into ``training.json``.

torch, transformers and peft are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.context.prompt import END_MARKER
from daemon.errors import ChimeError, GenerationError, InputError
from daemon.generation import checkpoint, validate
from daemon.generation.checkpoint import CHECKPOINT, FORMAT, CtrlC
from daemon.generation.files import weight_files, write_json

if TYPE_CHECKING:
    from daemon.generation.dataset import DataSet, Example

log = logging.getLogger("daemon.generation.train")

TRAINING_JSON = "training.json"
ESTIMATE_STEPS = 3  # steps measured (after the first) for the time estimate
WARMUP_SHARE = 0.05
SLOW_CPU_PARAMETERS = 500_000_000  # a CPU run of a base this size takes hours: say so first

Echo = Callable[[str], None]


class TrainingInterrupted(ChimeError):
    """Ctrl-C: the checkpoint is saved; ``--resume`` continues."""

    exit_code = 130


@dataclass(frozen=True)
class HyperParameters:
    """The LoRA and the schedule; defaults are the shipped character's."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("query_key_value",)
    learning_rate: float = 3e-4
    epochs: int = 3
    max_length: int = 256
    batch_size: int = 8
    eval_share: float = 0.05
    seed: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HyperParameters:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "target_modules" in values:
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    def check(self) -> None:
        """InputError naming the first option out of range."""
        if self.rank < 1 or self.alpha <= 0:
            raise InputError("--rank and --alpha must be positive")
        if not 0 <= self.dropout < 1:
            raise InputError("--dropout must be in [0, 1)")
        if not self.target_modules or not all(self.target_modules):
            raise InputError("--target-modules needs at least one module name")
        if self.learning_rate <= 0 or self.epochs < 1 or self.batch_size < 1:
            raise InputError("--learning-rate, --epochs and --batch-size must be positive")
        if self.max_length < 16:
            raise InputError("--max-length must be at least 16 tokens")


@dataclass
class Job:
    """What to train: the checked data, the base, where to write, and how."""

    data: DataSet
    train: list[Example]
    held_out: list[Example]
    base: Path
    out: Path
    name: str
    hyper: HyperParameters
    decoding: dict[str, Any]  # [model] sampling, for the check texts
    device: str = "auto"
    precision: str = "auto"
    checks: int = 50
    progress: bool = True


# ---- before torch: where it runs ------------------------------------------------------------


def parameter_count(base: Path) -> int:
    """Weights in the base's safetensors files (read from their headers)."""
    total = 0
    for path in weight_files(base):
        with path.open("rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def choose(device: str, precision: str, parameters: int) -> tuple[str, str, str]:
    """(device, precision, why) for the requested ones on this machine."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available to torch")
    problem = _bitsandbytes_problem() if precision == "int8" or (
        device == "cuda" and precision == "auto") else None
    if precision == "int8" and problem:
        raise InputError(f"--precision int8 needs bitsandbytes ({problem}): "
                         "pip install 'chime-reminder[cuda]'")
    if precision != "auto":
        return device, precision, f"--precision {precision}"
    if device == "cuda":
        if problem:
            return device, "bf16", f"CUDA without a usable bitsandbytes ({problem})"
        return device, "int8", "CUDA with bitsandbytes: the base in int8, as the seed was trained"
    import psutil

    free = psutil.virtual_memory().available
    need = parameters * 4 * 1.5  # fp32 weights; loading peaks at 1.5× (docs/benchmarks.md)
    if need > free:
        return device, "bf16", (f"CPU: fp32 needs about {need / 1e9:.1f} GB, "
                                f"{free / 1e9:.1f} GB available")
    return device, "fp32", "CPU with RAM for fp32"


def _bitsandbytes_problem() -> str | None:
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # bnb fails in odd ways on unsupported GPUs
        return type(exc).__name__
    return None


# ---- the model ------------------------------------------------------------------------------


def _load(job: Job, device: str, precision: str) -> tuple[Any, Any]:
    """(PEFT model ready to train, tokenizer); GenerationError when the base cannot load."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any
    try:
        tokenizer = AutoTokenizer.from_pretrained(job.base)
        if precision == "int8":
            from transformers import BitsAndBytesConfig

            warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")  # per matmul on a CPU

            model = AutoModelForCausalLM.from_pretrained(
                job.base, dtype=torch.float16, device_map={"": device},
                quantization_config=BitsAndBytesConfig(load_in_8bit=True,
                                                       llm_int8_threshold=6.0))
            model = prepare_model_for_kbit_training(
                model, gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            model = AutoModelForCausalLM.from_pretrained(job.base, dtype=dtype)
            model.to(device)
    except Exception as exc:  # missing or corrupt files, an unknown architecture
        raise GenerationError(f"cannot load the base {job.base}: {exc}".splitlines()[0]) \
            from exc
    h = job.hyper
    config = LoraConfig(r=h.rank, lora_alpha=h.alpha, lora_dropout=h.dropout,
                        target_modules=list(h.target_modules), bias="none",
                        task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config), tokenizer
    except ValueError as exc:  # e.g. a target module the base lacks
        raise InputError(f"cannot put a LoRA on this base: {exc}".splitlines()[0]) from exc


Pair = tuple[list[int], list[int]]  # (input ids, labels: -100 on the prompt)


def encode(tokenizer: Any, examples: Sequence[Example], max_length: int) -> tuple[list[Pair], int]:
    """Token ids and labels: the prompt as the worker tokenizes it, then answer + end + eos."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    pairs, cut = [], 0
    for ex in examples:
        prompt = tokenizer(ex.prompt)["input_ids"]
        answer = tokenizer(ex.answer + END_MARKER, add_special_tokens=False)["input_ids"] + eos
        if len(prompt) >= max_length:
            raise InputError(f"line {ex.line}: the prompt alone is {len(prompt)} tokens, "
                             f"more than --max-length {max_length}")
        ids, labels = prompt + answer, [-100] * len(prompt) + answer
        if len(ids) > max_length:
            cut += 1
            ids, labels = ids[:max_length], labels[:max_length]
        pairs.append((ids, labels))
    return pairs, cut


def _batch(pairs: Sequence[Pair], pad_id: int, device: str) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (seq, lab) in enumerate(pairs):
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(seq)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "labels": labels.to(device)}


def eval_loss(model: Any, pairs: Sequence[Pair], pad_id: int, device: str,
              batch_size: int) -> float | None:
    """The mean loss per answer token over ``pairs`` (None when there are none)."""
    import torch

    if not pairs:
        return None
    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            batch = _batch(pairs[start : start + batch_size], pad_id, device)
            count = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * count
            tokens += count
    model.train(was_training)
    return round(total / tokens, 4)


def delivery_checks(model: Any, tokenizer: Any, examples: Sequence[Example], device: str,
                    decoding: dict[str, Any]) -> dict[str, Any]:
    """Generate a text for each held-out prompt as the worker would; the delivery pass rate."""
    from daemon.generation.model import Decoding, Loaded

    if not examples:
        return {"prompts": 0, "passed": 0, "pass_rate": None, "samples": []}
    was_training = model.training
    model.eval()
    loaded = Loaded(model, tokenizer, "train", device)
    samples = []
    for seed, ex in enumerate(examples, 1):
        raw, _ = loaded.generate(ex.prompt, seed, Decoding(**decoding))
        text = validate.clean(raw)
        samples.append({"prompt": ex.prompt, "text": text,
                        "problems": validate.problems(text, ex.task, ex.prompt)})
    model.train(was_training)
    passed = sum(1 for s in samples if not s["problems"])
    return {"prompts": len(samples), "passed": passed,
            "pass_rate": round(passed / len(samples), 3), "samples": samples}


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{seconds:.0f} s" if seconds < 90 else (
        f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min")


# ---- the loop -------------------------------------------------------------------------------


def run(job: Job, state: dict[str, Any] | None, echo: Echo) -> dict[str, Any]:
    """Train (or continue ``state``), write the adapter and training.json into ``job.out``."""
    import torch
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    started = time.monotonic()
    h = job.hyper
    parameters = parameter_count(job.base)
    if not parameters:
        raise GenerationError(f"{job.base} has no *.safetensors weights: is it a model directory?")
    device, precision, why = (state["device"], state["precision"], "as in the checkpoint") \
        if state else choose(job.device, job.precision, parameters)
    echo(f"training {job.name!r} on {len(job.train)} examples ({len(job.held_out)} held out), "
         f"base {parameters / 1e6:.3g} M parameters, {device} {precision} ({why})")
    if device == "cpu" and parameters > SLOW_CPU_PARAMETERS:
        echo("a base this size is slow to train on a CPU (hours; a CUDA GPU takes minutes), "
             f"and writing the {min(job.checks, len(job.held_out))} check texts before and "
             "after takes minutes too (--checks): the time per step follows once measured")
    torch.manual_seed(h.seed)  # the LoRA's initial weights
    model, tokenizer = _load(job, device, precision)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id
    train_pairs, cut = encode(tokenizer, job.train, h.max_length)
    held_pairs, held_cut = encode(tokenizer, job.held_out, h.max_length)
    if cut + held_cut:
        echo(f"{cut + held_cut} examples are longer than --max-length {h.max_length}: cut")
    per_epoch = math.ceil(len(train_pairs) / h.batch_size)
    total = per_epoch * h.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=h.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(WARMUP_SHARE * total),
                                                total)
    checked = job.held_out[: state["checks"] if state else job.checks]
    if state is None:
        with model.disable_adapter():
            before = {"eval_loss": eval_loss(model, held_pairs, pad_id, device, h.batch_size),
                      **delivery_checks(model, tokenizer, checked, device, job.decoding)}
        state = {"format": FORMAT, "name": job.name, "base": str(job.base),
                 "data": {"file": job.data.path.name, "sha256": job.data.sha256,
                          "lines": job.data.lines, "bad_skipped": len(job.data.bad),
                          "train": len(job.train), "held_out": len(job.held_out)},
                 "hyperparameters": h.as_dict(), "device": device, "precision": precision,
                 "checks": len(checked),
                 "step": 0, "total_steps": total, "resumed_at": [], "losses": [],
                 "epoch_loss": [0.0, 0], "before": before, "train_s": 0.0}
        torch.manual_seed(h.seed)  # dropout: the same from here on, resumed or not
    else:
        checkpoint.restore(job.out, model, optimizer, scheduler)
        state["resumed_at"].append(state["step"])
        state["name"] = job.name
        echo(f"resuming at step {state['step']} of {total}")
    job.out.mkdir(parents=True, exist_ok=True)
    model.train()
    step = state["step"]
    order: list[int] = []
    bar = tqdm(total=total, initial=step, unit="step", disable=not job.progress,
               dynamic_ncols=True)
    timer = (0, time.monotonic())
    loop_started = time.monotonic()
    try:
        with CtrlC(echo) as ctrl_c:
            while step < total and not ctrl_c.asked:
                epoch, index = divmod(step, per_epoch)
                if index == 0 or not order:
                    gen = torch.Generator().manual_seed(h.seed * 1000 + epoch)
                    order = torch.randperm(len(train_pairs), generator=gen).tolist()
                rows = order[index * h.batch_size : (index + 1) * h.batch_size]
                loss = model(**_batch([train_pairs[i] for i in rows], pad_id, device)).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                state["step"] = step
                state["epoch_loss"][0] += loss.item()
                state["epoch_loss"][1] += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1,
                                loss=f"{state['epoch_loss'][0] / state['epoch_loss'][1]:.3f}")
                timer = _estimate(timer, step, total, device, precision, bar.write if
                                  job.progress else echo)
                if step % per_epoch == 0:
                    mean = state["epoch_loss"][0] / state["epoch_loss"][1]
                    state["losses"].append({
                        "epoch": epoch + 1, "train_loss": round(mean, 4),
                        "eval_loss": eval_loss(model, held_pairs, pad_id, device,
                                               h.batch_size)})
                    state["epoch_loss"] = [0.0, 0]
                    if step < total:
                        _save(job, model, optimizer, scheduler, state, loop_started)
    finally:
        bar.close()
    if step < total:
        _save(job, model, optimizer, scheduler, state, loop_started)
        raise TrainingInterrupted(
            f"stopped at step {step} of {total}; the checkpoint is in {job.out / CHECKPOINT}: "
            f"run the same command with --resume to continue")
    state["train_s"] = round(state["train_s"] + time.monotonic() - loop_started, 1)
    after = {"eval_loss": eval_loss(model, held_pairs, pad_id, device, h.batch_size),
             **delivery_checks(model, tokenizer, checked, device, job.decoding)}
    return _finish(job, model, state, after, time.monotonic() - started)


def _save(job: Job, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any],
          loop_started: float) -> None:
    saved = dict(state, train_s=round(state["train_s"] + time.monotonic() - loop_started, 1))
    checkpoint.save(job.out, model, optimizer, scheduler, saved)


def _estimate(timer: tuple[int, float], step: int, total: int, device: str, precision: str,
              say: Echo) -> tuple[int, float]:
    """After the first step (warm-up), time ``ESTIMATE_STEPS`` steps and say how long is left."""
    first, since = timer
    if first == 0:
        return step, time.monotonic()  # the clock starts after this run's first step
    if step - first != ESTIMATE_STEPS:
        return timer
    per_step = (time.monotonic() - since) / ESTIMATE_STEPS
    say(f"measured {per_step:.2f} s a step on {device} ({precision}): about "
        f"{_duration(per_step * (total - step))} for the {total - step} steps left")
    return timer


def _finish(job: Job, model: Any, state: dict[str, Any], after: dict[str, Any],
            seconds: float) -> dict[str, Any]:
    """The adapter and training.json in ``job.out``; the checkpoint removed."""
    before = state["before"]
    samples = [{"prompt": b["prompt"], "before": b["text"], "after": a["text"],
                "before_problems": b["problems"], "after_problems": a["problems"]}
               for b, a in zip(before["samples"], after["samples"], strict=True)]
    record = {
        "format": FORMAT, "name": state["name"], "base": state["base"], "data": state["data"],
        "hyperparameters": state["hyperparameters"], "device": state["device"],
        "precision": state["precision"], "steps": state["total_steps"],
        "resumed_at": state["resumed_at"], "losses": state["losses"],
        "eval_loss": {"before": before["eval_loss"], "after": after["eval_loss"]},
        "delivery_checks": {
            "prompts": after["prompts"],
            "pass_rate": {"before": before["pass_rate"], "after": after["pass_rate"]},
            "passed": {"before": before["passed"], "after": after["passed"]}},
        "samples": samples, "train_s": state["train_s"],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    model.save_pretrained(job.out)
    write_json(job.out / TRAINING_JSON, record)
    shutil.rmtree(job.out / CHECKPOINT, ignore_errors=True)
    log.info("trained %s in %.0fs", job.out, seconds)
    return record
