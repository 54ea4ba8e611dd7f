"""Doctor checks for the model: torch, the GPU, the int8 backend, model files and memory.

torch is probed in a child process, so a broken CUDA install cannot take the doctor down and
the CLI process stays free of torch.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from daemon.cli.doctor.report import OK, WARNING, Check, Doctor
from daemon.config import Settings
from daemon.generation.files import ModelFiles, choose_backend, sha256

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
HASH_LIMIT = 64 * 1024 * 1024  # bigger files are hashed only with --hashes
# Resident bytes per parameter: 2-D projection weights, and everything else (embeddings,
# norms), which the int8 backends keep in fp16 (bitsandbytes) or fp32 (torch on the CPU).
BYTES_PER_WEIGHT = {"bnb-int8": 1.0, "torch-int8": 1.0, "bf16": 2.0, "fp32": 4.0}
BYTES_PER_OTHER = {"bnb-int8": 2.0, "torch-int8": 4.0, "bf16": 2.0, "fp32": 4.0}


PROBE = """
import json, sys
info = {}
try:
    import torch
except Exception as exc:
    print(json.dumps({"torch": None, "error": f"{type(exc).__name__}: {exc}"})); sys.exit()
info["torch"] = torch.__version__
info["cuda"] = torch.cuda.is_available()
info["cuda_version"] = torch.version.cuda
if info["cuda"]:
    info["gpu"] = torch.cuda.get_device_name(0)
    info["capability"] = "%d.%d" % torch.cuda.get_device_capability(0)
try:
    from torch.ao.quantization import quantize_dynamic
    m = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(16, 16)), {torch.nn.Linear},
                         dtype=torch.qint8)
    m(torch.randn(1, 16))
    info["cpu_int8"] = "ok"
except Exception as exc:
    info["cpu_int8"] = f"{type(exc).__name__}: {exc}"
try:
    import bitsandbytes as bnb
    info["bitsandbytes"] = bnb.__version__
except Exception as exc:
    info["bitsandbytes"] = None
    info["bnb_error"] = f"{type(exc).__name__}: {exc}"
if info["cuda"] and info.get("bitsandbytes"):
    try:
        layer = bnb.nn.Linear8bitLt(64, 64, has_fp16_weights=False).cuda()
        layer(torch.randn(2, 64, device="cuda", dtype=torch.float16))
        torch.cuda.synchronize()
        info["bnb_int8"] = "ok"
    except Exception as exc:
        info["bnb_int8"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(info))
"""


def probe(doc: Doctor) -> dict[str, Any]:
    """What a fresh interpreter finds of torch, CUDA and the int8 backends (once per run)."""
    if doc.torch_info is None:
        doc.torch_info = probe_torch()
    return doc.torch_info


def probe_torch(timeout: float = 300) -> dict[str, Any]:
    """torch, CUDA and the int8 backends, as seen by a fresh interpreter."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"torch": None, "error": f"importing torch took over {timeout:.0f} s"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"torch": None, "error": f"the torch probe crashed: {tail[:200]}"}


def check_torch(doc: Doctor) -> Check:
    info = probe(doc)
    if info.get("torch") is None:
        status = WARNING if doc.settings is None or doc.settings.model.enabled else OK
        return Check("torch", status, f"no torch ({info.get('error', '')}): template text only",
                     "pip install torch --index-url https://download.pytorch.org/whl/cpu && "
                     "pip install 'chime-reminder[llm]'", info)
    return Check("torch", OK, f"torch {info['torch']}", data=info)


def check_gpu(doc: Doctor) -> Check:
    info = probe(doc)
    if info.get("torch") is None:
        return Check("gpu", WARNING, "unknown (no torch)", "install torch first")
    if not info.get("cuda"):
        return Check("gpu", WARNING, "no CUDA GPU: the model runs on the CPU (torch-int8)",
                     "on a Jetson Orin use docker/Dockerfile.orin with --runtime nvidia; "
                     "the original Nano has no usable int8 GPU path", info)
    return Check("gpu", OK, f"{info['gpu']} (sm {info['capability']}, CUDA "
                 f"{info['cuda_version']})", data=info)


def backend_choice(s: Settings | None, info: dict[str, Any]) -> str:
    """The backend the worker would choose, from the probe's facts (``choose_backend``)."""
    files = ModelFiles(s.models_dir) if s else ModelFiles(Path("/nonexistent"))
    bnb = info.get("bnb_int8") if info.get("bitsandbytes") else info.get("bnb_error", "absent")
    choice = choose_backend(files, s.model.backend if s else "auto",
                            s.model.device if s else "auto", bool(info.get("cuda")),
                            None if bnb == "ok" else str(bnb))
    return choice.backend


