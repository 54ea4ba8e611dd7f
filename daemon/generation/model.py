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
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from daemon.context.prompt import END_MARKER
from daemon.errors import GenerationError
from daemon.generation import bloom, int8, tokens
from daemon.generation.files import ModelFiles, choose_backend

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
    """A model ready to write: ``generate(prompt, seed)`` → (raw text, new tokens).

    ``model`` is a ``bloom.Bloom`` with a ``tokens.Codec`` (torch-int8), or a transformers
    model with its tokenizer (bnb-int8, bf16, fp32).
    """

    model: Any
    tokenizer: Any
    backend: str
    device: str
    info: dict[str, Any] = field(default_factory=dict)

    def generate(self, prompt: str, seed: int, decoding: Decoding) -> tuple[str, int]:
        if isinstance(self.model, bloom.Bloom):
            tok: tokens.Codec = self.tokenizer
            how = bloom.Sampling(decoding.temperature, decoding.top_p,
                                 decoding.repetition_penalty)
            new = bloom.generate(self.model, tok.encode(prompt), how, decoding.max_new_tokens,
                                 lambda ids: END_MARKER in tok.decode(ids), seed)
            return tok.decode(new), len(new)
        return self._generate_hf(prompt, seed, decoding)

    def _generate_hf(self, prompt: str, seed: int, decoding: Decoding) -> tuple[str, int]:
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
            options.update(temperature=decoding.temperature, top_p=decoding.top_p,
                           top_k=bloom.TOP_K)
        with torch.inference_mode():
            out = self.model.generate(
                **enc, **options, stopping_criteria=StoppingCriteriaList([_AtEnd()]),
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None
                else tok.eos_token_id)
        new = out[0, start:]
        return tok.decode(new, skip_special_tokens=True), int(new.shape[0])


def resolve(files: ModelFiles, backend: str, device: str) -> tuple[str, str, str]:
    """(backend, device, why) on this machine (``files.choose_backend`` decides)."""
    cuda = torch.cuda.is_available()
    bnb_problem = None
    if cuda and backend == "auto":
        try:
            import bitsandbytes  # noqa: F401
        except Exception as exc:  # bnb raises odd errors on unsupported GPUs
            bnb_problem = type(exc).__name__
    choice = choose_backend(files, backend, device, cuda, bnb_problem)
    if choice.problem and backend == "auto":
        raise GenerationError(choice.problem)
    return choice.backend, choice.device, choice.why


def load(files: ModelFiles, backend: str = "auto", device: str = "auto", kernel: str = "auto",
         threads: int = 0) -> Loaded:
    """Load the model for ``backend`` on ``device``; GenerationError with the reason if not."""
    tune_malloc()
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


LINEARS = ("self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h",
           "mlp.dense_4h_to_h")


def load_int8(files: ModelFiles, kernel: str = "auto") -> Loaded:
    """The artifact as a ``bloom.Bloom``: int8 layers filled from the file, no fp32 copy."""
    problem = files.missing("int8")
    if problem:
        raise GenerationError(f"torch-int8 needs the built artifact: {problem}")
    meta = files.artifact_meta()
    kernel = int8.choose_kernel(kernel)
    lora, scaling = ({}, 1.0) if meta.get("merged") else read_adapter(files.adapter)
    try:
        shape = bloom.Shape.read(files.artifact)
        with int8.SafetensorsFile(files.artifact / "model.safetensors") as st:
            net = _assemble(st, shape, meta.get("embedding", "int8"), kernel,
                            lambda name, layer: _with_lora(name, layer, lora, scaling))
        tokenizer = tokens.load(files.artifact)
    except GenerationError:
        raise
    except Exception as exc:  # corrupt or mismatched files
        raise GenerationError(f"cannot load the int8 artifact: {exc}".splitlines()[0]) from exc
    if lora:
        raise GenerationError(f"adapter targets unknown layers: {sorted(lora)[:3]}")
    engine = torch.backends.quantized.engine if kernel == "dynamic" else kernel
    info = {"merged": bool(meta.get("merged")), "kernel": kernel, "engine": engine,
            "embedding": meta.get("embedding", "int8"), "vocab_size": shape.vocab,
            "machine": platform.machine()}
    return Loaded(net.eval(), tokenizer, "torch-int8", "cpu", info)


