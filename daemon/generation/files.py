"""The model files on disk: layout, what is installed, and ``pull`` (hub or local dir).

``models_dir`` holds three directories::

    base/      the base model as pulled (config, tokenizer, *.safetensors)
    adapter/   the character LoRA (adapter_config.json + adapter_model.safetensors)
    int8/      the device artifact made by ``chime model build`` (chime.json says how)

Every directory has a ``source.json`` (where it came from, the revision, sha256 of each file).
Nothing here imports torch; converting a pickled ``.bin`` does, once, at pull time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import GenerationError

log = logging.getLogger("daemon.generation")

ARTIFACT_FORMAT = "chime-int8/1"
BASE_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json"]
ADAPTER_FILES = ["adapter_config.json", "training.json"]  # training.json: chime model train
REQUIRED = {
    "base": ["config.json", "tokenizer.json"],
    "adapter": ["adapter_config.json", "adapter_model.safetensors"],
    "int8": ["chime.json", "config.json", "tokenizer.json", "model.safetensors"],
}


@dataclass(frozen=True)
class ModelFiles:
    """Where the model's parts live under ``root`` (the configured models directory)."""

    root: Path

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def artifact(self) -> Path:
        return self.root / "int8"

    def missing(self, part: str) -> str | None:
        """Why ``part`` (base, adapter, int8) is not usable, or None when it is."""
        folder = self.root / part
        if not folder.is_dir():
            return f"{folder} does not exist"
        for name in REQUIRED[part]:
            if not (folder / name).is_file():
                return f"{folder / name} is missing"
        if part == "base" and not weight_files(folder):
            return f"{folder} has no *.safetensors weights"
        if part == "int8":
            meta = self.artifact_meta()
            if meta.get("format") != ARTIFACT_FORMAT:
                return f"{folder} is not a {ARTIFACT_FORMAT} artifact (rebuild it)"
            if not meta.get("merged") and self.missing("adapter"):
                return f"{folder} was built without merging, and the adapter is missing"
        return None

    def artifact_meta(self) -> dict[str, Any]:
        """The artifact's chime.json ({} when absent or unreadable)."""
        try:
            data = json.loads((self.artifact / "chime.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_artifact_meta(self, updates: dict[str, Any]) -> None:
        meta = {**self.artifact_meta(), **updates}
        write_json(self.artifact / "chime.json", meta)

    def usable(self, backend: str) -> str | None:
        """Why ``backend`` cannot run from these files, or None when it can. The daemon does
        not know about CUDA (it never imports torch): for ``auto`` a GPU is assumed possible."""
        return choose_backend(self, backend, "auto", cuda=None).problem


@dataclass(frozen=True)
class Choice:
    """What runs: backend and device, why, and what keeps it from running (None: nothing)."""

    backend: str
    device: str
    why: str
    problem: str | None = None


def choose_backend(files: ModelFiles, backend: str, device: str, cuda: bool | None,
                   bnb_problem: str | None = None) -> Choice:
    """The one decision of what ``[model] backend``/``device`` mean here (worker, doctor,
    daemon all ask this). ``cuda``: a CUDA GPU is usable (None: not known, maybe);
    ``bnb_problem``: why bitsandbytes cannot run on it, None when it can.

    ``auto``: CUDA + bitsandbytes + pulled base/adapter → bnb-int8; CUDA without a working
    bitsandbytes and no artifact → bf16 on the GPU; else the int8 artifact → torch-int8 on the
    CPU; else nothing, with the command that fixes it.
    """
    gpu = cuda is not False
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    pair = files.missing("base") or files.missing("adapter")
    artifact = files.missing("int8")
    if backend != "auto":
        problem = artifact if backend == "torch-int8" else pair
        return Choice(backend, device, f"configured backend {backend}", problem)
    if gpu and device != "cpu" and not pair:
        if bnb_problem is None:
            return Choice("bnb-int8", "cuda", "CUDA and bitsandbytes are available")
        if artifact:
            return Choice("bf16", "cuda", f"CUDA, bitsandbytes unusable ({bnb_problem}), "
                          "no int8 artifact")
    if artifact is None:
        return Choice("torch-int8", "cpu", "int8 artifact built; runs on the CPU")
    if pair:
        return Choice("torch-int8", "cpu", "nothing installed", f"no model installed: "
                      f"{artifact}; {pair}; run `chime model pull` and `chime model build`")
    return Choice("torch-int8", "cpu", "no int8 artifact", f"no usable model for backend auto: "
                  f"{artifact}; run `chime model build` (or set [model] backend = \"bf16\")")


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("adapter"))


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dir_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


# ---- pull ---------------------------------------------------------------------------------


def _wanted(names: list[str], part: str) -> list[str]:
    """The files of a repository that ``part`` needs (weights: safetensors, else the pickle)."""
    keep = [n for n in names if n in (BASE_FILES if part == "base" else ADAPTER_FILES)]
    if part == "base":
        weights = [n for n in names if n.endswith(".safetensors") or (n.endswith(".index.json")
                   and "safetensors" in n)]
        return keep + (weights or [n for n in names if n == "pytorch_model.bin"])
    stored = "adapter_model.safetensors"
    return keep + ([stored] if stored in names else
                   [n for n in names if n == "adapter_model.bin"])


Fetch = Callable[[str, Path], None]


def _hub_source(repo: str, revision: str | None) -> tuple[list[str], dict[str, str], str, Fetch]:
    """List a hub repository and return (names, sha256 by name, revision, fetch)."""
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise GenerationError("huggingface_hub is missing: pip install 'chime-reminder[llm]'") \
            from exc
    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    except Exception as exc:  # the hub client raises many kinds
        raise GenerationError(f"cannot reach {repo} on the hub: {exc}".splitlines()[0]) from exc
    sums = {s.rfilename: s.lfs.sha256 for s in info.siblings or [] if s.lfs is not None}
    names = [s.rfilename for s in info.siblings or []]
    sha = info.sha or revision or "main"

    def fetch(name: str, dest: Path) -> None:
        try:
            got = hf_hub_download(repo, name, revision=sha, local_dir=dest.parent)
        except Exception as exc:
            raise GenerationError(f"download of {repo}/{name} failed: {exc}".splitlines()[0]) \
                from exc
        if Path(got) != dest:
            shutil.move(got, dest)

    return names, sums, sha, fetch


def _local_source(folder: Path) -> tuple[list[str], dict[str, str], str, Fetch]:
    def fetch(name: str, dest: Path) -> None:
        shutil.copyfile(folder / name, dest)

    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    return names, {}, "local", fetch


def pull(source: str, part: str, files: ModelFiles, revision: str | None = None) -> dict[str, Any]:
    """Fetch ``part`` (base or adapter) from a hub id or a local dir into ``files``; verified.

    A pickled ``.bin`` is converted to safetensors here, once, and not kept.
    """
    local = Path(source).expanduser()
    names, sums, sha, fetch = (_local_source(local) if local.is_dir()
                               else _hub_source(source, revision))
    wanted = _wanted(names, part)
    if not any(n.endswith((".safetensors", ".bin")) for n in wanted):
        raise GenerationError(f"{source} has no {part} weights (looked for safetensors or .bin)")
    dest = files.root / part
    tmp = files.root / f".{part}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    record: dict[str, Any] = {"source": source, "revision": sha, "files": {},
                              "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for name in wanted:
        target = tmp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fetch(name, target)
        digest = sha256(target)
        if name in sums and sums[name] != digest:
            raise GenerationError(f"{source}/{name}: sha256 mismatch (got {digest[:12]}…)")
        record["files"][name] = digest
    for name in [n for n in wanted if n.endswith(".bin")]:
        converted = convert_pickle(tmp / name)
        record["converted"] = {name: {"sha256": record["files"].pop(name), "to": converted.name}}
        record["files"][converted.name] = sha256(converted)
    shutil.rmtree(tmp / ".cache", ignore_errors=True)
    write_json(tmp / "source.json", record)
    if part == "base" and not weight_files(tmp):
        raise GenerationError(f"{source} has no usable weights")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    log.info("pulled %s %s (%s) into %s", part, source, sha, dest)
    return record


def convert_pickle(path: Path) -> Path:
    """Turn a pickled state dict into safetensors (restricted unpickler), delete the pickle."""
    import torch
    from safetensors.torch import save_file

    target = path.with_name(path.name.replace("pytorch_model.bin", "model.safetensors")
                            .replace(".bin", ".safetensors"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GenerationError(f"cannot read {path.name}: {exc}".splitlines()[0]) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GenerationError(f"{path.name} is not a state dict of tensors")
    tensors: dict[str, Any] = {}
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    for key, value in state.items():  # a tied copy (lm_head = embeddings) is stored once
        spot = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if spot not in seen:
            seen.add(spot)
            tensors[key] = value.contiguous()
    save_file(tensors, str(target), metadata={"format": "pt", "converted_from": path.name})
    path.unlink()
    return target
