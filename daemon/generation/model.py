"""Loading the character model on every backend, and building the int8 device artifact.

Backends: ``bnb-int8`` (bitsandbytes ``load_in_8bit``, llm_int8_threshold 6.0; CUDA boards),
``torch-int8`` (the artifact from ``build``, CPU, mapped — no fp32 copy ever exists),
``bf16`` and ``fp32`` (transformers + the PEFT adapter, unmerged). ``auto`` picks what this
machine can run and says why. Imported only by the worker process and ``chime model build``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from daemon.context.prompt import END_MARKER
from daemon.errors import GenerationError
from daemon.generation import int8
from daemon.generation.files import ARTIFACT_FORMAT, ModelFiles, weight_files, write_json
from daemon.generation.vocab import prune_tokenizer

log = logging.getLogger("daemon.generation.model")
EMBEDDING = "transformer.word_embeddings.weight"


@dataclass
class Decoding:
    """Sampling settings, sent by the daemon from ``[model]`` (the defaults live there)."""

    temperature: float
    top_p: float
    repetition_penalty: float
    max_new_tokens: int


@dataclass
class Loaded:
    """A model ready to write: ``generate(prompt, seed)`` → (raw text, new tokens)."""

    model: Any
    tokenizer: Any
    backend: str
    device: str
    info: dict[str, Any] = field(default_factory=dict)

    def generate(self, prompt: str, seed: int, decoding: Decoding) -> tuple[str, int]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok = self.tokenizer
        enc = tok(prompt, return_tensors="pt").to(self.device)
        start = enc["input_ids"].shape[1]

        class _AtEnd(StoppingCriteria):
            def __call__(self, ids: torch.Tensor, scores: Any, **_: Any) -> bool:
                return END_MARKER in tok.decode(ids[0, start:], skip_special_tokens=True)

        torch.manual_seed(seed)
        sample = decoding.temperature > 0
        options: dict[str, Any] = {"do_sample": sample, "max_new_tokens": decoding.max_new_tokens,
                                   "repetition_penalty": decoding.repetition_penalty}
        if sample:
            options.update(temperature=decoding.temperature, top_p=decoding.top_p)
        with torch.inference_mode():
            out = self.model.generate(
                **enc, **options, stopping_criteria=StoppingCriteriaList([_AtEnd()]),
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None
                else tok.eos_token_id)
        new = out[0, start:]
        return tok.decode(new, skip_special_tokens=True), int(new.shape[0])


def resolve(files: ModelFiles, backend: str, device: str) -> tuple[str, str, str]:
    """(backend, device, why) for ``auto`` settings on this machine."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend != "auto":
        return backend, device, f"configured backend {backend}"
    pair = files.missing("base") or files.missing("adapter")
    if device == "cuda" and not pair:
        try:
            import bitsandbytes  # noqa: F401
            return "bnb-int8", device, "CUDA and bitsandbytes are available"
        except Exception as exc:  # bnb raises odd errors on unsupported GPUs
            reason = f"bitsandbytes unusable ({type(exc).__name__})"
            if files.missing("int8"):
                return "bf16", device, f"CUDA, {reason}, no int8 artifact"
    problem = files.missing("int8")
    if problem is None:
        return "torch-int8", "cpu", "int8 artifact built; runs on the CPU"
    raise GenerationError(f"no usable model for backend auto: {problem}; run `chime model "
                          "build` (or set [model] backend = \"bf16\")")


def load(files: ModelFiles, backend: str = "auto", device: str = "auto", kernel: str = "auto",
         threads: int = 0) -> Loaded:
    """Load the model for ``backend`` on ``device``; GenerationError with the reason if not."""
    if threads > 0:
        torch.set_num_threads(threads)
    backend, device, why = resolve(files, backend, device)
    log.info("backend %s on %s: %s", backend, device, why)
    if backend == "torch-int8":
        if device != "cpu":
            raise GenerationError("torch-int8 runs on the CPU only (set [model] device = cpu)")
        loaded = load_int8(files, kernel)
    else:
        loaded = load_hf(files, backend, device)
    loaded.info["why"] = why
    return loaded


