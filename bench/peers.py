"""Peer engines beside chime in bench/generation.py: llama.cpp and CTranslate2, same weights.

    python bench/generation.py --peers llama.cpp,ctranslate2 [--install-peers]

Both run the random bloomz-1b7-shaped model with the LoRA merged (written once as an fp16
transformers checkpoint): llama.cpp through llama-cpp-python as a Q8_0 GGUF made by the
``convert_hf_to_gguf.py`` of its own sdist, CTranslate2 as int8 from its TransformersConverter.
They are optional and never dependencies of chime: ``--install-peers`` pip-installs them into
this interpreter (llama-cpp-python builds from source: minutes). Each run is its own process,
so its peak RSS (VmHWM) is its own; the cold start is a fresh process from spawn to the first
generated token, like chime's worker.
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

PACKAGES = {"llama.cpp": ("llama_cpp", "llama-cpp-python==0.3.36"),
            "ctranslate2": ("ctranslate2", "ctranslate2==4.8.5")}
THREADS = 2
PROMPT = "human:天气:晴天,日期:工作日,时间:上午,提示我去做:喝水assistant:"


def install(names: list[str]) -> None:
    """pip-install the peers that do not import yet (into this interpreter's environment)."""
    for name in names:
        module, requirement = PACKAGES[name]
        if subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True, check=False).returncode:
            print(f"installing {requirement} …", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "install", requirement], check=True)


def prepare(name: str, cache: Path, hub: Path, adapter: Path) -> Path:
    """The peer's converted model (made once under ``cache/peers``)."""
    merged = merged_checkpoint(cache / "peers" / "merged-hf", hub, adapter)
    if name == "llama.cpp":
        return gguf_q8(cache / "peers", merged)
    out = cache / "peers" / "ct2-int8"
    if not (out / "model.bin").exists():
        code = ("import sys, ctranslate2.converters as c\n"
                "c.TransformersConverter(sys.argv[1], load_as_float16=True,"
                " low_cpu_mem_usage=True).convert(sys.argv[2], quantization='int8', force=True)\n")
        subprocess.run([sys.executable, "-c", code, str(merged), str(out)], check=True)
    return out