def _with_lora(name: str, layer: nn.Module,
               lora: dict[str, tuple[torch.Tensor, torch.Tensor]], scaling: float) -> nn.Module:
    """``layer`` with its kept-separate LoRA on top, if the adapter has one (consumed)."""
    if name not in lora:
        return layer
    return int8.LoraLinear(layer, *lora.pop(name), scaling)


def _assemble(st: int8.SafetensorsFile, shape: bloom.Shape, embedding: str, kernel: str,
              wrap: Any) -> bloom.Bloom:
    """Build the model from the artifact's tensors. Linear layers use the mapped weights, or,
    for the ``dynamic`` kernel, read them and repack them on all torch threads at once."""
    head, table = _embedding(st, embedding, kernel)
    copy = kernel == "dynamic"

    def linear(name: str) -> nn.Module:
        q = st.read(f"{name}.weight") if copy else st.view(f"{name}.weight")
        bias = st.read(f"{name}.bias") if f"{name}.bias" in st else None
        layer = int8.Int8Linear(q, st.read(f"{name}.scale"), bias, kernel)
        if copy:
            del q
            trim_memory()  # the read buffers interleave with packed weights: give them back
        return layer

    def norm(name: str) -> bloom.Norm:
        return st.read(f"{name}.weight").float(), st.read(f"{name}.bias").float()

    names = [f"transformer.h.{i}.{part}" for i in range(shape.layers) for part in LINEARS]
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:  # packing frees the GIL
        layers = {n: wrap(n, layer) for n, layer in zip(names, pool.map(linear, names),
                                                         strict=True)}
    blocks = []
    for i in range(shape.layers):
        prefix = f"transformer.h.{i}"
        qkv, dense, up, down = (layers[f"{prefix}.{part}"] for part in LINEARS)
        norms = (norm(f"{prefix}.input_layernorm"), norm(f"{prefix}.post_attention_layernorm"))
        blocks.append(bloom.Block(shape, norms, qkv, dense, up, down))
    outer = (norm("transformer.word_embeddings_layernorm"), norm("transformer.ln_f"))
    return bloom.Bloom(shape, table, head, outer, blocks)


def _embedding(st: int8.SafetensorsFile, kind: str, kernel: str
               ) -> tuple[nn.Module, nn.Module]:
    """The tied output layer and input embedding, sharing the mapped matrix where they can."""
    table = st.view(EMBEDDING)
    if kind != "int8":
        return int8.Bf16Head(table), int8.Bf16Embedding(table)
    scale = st.read(EMBEDDING.replace(".weight", ".scale"))
    if kernel != "dynamic":
        return int8.Int8Linear(table, scale, None, kernel), int8.Int8Embedding(table, scale)
    head = int8.Int8Linear(st.read(EMBEDDING), scale, None, kernel)  # packed: the copy goes
    trim_memory()
    return head, int8.Int8Embedding(table, scale)


def teacher_forced_argmax(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """The model's most likely next token at every position of ``ids`` (1 × n)."""
    with torch.inference_mode():
        if isinstance(model, bloom.Bloom):
            return model(ids[0], every=True).argmax(-1)
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
    _glibc("malloc_trim", 0)


MMAP_THRESHOLD, TRIM_THRESHOLD = 1 << 20, 4 << 20


def tune_malloc() -> None:
    """Blocks of 1 MiB and more (the prompt pass's activations, the key/value cache) get their
    own mapping and go back to the system when freed. Left alone, glibc raises that threshold
    (128 KB at start) to the largest block freed so far, up to 32 MB, and the prompt pass's
    freed activations then stay in the heap: 10–15 MB more at the peak, when the weights are
    all resident. Smaller blocks (one token's logits over the full vocabulary: 0.96 MiB) are
    reused from the heap token after token, and the heap keeps up to 4 MiB free at its top so
    that they do not fault in fresh pages each token (128 KB, glibc's default for both, cost
    ~3 % of decode speed and 0.3 CPU-seconds per prompt in page faults)."""
    _glibc("mallopt", -3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (this ends the dynamic raising)
    _glibc("mallopt", -1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD


def _glibc(function: str, *args: int) -> None:
    """Call a glibc malloc tuning function; nothing on other C libraries."""
    if os.name == "posix":
        try:
            import ctypes

            getattr(ctypes.CDLL("libc.so.6"), function)(*args)
        except (OSError, AttributeError):
            pass