def load_hf(files: ModelFiles, backend: str, device: str) -> Loaded:
    """Base + PEFT adapter (unmerged) through transformers: fp32, bf16 or bnb-int8."""
    for part in ("base", "adapter"):
        problem = files.missing(part)
        if problem:
            raise GenerationError(f"{backend} needs the pulled {part}: {problem}")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": {"fp32": torch.float32, "bf16": torch.bfloat16,
                                        "bnb-int8": torch.float16}[backend]}
    if backend == "bnb-int8":
        from transformers import BitsAndBytesConfig

        warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")  # once per matmul on CPU
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True,
                                                           llm_int8_threshold=6.0)
        kwargs["device_map"] = {"": device}
    try:
        tokenizer = AutoTokenizer.from_pretrained(files.base)
        model: Any = AutoModelForCausalLM.from_pretrained(files.base, **kwargs)
        if backend != "bnb-int8":
            model = model.to(device)
        model = PeftModel.from_pretrained(model, files.adapter).eval()
    except GenerationError:
        raise
    except Exception as exc:  # corrupt or mismatched files
        raise GenerationError(f"cannot load {backend} model: {exc}".splitlines()[0]) from exc
    return Loaded(model, tokenizer, backend, device, {"merged": False})


# ---- the int8 artifact ------------------------------------------------------------------


def read_adapter(folder: Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float]:
    """The LoRA as {module name: (A, B)} and its scaling, checked against what we support."""
    from safetensors.torch import load_file

    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        state = load_file(str(folder / "adapter_model.safetensors"))
    except Exception as exc:
        raise GenerationError(f"cannot read the adapter in {folder}: {exc}".splitlines()[0]) \
            from exc
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora") \
            or config.get("fan_in_fan_out"):
        raise GenerationError("only plain LoRA adapters are supported (no DoRA, no fan_in_fan_out)")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scaling = alpha / (rank ** 0.5 if config.get("use_rslora") else rank)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        name = key.removeprefix("base_model.model.").replace(".default", "")
        for part in ("lora_A", "lora_B"):
            marker = f".{part}.weight"
            if name.endswith(marker):
                pairs.setdefault(name[: -len(marker)], {})[part] = value
                break
        else:
            raise GenerationError(f"unsupported adapter tensor {key}")
    out = {}
    for module, ab in pairs.items():
        if set(ab) != {"lora_A", "lora_B"}:
            raise GenerationError(f"adapter is incomplete for {module}")
        canonical = module if module.startswith(("transformer.", "lm_head")) \
            else f"transformer.{module}"
        out[canonical] = (ab["lora_A"].float(), ab["lora_B"].float())
    return out, scaling


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def load_int8(files: ModelFiles, kernel: str = "auto") -> Loaded:
    """Build the model on the meta device and fill it from the mapped int8 artifact."""
    problem = files.missing("int8")
    if problem:
        raise GenerationError(f"torch-int8 needs the built artifact: {problem}")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    meta = files.artifact_meta()
    engine = int8.select_engine() if kernel in ("auto", "dynamic") else None
    if kernel == "dynamic" and engine is None:
        raise GenerationError("no quantized engine in this torch build (use kernel weight-only)")
    lora, scaling = ({}, 1.0) if meta.get("merged") else read_adapter(files.adapter)
    st = int8.SafetensorsFile(files.artifact / "model.safetensors")
    try:
        config = AutoConfig.from_pretrained(files.artifact)
        tokenizer = AutoTokenizer.from_pretrained(files.artifact)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        if meta.get("embedding", "int8") == "int8":  # the head first: lowest peak while packing
            scale = st.read(EMBEDDING.replace(".weight", ".scale"))
            head_q = st.read(EMBEDDING) if engine else st.view(EMBEDDING)
            model.lm_head = int8.Int8Linear(head_q, scale, None, engine)
            del head_q
            model.transformer.word_embeddings = int8.Int8Embedding(st.view(EMBEDDING), scale)
        else:
            table = st.view(EMBEDDING)
            model.lm_head = int8.Bf16Head(table)
            model.transformer.word_embeddings = int8.Bf16Embedding(table)
        done = {EMBEDDING, EMBEDDING.replace(".weight", ".scale")}
        for name, module in list(model.named_modules()):
            if not isinstance(module, nn.Linear) or name == "lm_head":
                continue
            keys = [f"{name}.weight", f"{name}.scale", f"{name}.bias"]
            q = st.read(keys[0]) if engine else st.view(keys[0])
            bias = st.read(keys[2]) if keys[2] in st else None
            layer: nn.Module = int8.Int8Linear(q, st.read(keys[1]), bias, engine)
            if name in lora:
                layer = int8.LoraLinear(layer, *lora.pop(name), scaling)
            _set_module(model, name, layer)
            done.update(keys)
            del q
            trim_memory()  # the read buffers interleave with packed weights: give them back
        if lora:
            raise GenerationError(f"adapter targets unknown layers: {sorted(lora)[:3]}")
        rest = {k: st.read(k).float() for k in st.entries
                if k not in done and not k.startswith(int8.PAD)}
        model.load_state_dict(rest, strict=False, assign=True)
    except GenerationError:
        raise
    except Exception as exc:
        raise GenerationError(f"cannot load the int8 artifact: {exc}".splitlines()[0]) from exc
    finally:
        st.close()
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise GenerationError(f"the int8 artifact lacks {left[:3]}")
    model.eval()
    info = {"merged": bool(meta.get("merged")), "engine": engine or "weight-only",
            "embedding": meta.get("embedding", "int8"), "vocab_size": config.vocab_size,
            "machine": platform.machine()}
    return Loaded(model, tokenizer, "torch-int8", "cpu", info)