def check_int8(doc: Doctor) -> Check:
    info = probe(doc)
    if info.get("torch") is None:
        return Check("int8", WARNING, "no int8 backend without torch", "install torch first")
    backend = backend_choice(doc.settings, info)
    if backend == "bnb-int8":
        result = info.get("bnb_int8") if info.get("cuda") else "no CUDA GPU"
        if info.get("bitsandbytes") is None:
            result = info.get("bnb_error", "bitsandbytes is not installed")
        if result == "ok":
            return Check("int8", OK, f"bnb-int8 (bitsandbytes {info['bitsandbytes']}) works")
        sm = info.get("capability", "?").replace(".", "")
        return Check("int8", WARNING, f"bnb-int8 fails: {result}",
                     f"build bitsandbytes for sm_{sm} (docker/Dockerfile.orin does) or set "
                     "[model] backend = \"torch-int8\"")
    if backend == "torch-int8":
        if info.get("cpu_int8") == "ok":
            return Check("int8", OK, "torch-int8 on the CPU works")
        return Check("int8", WARNING, f"torch-int8 fails: {info.get('cpu_int8')}",
                     "install a current CPU torch, or set [model] backend = \"fp32\"")
    return Check("int8", OK, f"backend {backend} (no int8)")


# --- model files and memory -------------------------------------------------------------

def model_files(s: Settings) -> list[Path]:
    root = s.models_dir
    if not root.is_dir():
        return []
    names = ("adapter_config.json", "config.json")
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name in names))


def check_model_files(doc: Doctor) -> Check:
    s = doc.settings
    assert s is not None
    if not s.model.enabled:
        return Check("model files", OK, "the model is disabled ([model] enabled = false)")
    files = model_files(s)
    weights = [p for p in files if p.suffix in WEIGHT_SUFFIXES]
    if not weights:
        return Check("model files", WARNING, f"no model weights under {s.models_dir}: "
                     "reminders use the template text",
                     f"put {s.model.base} and {s.model.adapter} under {s.models_dir}")
    listing = {}
    for p in files:
        size = p.stat().st_size
        entry: dict[str, Any] = {"bytes": size}
        if size <= HASH_LIMIT or doc.hashes:
            entry["sha256"] = sha256(p)
        listing[str(p.relative_to(s.models_dir))] = entry
    total = sum(e["bytes"] for e in listing.values()) / 2**20
    return Check("model files", OK, f"{len(weights)} weight file(s), {total:.0f} MiB under "
                 f"{s.models_dir}", data=listing)


def safetensors_counts(path: Path) -> tuple[int, int]:
    """(parameters in 2-D projection weights, all other parameters) from the file's header."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    linear = other = 0
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in spec["shape"]:
            count *= dim
        is_linear = len(spec["shape"]) == 2 and "embed" not in name and "wte" not in name
        if is_linear:
            linear += count
        else:
            other += count
    return linear, other


def model_need_mb(s: Settings, backend: str) -> int | None:
    """Resident memory the model needs with this backend: what ``chime model build`` measured
    for the int8 artifact, else an estimate from the weights (weights × bytes + 20 %)."""
    from daemon.generation.supervisor import measured_need_mb

    measured = measured_need_mb(s) if backend == "torch-int8" else None
    if measured is not None:
        return measured
    linear = other = 0
    for p in model_files(s):
        if p.suffix == ".safetensors":
            a, b = safetensors_counts(p)
            linear, other = linear + a, other + b
    if not linear + other:
        return None
    size = linear * BYTES_PER_WEIGHT.get(backend, 4.0) + other * BYTES_PER_OTHER.get(backend, 4.0)
    return int(size * 1.2 / 2**20)


def check_memory(doc: Doctor) -> Check:
    import psutil

    s = doc.settings
    assert s is not None
    mem = psutil.virtual_memory()
    available, total = mem.available // 2**20, mem.total // 2**20
    backend = backend_choice(s, probe(doc)) if s.model.enabled else "fp32"
    need = model_need_mb(s, backend) if s.model.enabled else None
    data = {"available_mb": available, "total_mb": total, "need_mb": need, "backend": backend}
    if need is None:
        return Check("memory", OK, f"{available} MiB free of {total} MiB (model size unknown)",
                     data=data)
    spare = need + s.guards.ram_margin_mb
    if available < spare:
        return Check("memory", WARNING, f"{available} MiB free, the model needs about {need} MiB "
                     f"with {backend} (+{s.guards.ram_margin_mb} margin)",
                     "stop other programs, add swap (zram) or use a smaller model", data)
    return Check("memory", OK, f"{available} MiB free of {total} MiB; the model needs about "
                 f"{need} MiB with {backend}", data=data)
