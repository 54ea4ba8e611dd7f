"""Int8 tensors for the device artifact: quantize, map from disk, and run without an fp32 copy.

The artifact stores plain tensors (int8 weights + one fp32 scale per output row), so it is the
same file on x86 and ARM. At load time ``choose_kernel`` picks how the linear layers multiply:

* ``int-mm`` (default on x86): ``torch._int_mm``, oneDNN's int8 GEMM, straight on the mapped
  int8 weights; activations quantized per token (symmetric int8). Nothing is repacked, so
  loading is mapping the file.
* ``dynamic`` (default on ARM): the quantized engine's int8 GEMM (``quantized::linear_dynamic``)
  — ``qnnpack`` on ARM, ``x86``/``fbgemm`` elsewhere. Its weights are repacked once into the
  engine's layout (anonymous memory, read from the file, not mapped): seconds per GB.
* ``weight-only``: ``torch._weight_int8pack_mm`` on the mapped int8 weights (bf16 activations);
  used when neither is available.

Only this module, ``bloom.py``, ``model.py`` and ``build.py`` import torch; the daemon never
imports any of them.
"""

from __future__ import annotations

import json
import mmap
import os
import platform
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from daemon.errors import GenerationError

_DTYPES = {"I8": torch.int8, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
ARM = ("aarch64", "arm64", "armv7l", "armv8l")


def select_engine(machine: str | None = None) -> str | None:
    """Pick and set the quantized engine for this CPU (qnnpack on ARM, x86/fbgemm elsewhere)."""
    machine = (machine or platform.machine()).lower()
    supported = torch.backends.quantized.supported_engines
    prefs = ["qnnpack"] if machine in ARM else ["x86", "fbgemm", "onednn", "qnnpack"]
    for engine in prefs:
        if engine in supported:
            torch.backends.quantized.engine = engine
            return engine
    return None


KERNELS = ("int-mm", "dynamic", "weight-only")


def choose_kernel(setting: str, machine: str | None = None) -> str:
    """The kernel for ``[model] kernel`` on this CPU (``auto``: int-mm on x86, dynamic on ARM,
    weight-only without either); sets the quantized engine when the kernel uses it."""
    machine = (machine or platform.machine()).lower()
    kernel = setting
    if setting == "auto":
        kernel = "dynamic" if machine in ARM else "int-mm"
    if kernel == "dynamic" and select_engine(machine) is None:
        if setting != "auto":
            raise GenerationError("no quantized engine in this torch build (use kernel "
                                  "weight-only)")
        kernel = "weight-only"
    if kernel not in KERNELS:
        raise GenerationError(f"unknown kernel {setting!r} (one of auto, {', '.join(KERNELS)})")
    return kernel


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: ``weight ≈ q * scale[:, None]``."""
    w = weight.float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-8)
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


class SafetensorsFile:
    """A safetensors file read two ways: mapped (zero-copy views) or copied (then unmapped).

    Mapped views keep their pages in the page cache and only what is touched counts in RSS;
    copies are for weights that get repacked, so the file pages are not held twice.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                if size > 100_000_000:
                    raise ValueError("header too large")
                header = json.loads(fh.read(size))
            self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
            self.entries: dict[str, dict[str, Any]] = header
            self._base = 8 + size
            self._viewed = False
            self._fd = os.open(path, os.O_RDONLY)
            self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError, struct.error) as exc:
            raise GenerationError(f"cannot read {path}: {exc}") from exc
        end = max((e["data_offsets"][1] for e in header.values()), default=0)
        if self._base + end > len(self._map):
            raise GenerationError(f"{path} is truncated ({len(self._map)} bytes)")

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def _spec(self, name: str) -> tuple[torch.dtype, list[int], int, int]:
        try:
            entry = self.entries[name]
            dtype = _DTYPES[entry["dtype"]]
        except KeyError as exc:
            raise GenerationError(f"{self.path.name} has no usable tensor {name!r}") from exc
        begin, end = entry["data_offsets"]
        return dtype, entry["shape"], self._base + begin, end - begin

    def view(self, name: str) -> torch.Tensor:
        """A read-only view onto the mapped file (no copy)."""
        dtype, shape, offset, nbytes = self._spec(name)
        self._viewed = True
        if nbytes == 0:
            return torch.empty(shape, dtype=dtype)
        with warnings.catch_warnings():  # the map is read-only; we never write to it
            warnings.simplefilter("ignore", UserWarning)
            flat = torch.frombuffer(self._map, dtype=dtype, count=nbytes // dtype.itemsize,
                                    offset=offset)
        return flat.view(shape)

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """A private copy (optionally of some rows), read with ``pread`` rather than mapped."""
        dtype, shape, offset, nbytes = self._spec(name)
        if rows is not None:
            start, stop, _ = rows.indices(shape[0])
            row = nbytes // max(shape[0], 1)
            offset, nbytes, shape = offset + start * row, (stop - start) * row, [stop - start,
                                                                                 *shape[1:]]
        out = torch.empty(shape, dtype=dtype)
        buf = out.view(-1).view(torch.uint8).numpy().data if nbytes else None
        done = 0
        while buf is not None and done < nbytes:
            got = os.preadv(self._fd, [buf[done:]], offset + done)
            if got <= 0:
                raise GenerationError(f"{self.path} is truncated")
            done += got
        return out

    def close(self) -> None:
        """Release the file, and the mapping unless views were taken (torch does not pin the
        map: the views keep a reference to it, and it is unmapped when the last one goes)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if not self._viewed:
            self._map.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Int8Linear(nn.Module):
    """``y = x @ (q * scale).T + bias`` with int8 ``q``, on one of the ``KERNELS``."""

    weight: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                 kernel: str) -> None:
        super().__init__()
        self.out_features, self.in_features = q.shape
        self.kernel = kernel
        if kernel == "dynamic":  # repack for the quantized engine; q may be freed afterwards
            zeros = torch.zeros(q.shape[0], dtype=torch.long)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                qt = torch._make_per_channel_quantized_tensor(q, scale.double(), zeros, 0)
                self._packed = torch.ops.quantized.linear_prepack(
                    qt, None if bias is None else bias.float())
            self.reduce_range = torch.backends.quantized.engine != "qnnpack"
            return
        self.register_buffer("weight", q, persistent=False)
        self.register_buffer("scale", scale.to(torch.bfloat16 if kernel == "weight-only"
                                               else torch.float32), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features).float()
        if self.kernel == "dynamic":
            y = torch.ops.quantized.linear_dynamic(flat, self._packed, self.reduce_range)
        else:
            if self.kernel == "int-mm":  # per-token symmetric int8 activations
                x_scale = flat.abs().amax(-1, keepdim=True).clamp(min=1e-8) / 127.0
                x_q = (flat / x_scale).round_().to(torch.int8)
                y = torch._int_mm(x_q, self.weight.t()).float().mul_(x_scale).mul_(self.scale)
            else:
                y = torch._weight_int8pack_mm(flat.to(torch.bfloat16), self.weight,
                                              self.scale).float()
            if self.bias is not None:
                y.add_(self.bias)  # in place: one output-sized buffer, not three
        return y.reshape(*lead, self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, kernel={self.kernel}"


class Int8Embedding(nn.Module):
    """Row lookup in a mapped int8 matrix (only the rows used become resident)."""

    weight: torch.Tensor
    scale: torch.Tensor

    def __init__(self, q: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = q.shape
        self.register_buffer("weight", q, persistent=False)
        self.register_buffer("scale", scale.float(), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids].float() * self.scale[ids].unsqueeze(-1)


class Bf16Embedding(nn.Module):
    """Row lookup in a mapped bf16 matrix, returned as fp32."""

    weight: torch.Tensor

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight.shape
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids].float()


class Bf16Head(nn.Module):
    """The output layer on a mapped bf16 matrix (tied to ``Bf16Embedding``)."""

    weight: torch.Tensor

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.to(torch.bfloat16), self.weight).float()


class LoraLinear(nn.Module):
    """A kept-separate LoRA on top of an int8 layer: ``base(x) + scaling * B(A(x))``."""

    lora_a: torch.Tensor
    lora_b: torch.Tensor

    def __init__(self, base: nn.Module, a: torch.Tensor, b: torch.Tensor, scaling: float) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("lora_a", a.float(), persistent=False)
        self.register_buffer("lora_b", b.float(), persistent=False)
        self.scaling = scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = (x.float() @ self.lora_a.T) @ self.lora_b.T
        return self.base(x) + (self.scaling * delta).to(x.dtype)


# --- writing ---------------------------------------------------------------------------------

PAD = "chime.pad"  # padding tensors' name prefix
ALIGN = 64  # every tensor starts on this boundary in the file


def aligned(plan: list[tuple[str, torch.dtype, list[int]]]
             ) -> tuple[list[tuple[str, torch.dtype, list[int]]], dict[str, int]]:
    """The plan with int8 padding tensors so that every tensor starts on a 64-byte boundary."""
    out: list[tuple[str, torch.dtype, list[int]]] = []
    sizes: dict[str, int] = {}
    offset = 0
    for name, dtype, shape in plan:
        gap = -offset % ALIGN
        if gap:
            pad = f"{PAD}.{len(sizes)}"
            sizes[pad] = gap
            out.append((pad, torch.int8, [gap]))
            offset += gap
        out.append((name, dtype, shape))
        offset += dtype.itemsize * int(torch.Size(shape).numel())
    return out, sizes


class SafetensorsWriter:
    """Writes a safetensors file tensor by tensor, so no more than one is in memory at a time."""

    CODES: ClassVar[dict[torch.dtype, str]] = {
        torch.int8: "I8", torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
        torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}

    def __init__(self, path: Path, plan: list[tuple[str, torch.dtype, list[int]]],
                 metadata: dict[str, str]) -> None:
        header: dict[str, Any] = {"__metadata__": metadata}
        offset = 0
        for name, dtype, shape in plan:
            size = dtype.itemsize * int(torch.Size(shape).numel())
            header[name] = {"dtype": self.CODES[dtype], "shape": shape,
                            "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-(8 + len(raw)) % ALIGN)  # the data starts aligned too
        self.fh = path.open("wb")
        self.fh.write(struct.pack("<Q", len(raw)) + raw)
        self.plan = iter(plan)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self.write_rows(name, [tensor])

    def write_rows(self, name: str, blocks: Iterable[torch.Tensor]) -> None:
        """Write the next planned tensor from consecutive row blocks."""
        want, dtype, shape = next(self.plan)
        rows = 0
        for block in blocks:
            if (want, block.dtype, list(block.shape[1:])) != (name, dtype, shape[1:]):
                raise AssertionError(f"write order: expected {want}, got {name}")
            self.fh.write(block.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            rows += block.shape[0] if block.dim() else 1
        if rows != (shape[0] if shape else 1):
            raise AssertionError(f"{name}: wrote {rows} rows of {shape}")

    def close(self) -> None:
        self.fh.close()