def build(files: ModelFiles, merge: bool = True, embedding: str = "int8",
          vocab: int = 0, chunk_rows: int = 8192) -> dict[str, Any]:
    """Make ``files.artifact`` from the pulled base and adapter, streaming one tensor at a time.

    Linear layers become int8 per output channel (LoRA merged in first when ``merge``); the
    tied embedding/output matrix int8 per row (or bf16); ``vocab`` > 0 prunes the vocabulary
    to about that many tokens used by Chinese and English text (tokenizer rewritten to match).
    """
    for part in ("base", "adapter"):
        problem = files.missing(part)
        if problem:
            raise GenerationError(f"build needs the pulled {part}: {problem}")
    started = time.monotonic()
    sources: dict[str, int8.SafetensorsFile] = {}
    for path in weight_files(files.base):
        st = int8.SafetensorsFile(path)
        for key in st.entries:
            canonical = key if key.startswith(("transformer.", "lm_head")) else f"transformer.{key}"
            sources[canonical] = st
    names = {k: k if k in sources[k].entries else k.removeprefix("transformer.") for k in sources}
    config = json.loads((files.base / "config.json").read_text(encoding="utf-8"))
    if EMBEDDING not in sources:
        raise GenerationError("the base model has no word embeddings; is it a BLOOM model?")
    if not config.get("tie_word_embeddings", True):
        raise GenerationError("only models with a tied output layer are supported")
    lora, scaling = read_adapter(files.adapter) if merge else ({}, 1.0)
    tmp = files.root / ".int8.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer_json = json.loads((files.base / "tokenizer.json").read_text(encoding="utf-8"))
    keep: torch.Tensor | None = None
    if vocab:
        tokenizer_json, kept = prune_tokenizer(tokenizer_json, vocab)
        keep = torch.tensor(kept)
    _save_tokenizer(files.base, tmp, tokenizer_json)

    def shape(key: str) -> list[int]:
        return list(sources[key].entries[names[key]]["shape"])

    vocab_rows = len(keep) if keep is not None else shape(EMBEDDING)[0]
    plan: list[tuple[str, torch.dtype, list[int]]] = []
    big = [k for k in sources if len(shape(k)) == 2 and k != "lm_head.weight"]
    emb_dtype = torch.int8 if embedding == "int8" else torch.bfloat16
    for key in big:
        rows = vocab_rows if key == EMBEDDING else shape(key)[0]
        plan.append((key, emb_dtype if key == EMBEDDING else torch.int8, [rows, shape(key)[1]]))
        if plan[-1][1] == torch.int8:
            plan.append((key.replace(".weight", ".scale"), torch.float32, [rows]))
    small = [k for k in sources if len(shape(k)) != 2]
    plan += [(k, torch.float32, shape(k)) for k in small]
    order = {torch.int8: 0, torch.float32: 1, torch.bfloat16: 2}  # scales known after weights
    plan.sort(key=lambda p: order[p[1]])
    plan, sizes = int8.aligned(plan)
    writer = int8.SafetensorsWriter(tmp / "model.safetensors", plan, {"format": ARTIFACT_FORMAT})
    scales: dict[str, torch.Tensor] = {}
    try:
        for name, dtype, _ in plan:
            if name.startswith(int8.PAD):  # kernels want their weights aligned in the mapped file
                writer.write(name, torch.zeros(sizes[name], dtype=torch.int8))
            elif name.endswith(".scale"):
                writer.write(name, scales.pop(name))
            elif name in small:
                writer.write(name, sources[name].read(names[name]).float())
            elif name == EMBEDDING:
                _write_embedding(writer, sources[name], names[name], keep, dtype, scales,
                                 chunk_rows)
            else:
                weight = sources[name].read(names[name]).float()
                module = name.removesuffix(".weight")
                if module in lora:
                    a, b = lora.pop(module)
                    weight += scaling * (b @ a)
                q, scales[name.replace(".weight", ".scale")] = int8.quantize_rows(weight)
                del weight
                writer.write(name, q)
    finally:
        writer.close()
    if lora:
        raise GenerationError(f"adapter targets layers the base lacks: {sorted(lora)[:3]}")
    _write_config(config, tmp, keep, tokenizer_json)
    meta = {"format": ARTIFACT_FORMAT, "merged": merge, "embedding": embedding,
            "vocab_size": vocab_rows, "vocab_pruned": bool(vocab),
            "original_vocab_size": shape(EMBEDDING)[0],
            "base": _source(files.base), "adapter": _source(files.adapter),
            "torch": torch.__version__, "built_on": platform.machine(),
            "build_s": round(time.monotonic() - started, 1),
            "size_bytes": (tmp / "model.safetensors").stat().st_size}
    write_json(tmp / "chime.json", meta)
    shutil.rmtree(files.artifact, ignore_errors=True)
    tmp.replace(files.artifact)
    log.info("built %s in %.1fs", files.artifact, meta["build_s"])
    return meta


