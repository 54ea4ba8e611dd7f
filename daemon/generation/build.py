"""``chime model build``: the int8 device artifact from the pulled base model and adapter.

Streams one tensor at a time (the embedding in row blocks), so it needs well under 1 GB and
runs on the board itself. Linear layers become int8 per output channel (the LoRA merged in
first, unless kept separate); the tied embedding/output matrix int8 per row (or bf16); every
tensor starts on a 64-byte boundary. Imported only by ``chime model build`` and the tests.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from daemon.errors import GenerationError
from daemon.generation import int8, tokens
from daemon.generation.files import ARTIFACT_FORMAT, ModelFiles, weight_files, write_json
from daemon.generation.model import EMBEDDING, read_adapter
from daemon.generation.vocab import prune_tokenizer

log = logging.getLogger("daemon.generation.build")
Plan = list[tuple[str, torch.dtype, list[int]]]


@dataclass
class Base:
    """The base model's tensors by canonical name (``transformer.…``), across its files."""

    files: dict[str, int8.SafetensorsFile]  # canonical name -> the file holding it
    names: dict[str, str]  # canonical name -> the name inside that file

    def shape(self, key: str) -> list[int]:
        return list(self.files[key].entries[self.names[key]]["shape"])

    def read(self, key: str) -> torch.Tensor:
        return self.files[key].read(self.names[key])


def open_base(folder: Path, stack: ExitStack) -> Base:
    """Index the base model's safetensors files (closed with ``stack``)."""
    files: dict[str, int8.SafetensorsFile] = {}
    names: dict[str, str] = {}
    for path in weight_files(folder):
        st = stack.enter_context(int8.SafetensorsFile(path))
        for key in st.entries:
            canonical = key if key.startswith(("transformer.", "lm_head")) else f"transformer.{key}"
            files[canonical], names[canonical] = st, key
    if EMBEDDING not in files:
        raise GenerationError("the base model has no word embeddings; is it a BLOOM model?")
    return Base(files, names)


def build(files: ModelFiles, merge: bool = True, embedding: str = "int8",
          vocab: int = 0, chunk_rows: int = 8192) -> dict[str, Any]:
    """Make ``files.artifact`` from the pulled base and adapter; its chime.json metadata.

    ``merge``: the LoRA goes into the weights before quantizing (else it is applied at load
    time); ``embedding``: ``int8`` or ``bf16``; ``vocab`` > 0 prunes the vocabulary to about
    that many tokens used by Chinese and English text (tokenizer rewritten to match).
    """
    for part in ("base", "adapter"):
        problem = files.missing(part)
        if problem:
            raise GenerationError(f"build needs the pulled {part}: {problem}")
    started = time.monotonic()
    config = json.loads((files.base / "config.json").read_text(encoding="utf-8"))
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
    tokens.save(tmp)  # the worker's compact tokenizer (tokens.py)
    with ExitStack() as stack:
        base = open_base(files.base, stack)
        vocab_rows = len(keep) if keep is not None else base.shape(EMBEDDING)[0]
        plan, small = _plan(base, vocab_rows, embedding)
        _write_weights(tmp / "model.safetensors", plan, small, base, lora, scaling, keep,
                       chunk_rows)
        original_vocab = base.shape(EMBEDDING)[0]
    if lora:
        raise GenerationError(f"adapter targets layers the base lacks: {sorted(lora)[:3]}")
    _write_config(config, tmp, keep)
    meta = {"format": ARTIFACT_FORMAT, "merged": merge, "embedding": embedding,
            "vocab_size": vocab_rows, "vocab_pruned": bool(vocab),
            "original_vocab_size": original_vocab,
            "base": _source(files.base), "adapter": _source(files.adapter),
            "torch": torch.__version__, "built_on": platform.machine(),
            "build_s": round(time.monotonic() - started, 1),
            "size_bytes": (tmp / "model.safetensors").stat().st_size}
    write_json(tmp / "chime.json", meta)
    shutil.rmtree(files.artifact, ignore_errors=True)
    tmp.replace(files.artifact)
    log.info("built %s in %.1fs", files.artifact, meta["build_s"])
    return meta


def _plan(base: Base, vocab_rows: int, embedding: str) -> tuple[Plan, set[str]]:
    """The artifact's tensors in file order (int8 weights, then fp32 scales and small
    tensors, then a bf16 embedding), with alignment padding; and the names of the small ones."""
    plan: Plan = []
    matrices = [k for k in base.files if len(base.shape(k)) == 2 and k != "lm_head.weight"]
    emb_dtype = torch.int8 if embedding == "int8" else torch.bfloat16
    for key in matrices:
        rows = vocab_rows if key == EMBEDDING else base.shape(key)[0]
        dtype = emb_dtype if key == EMBEDDING else torch.int8
        plan.append((key, dtype, [rows, base.shape(key)[1]]))
        if dtype == torch.int8:
            plan.append((key.replace(".weight", ".scale"), torch.float32, [rows]))
    small = {k for k in base.files if len(base.shape(k)) != 2}
    plan += [(k, torch.float32, base.shape(k)) for k in sorted(small)]
    order = {torch.int8: 0, torch.float32: 1, torch.bfloat16: 2}  # scales known after weights
    plan.sort(key=lambda p: order[p[1]])
    return int8.aligned(plan)[0], small


def _write_weights(path: Path, plan: Plan, small: set[str], base: Base,
                   lora: dict[str, tuple[torch.Tensor, torch.Tensor]], scaling: float,
                   keep: torch.Tensor | None, chunk_rows: int) -> None:
    """Quantize and write every planned tensor, one at a time (``lora`` is consumed)."""
    writer = int8.SafetensorsWriter(path, plan, {"format": ARTIFACT_FORMAT})
    scales: dict[str, torch.Tensor] = {}
    try:
        for name, dtype, shape in plan:
            if name.startswith(int8.PAD):  # kernels want their weights aligned in the mapped file
                writer.write(name, torch.zeros(shape, dtype=torch.int8))
            elif name.endswith(".scale"):
                writer.write(name, scales.pop(name))
            elif name in small:
                writer.write(name, base.read(name).float())
            elif name == EMBEDDING:
                _write_embedding(writer, base, keep, dtype, scales, chunk_rows)
            else:
                weight = base.read(name).float()
                module = name.removesuffix(".weight")
                if module in lora:
                    a, b = lora.pop(module)
                    weight += scaling * (b @ a)
                q, scales[name.replace(".weight", ".scale")] = int8.quantize_rows(weight)
                del weight
                writer.write(name, q)
    finally:
        writer.close()


def _write_embedding(writer: int8.SafetensorsWriter, base: Base, keep: torch.Tensor | None,
                     dtype: torch.dtype, scales: dict[str, torch.Tensor],
                     chunk_rows: int) -> None:
    """Quantize (or cast) the embedding in row blocks: never the whole fp32 matrix at once."""
    st, name = base.files[EMBEDDING], base.names[EMBEDDING]
    rows = base.shape(EMBEDDING)[0]
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


def _write_config(config: dict[str, Any], dest: Path, keep: torch.Tensor | None) -> None:
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