def merged_checkpoint(out: Path, hub: Path, adapter: Path) -> Path:
    """The base with the LoRA merged, as an fp16 transformers checkpoint (tensor by tensor)."""
    if (out / "done").exists():
        return out
    import torch

    from daemon.generation import int8
    from daemon.generation.model import read_adapter

    out.mkdir(parents=True, exist_ok=True)
    lora, scaling = read_adapter(adapter)
    with int8.SafetensorsFile(hub / "base" / "model.safetensors") as st:
        plan = [(k, torch.float16, list(st.entries[k]["shape"])) for k in st.entries]
        writer = int8.SafetensorsWriter(out / "model.safetensors", plan, {"format": "pt"})
        for key, _, _ in plan:
            tensor = st.read(key)
            pair = lora.get("transformer." + key.removesuffix(".weight"))
            if pair is not None:
                tensor = (tensor.float() + scaling * (pair[1] @ pair[0])).half()
            writer.write(key, tensor)
        writer.close()
    config = json.loads((hub / "base" / "config.json").read_text())
    config["architectures"] = ["BloomForCausalLM"]  # the converters pick the model by it
    (out / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (hub / "base" / name).exists():
            shutil.copyfile(hub / "base" / name, out / name)
    (out / "done").write_text("ok")
    return out


def gguf_q8(folder: Path, merged: Path) -> Path:
    """A Q8_0 GGUF through llama.cpp's own converter, from the llama-cpp-python sdist."""
    out = folder / "model-q8_0.gguf"
    if out.exists():
        return out
    _, requirement = PACKAGES["llama.cpp"]
    source = folder / "llama-sdist"
    if not source.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
                        "--no-deps", requirement, "-d", str(source)], check=True)
        with tarfile.open(next(source.glob("*.tar.gz"))) as tar:
            tar.extractall(source, filter="data")
    llama = next(source.glob("*/vendor/llama.cpp"))
    code = ("import sys\n"
            f"sys.path[:0] = [{str(llama)!r}, {str(llama / 'gguf-py')!r}]\n"
            "import conversion.base as base\n"
            "# the synthetic benchmark tokenizer hashes to no known pre-tokenizer: it is BLOOM's\n"
            "base.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'bloom'\n"
            "import convert_hf_to_gguf as convert\n"
            f"sys.argv = ['convert', {str(merged)!r}, '--outtype', 'q8_0', '--outfile', "
            f"{str(out)!r}]\n"
            "convert.main()\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    return out


# ---- in the peer's own process ---------------------------------------------------------------


def peak_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Engine:
    """Load, prefill and greedy steps behind one interface for both peers."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        if name == "llama.cpp":
            from llama_cpp import Llama

            self.llm = Llama(model_path=str(path), n_threads=THREADS, n_threads_batch=THREADS,
                             n_ctx=512, verbose=False)
        else:
            import ctranslate2
            from tokenizers import Tokenizer

            self.gen = ctranslate2.Generator(str(path), device="cpu", compute_type="int8",
                                             intra_threads=THREADS)
            self.tok = Tokenizer.from_file(str(path.parent / "merged-hf" / "tokenizer.json"))

    def prompt(self) -> list[int]:
        if self.name == "llama.cpp":
            return list(self.llm.tokenize(PROMPT.encode(), add_bos=False))
        return list(self.tok.encode(PROMPT).ids)

    def greedy(self, prompt: list[int], n: int) -> None:
        """Exactly ``n`` greedy tokens after ``prompt``."""
        if self.name == "llama.cpp":
            import numpy as np

            self.llm.reset()
            self.llm.eval(prompt)
            for _ in range(n):
                token = int(np.argmax(self.llm.scores[self.llm.n_tokens - 1]))
                self.llm.eval([token])
            return
        tokens = [self.tok.id_to_token(i) for i in prompt]
        self.gen.generate_batch([tokens], max_length=n, min_length=n, sampling_topk=1,
                                include_prompt_in_result=False)


def run(name: str, path: Path, new_tokens: int) -> dict[str, Any]:
    """Load time, peak RSS and decode speed, as bench/generation.py measures chime's."""
    started = time.monotonic()
    engine = Engine(name, path)
    load_s = time.monotonic() - started
    after_load = peak_mb()
    rng = random.Random(1)
    prompt = [rng.randrange(4, 200_000) for _ in range(24)]
    decode = 0.0
    for _ in range(2):  # best of two: the machine is shared
        t0 = time.perf_counter()
        engine.greedy(prompt, 1)
        t1 = time.perf_counter()
        engine.greedy(prompt, new_tokens)
        t2 = time.perf_counter()
        decode = max(decode, (new_tokens - 1) / ((t2 - t1) - (t1 - t0)))
    return {"backend": name, "load_s": round(load_s, 2), "peak_load_mb": round(after_load),
            "peak_mb": round(peak_mb()), "decode_tok_s": round(decode, 2)}


def first_token(name: str, path: Path) -> None:
    """Load and write one token for the real prompt (the cold start's child process)."""
    engine = Engine(name, path)
    engine.greedy(engine.prompt(), 1)
    print(json.dumps({"peak_mb": round(peak_mb())}), flush=True)


def cold_start(name: str, path: Path, bench: Path) -> dict[str, Any]:
    """Seconds from spawning a fresh process to its first generated token."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(bench), "--run", f"peer-first:{name}",
                           "--peer-path", str(path)], capture_output=True, text=True,
                          check=True)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"first_token_s": round(took, 2), "cpu_s": round(cpu, 2),
            **json.loads(done.stdout.splitlines()[-1])}