def _write_embedding(writer: int8.SafetensorsWriter, st: int8.SafetensorsFile, name: str,
                     keep: torch.Tensor | None, dtype: torch.dtype,
                     scales: dict[str, torch.Tensor], chunk_rows: int) -> None:
    """Quantize (or cast) the embedding in row blocks: never the whole fp32 matrix at once."""
    rows = st.entries[name]["shape"][0]
    parts: list[torch.Tensor] = []

    def blocks() -> Iterator[torch.Tensor]:
        for start in range(0, rows, chunk_rows):
            block = st.read(name, slice(start, start + chunk_rows)).float()
            if keep is not None:
                block = block[keep[(keep >= start) & (keep < start + chunk_rows)] - start]
            if dtype == torch.int8:
                q, scale = int8.quantize_rows(block)
                parts.append(scale)
                yield q
            else:
                yield block.to(torch.bfloat16)

    writer.write_rows(EMBEDDING, blocks())
    if parts:
        scales[EMBEDDING.replace(".weight", ".scale")] = torch.cat(parts)


def _save_tokenizer(base: Path, dest: Path, tokenizer_json: dict[str, Any]) -> None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).is_file():
            shutil.copyfile(base / name, dest / name)
    write_json(dest / "tokenizer.json", tokenizer_json)
    cfg_path = dest / "tokenizer_config.json"
    if cfg_path.is_file():  # ids in added_tokens_decoder follow the pruned vocabulary
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        ids = {t["content"]: t["id"] for t in tokenizer_json.get("added_tokens", [])}
        decoder = cfg.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            cfg["added_tokens_decoder"] = {str(ids[v["content"]]): v for v in decoder.values()
                                           if v.get("content") in ids}
        write_json(cfg_path, cfg)


def _write_config(config: dict[str, Any], dest: Path, keep: torch.Tensor | None,
                  tokenizer_json: dict[str, Any]) -> None:
    config = dict(config)
    if keep is not None:
        new_id = {int(old): new for new, old in enumerate(keep.tolist())}
        config["vocab_size"] = len(new_id)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
            if isinstance(config.get(key), int):
                config[key] = new_id.get(config[key])
    config.pop("quantization_config", None)
    write_json(dest / "config.json", config)
    gen = dest.parent / "base" / "generation_config.json"
    if gen.is_file() and keep is None:
        shutil.copyfile(gen, dest / "generation_config.json")


def _source(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / "source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"path": str(folder)}
    return {"source": record.get("source"), "revision": record.get("revision")}


def teacher_forced_argmax(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """The model's most likely next token at every position of ``ids`` (1 × n)."""
    with torch.inference_mode():
        return model(input_ids=ids).logits[0].argmax(-1)


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB.

    Linux: ``VmHWM`` (``ru_maxrss`` would carry the parent's peak across fork + exec).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if platform.system() == "Darwin" else 1024), 1)


def trim_memory() -> None:
    """Give freed heap pages back to the system (glibc ``malloc_trim``)."""
    if os.name == "posix":
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
