"""Benchmark the generation backends on a random model of bloomz-1b7's exact shape.

    python bench/generation.py [--cache DIR] [--backends fp32,bf16,bnb-int8,torch-int8,...]

Builds once (cached under ~/.cache/chime-bench) a random BLOOM (vocabulary 250 880, hidden
2048, 24 layers, 16 heads) in fp16 like the hub's, an r=16 LoRA pickled like the hub's, and a
synthetic byte-level BPE tokenizer of the same size (so vocabulary pruning has real work);
then pulls, builds and loads them through chime's own code. Each backend runs in its own
process, so its peak RSS is its own. Printed per backend: load time, peak RSS after loading
and after generating (taken before the agreement pass, whose logits for 64 positions at once
are no part of decoding), decode tok/s, teacher-forced argmax agreement with fp32, and the
bandwidth-bound limit (bytes read per token / measured memory read bandwidth).

Variants: ``torch-int8`` (merged LoRA, default kernel: int-mm on x86), ``torch-int8-dyn``
(the quantized engine's kernel, repacked at load), ``torch-int8-wo`` (weight-only kernel),
``torch-int8-sep`` (LoRA kept separate), ``torch-int8-40k`` (vocabulary pruned to ~40 000
tokens). Every torch-int8 variant also gets worker cold starts: spawn → first generated token,
as the daemon starts it, with the worker's own peak RSS (VmHWM) then and after it has written
a whole reminder (64 sampled tokens) on the same prompt. ``--peers llama.cpp,ctranslate2`` adds the peers (bench/peers.py).
The fp32 run needs ~10 GB of RAM; run backends one at a time if short.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import peers  # noqa: E402  (bench/peers.py, beside this file)

SHAPE = {"vocab_size": 250880, "hidden_size": 2048, "n_layer": 24, "n_head": 16}
ALL = ["fp32", "bf16", "bnb-int8", "torch-int8", "torch-int8-dyn", "torch-int8-wo",
       "torch-int8-sep", "torch-int8-40k"]
KERNELS = {"wo": "weight-only", "dyn": "dynamic"}  # variant suffix -> [model] kernel
PROMPT_TOKENS, NEW_TOKENS, FORCED = 24, 32, (2, 64)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    from daemon.generation.model import peak_rss_mb

    return peak_rss_mb()


# ---- the cached random model ----------------------------------------------------------------


def _tokenizer(vocab_size: int) -> dict[str, Any]:
    """A byte-level BPE tokenizer.json of ``vocab_size`` tokens: ~15 % Chinese, ~35 % Latin
    words, the rest other scripts — every token reachable through its prefix merges."""
    from daemon.generation.vocab import byte_decoder

    enc = {b: c for c, b in byte_decoder().items()}
    rng = random.Random(0)
    pools = [
        (0.15, [chr(c) for c in range(0x4E00, 0x9FA5)], (1, 3)),
        (0.35, list("abcdefghijklmnopqrstuvwxyz"), (2, 8)),
        (0.15, [chr(c) for c in range(0x0430, 0x0450)], (2, 7)),  # Cyrillic
        (0.15, [chr(c) for c in range(0x0627, 0x064B)], (2, 6)),  # Arabic
        (0.10, [chr(c) for c in range(0x0905, 0x0939)], (2, 5)),  # Devanagari
        (0.10, [chr(c) for c in range(0x0E01, 0x0E2F)], (2, 5)),  # Thai
    ]
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for ch in sorted(enc.values()):
        vocab[ch] = len(vocab)
    merges: list[list[str]] = []
    target = vocab_size - 200  # BLOOM's matrix has padding rows beyond the tokenizer
    while len(vocab) < target:
        _, chars, (lo, hi) = rng.choices(pools, weights=[p[0] for p in pools])[0]
        word = ("Ġ" if rng.random() < 0.3 else "") + "".join(
            "".join(enc[b] for b in rng.choice(chars).encode()) for _ in range(rng.randint(lo, hi)))
        for end in range(2, len(word) + 1):  # prefix merges: w[:end-1] + w[end-1]
            piece, left, right = word[:end], word[: end - 1], word[end - 1]
            if piece not in vocab and len(vocab) < target:
                vocab[piece] = len(vocab)
                merges.append([left, right])
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for i, t in enumerate(specials)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def prepare(cache: Path) -> Path:
    """The random hub-like model and LoRA under ``cache/hub`` (built once)."""
    hub = cache / "hub"
    if (hub / "done").exists():
        return hub
    import torch
    from transformers import BloomConfig, PreTrainedTokenizerFast

    from daemon.generation.int8 import SafetensorsWriter

    base, adapter = hub / "base", hub / "adapter"
    base.mkdir(parents=True, exist_ok=True)
    adapter.mkdir(parents=True, exist_ok=True)
    print("building the random bloomz-1b7-shaped model (once)…", flush=True)
    (base / "tokenizer.json").write_text(json.dumps(_tokenizer(SHAPE["vocab_size"])))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(base / "tokenizer.json"), unk_token="<unk>",
                                  bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tok.save_pretrained(base)
    config = BloomConfig(**SHAPE, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    config.save_pretrained(base)
    h, v = SHAPE["hidden_size"], SHAPE["vocab_size"]
    plan: list[tuple[str, Any, list[int]]] = [("word_embeddings.weight", torch.float16, [v, h])]
    for norm in ("word_embeddings_layernorm", ):
        plan += [(f"{norm}.weight", torch.float16, [h]), (f"{norm}.bias", torch.float16, [h])]
    for i in range(SHAPE["n_layer"]):
        for name, shape in [("input_layernorm", [h]), ("post_attention_layernorm", [h])]:
            plan += [(f"h.{i}.{name}.weight", torch.float16, shape),
                     (f"h.{i}.{name}.bias", torch.float16, shape)]
        for name, (out, inp) in [("self_attention.query_key_value", (3 * h, h)),
                                 ("self_attention.dense", (h, h)),
                                 ("mlp.dense_h_to_4h", (4 * h, h)),
                                 ("mlp.dense_4h_to_h", (h, 4 * h))]:
            plan += [(f"h.{i}.{name}.weight", torch.float16, [out, inp]),
                     (f"h.{i}.{name}.bias", torch.float16, [out])]
    plan += [("ln_f.weight", torch.float16, [h]), ("ln_f.bias", torch.float16, [h])]
    gen = torch.Generator().manual_seed(0)
    writer = SafetensorsWriter(base / "model.safetensors", plan, {"format": "pt"})
    for name, dtype, shape in plan:
        if len(shape) == 1:
            fill = 1.0 if name.endswith("norm.weight") else 0.0
            tensor = torch.full(shape, fill) if "norm" in name else torch.randn(shape) * 0.01
        else:
            tensor = torch.randn(shape, generator=gen) * 0.02
        writer.write(name, tensor.to(dtype))
    writer.close()
    lora = {}
    for i in range(SHAPE["n_layer"]):
        key = f"base_model.model.transformer.h.{i}.self_attention.query_key_value"
        lora[f"{key}.lora_A.weight"] = torch.randn(16, h, generator=gen) * 0.02
        lora[f"{key}.lora_B.weight"] = torch.randn(3 * h, 16, generator=gen) * 0.02
    torch.save(lora, adapter / "adapter_model.bin")  # pickled, like the hub's
    (adapter / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 16, "lora_alpha": 32,
        "lora_dropout": 0.05, "target_modules": ["query_key_value"], "bias": "none",
        "fan_in_fan_out": False, "base_model_name_or_path": "bigscience/bloomz-1b7"}))
    (hub / "done").write_text("ok")
    return hub


def install(cache: Path, hub: Path) -> dict[str, Path]:
    """Pull (converting the pickle) and build each artifact variant once; their models dirs."""
    from daemon.generation import files as f
    from daemon.generation import tokens
    from daemon.generation.build import build

    root = cache / "models"
    dirs = {"merged": root / "merged", "sep": root / "sep", "40k": root / "40k"}
    for key, folder in dirs.items():
        files = f.ModelFiles(folder)
        if not files.missing("int8"):
            if not (files.artifact / tokens.FILE).exists():  # built before tokens.py
                tokens.save(files.artifact)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if files.missing("base"):
            if key == "merged":
                f.pull(str(hub / "base"), "base", files)
                f.pull(str(hub / "adapter"), "adapter", files)
            else:  # share the pulled files
                for part in ("base", "adapter"):
                    (folder / part).symlink_to(dirs["merged"] / part)
        started = time.monotonic()
        meta = build(files, merge=key != "sep", vocab=40000 if key == "40k" else 0)
        print(f"built {key}: {meta['size_bytes'] / 1e9:.2f} GB, vocabulary {meta['vocab_size']},"
              f" {time.monotonic() - started:.0f}s", flush=True)
    return dirs


# ---- one backend, in its own process ---------------------------------------------------------


def read_bandwidth_gbs(runs: int = 8) -> float:
    """Memory read bandwidth with torch's threads (best of ``runs`` sums over 1 GiB)."""
    import torch

    big = torch.ones(256 * 2**20)  # far beyond any cache
    best = 0.0
    for _ in range(runs):
        started = time.perf_counter()
        big.sum()
        best = max(best, big.numel() * 4 / (time.perf_counter() - started) / 1e9)
    return best


def run_one(name: str, cache: Path, dirs: dict[str, Path]) -> dict[str, Any]:
    import torch

    from daemon.generation import model
    from daemon.generation.files import ModelFiles

    backend = "torch-int8" if name.startswith("torch-int8") else name
    folder = dirs["sep" if name.endswith("-sep") else "40k" if name.endswith("-40k")
                  else "merged"]
    kernel = KERNELS.get(name.rpartition("-")[2], "auto")
    started = time.monotonic()
    loaded = model.load(ModelFiles(folder), backend, "cpu", kernel)
    model.trim_memory()
    load_s = time.monotonic() - started
    after_load, steady = peak_mb(), rss_mb()
    net = loaded.model
    gen = torch.Generator().manual_seed(1)
    vocab_rows = net.shape.vocab if backend == "torch-int8" else net.config.vocab_size
    kept = None
    if vocab_rows < SHAPE["vocab_size"]:  # pruned: inputs from the kept ids, compared in old ids
        from daemon.generation.vocab import prune_tokenizer

        tok = json.loads((folder / "base" / "tokenizer.json").read_text())
        kept = torch.tensor(prune_tokenizer(tok, 40000)[1])

    def pick(n: int) -> Any:
        return torch.randint(4, vocab_rows, (1, n), generator=gen)

    prompt = pick(PROMPT_TOKENS)
    decode = 0.0
    with torch.inference_mode():
        for _ in range(2):  # best of two: the machine is shared
            t0 = time.perf_counter()
            greedy(net, prompt, 1)
            t1 = time.perf_counter()
            greedy(net, prompt, NEW_TOKENS)
            t2 = time.perf_counter()
            decode = max(decode, (NEW_TOKENS - 1) / ((t2 - t1) - (t1 - t0)))
    generated = peak_mb()  # before the agreement pass: logits for 64 positions are not decoding
    forced = [pick(FORCED[1]) for _ in range(FORCED[0])]
    argmax = []
    for ids in forced:
        out = model.teacher_forced_argmax(net, ids)
        if kept is not None:
            out = kept[out]
        argmax.append(out)
    bandwidth = read_bandwidth_gbs()  # right after decoding, on the same cores (1 GiB buffer)
    result = {"backend": name, "load_s": round(load_s, 1), "peak_load_mb": round(after_load),
              "rss_after_load_mb": round(steady), "peak_mb": round(generated),
              "decode_tok_s": round(decode, 2), "info": loaded.info}
    ref_path = cache / "fp32_argmax.json"
    inputs = [(kept[ids] if kept is not None else ids).tolist() for ids in forced]
    if name == "fp32":
        ref_path.write_text(json.dumps({"inputs": inputs,
                                        "argmax": [a.tolist() for a in argmax]}))
    if ref_path.exists() and kept is None:
        ref = json.loads(ref_path.read_text())
        if ref["inputs"] == inputs:
            same = sum(int((torch.tensor(r) == a).sum()) for r, a in zip(ref["argmax"], argmax,
                                                                          strict=True))
            result["agreement"] = round(same / sum(a.numel() for a in argmax), 3)
    if kept is not None:
        result["agreement"], result["agreement_kept"] = _pruned_agreement(cache, argmax, kept)
    int8_bytes = _bytes_per_token(folder, backend, vocab_rows)
    result.update(bandwidth_gbs=round(bandwidth, 1), gb_per_token=round(int8_bytes / 1e9, 2),
                  limit_tok_s=round(bandwidth * 1e9 / int8_bytes, 1))
    result["of_limit"] = round(result["decode_tok_s"] / result["limit_tok_s"], 2)
    return result


def greedy(net: Any, prompt: Any, n: int) -> None:
    """Exactly ``n`` greedy tokens after ``prompt`` (1 × m), the end token ignored."""
    from daemon.generation import bloom

    if not isinstance(net, bloom.Bloom):
        net.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                     pad_token_id=3, eos_token_id=None)
        return
    cache = bloom.Cache(net.shape, prompt.shape[1] + n)
    step = prompt[0]
    for _ in range(n):
        step = net(step, cache).argmax(-1)


def _pruned_agreement(cache: Path, argmax: list[Any], kept: Any) -> tuple[Any, Any]:
    """Agreement with fp32 on the same inputs (old ids): overall, and where fp32's choice is
    a token the pruned vocabulary kept (random weights spread fp32's choices over all ids)."""
    path = cache / "fp32_argmax_pruned.json"
    if not path.exists():
        return None, None
    import torch

    ref = torch.tensor(json.loads(path.read_text()))
    got = torch.stack([a.reshape(-1) for a in argmax])
    keep = torch.isin(ref, kept)
    same = ref == got
    return round(float(same.float().mean()), 3), round(float(same[keep].float().mean()), 3)


def _bytes_per_token(folder: Path, backend: str, vocab_rows: int) -> int:
    """Weight bytes read for one token: every linear layer and the output matrix, once."""
    h, layers = SHAPE["hidden_size"], SHAPE["n_layer"]
    linear = layers * (3 * h * h + h * h + 8 * h * h)
    width = {"fp32": 4, "bf16": 2, "bnb-int8": 1, "torch-int8": 1}[backend]
    head = {"fp32": 4, "bf16": 2, "bnb-int8": 2, "torch-int8": 1}[backend]  # bnb: fp16 head
    return linear * width + vocab_rows * h * head


def fp32_on_pruned_inputs(cache: Path, dirs: dict[str, Path]) -> None:
    """fp32 argmax on the inputs the pruned run uses (old ids), for its agreement figure."""
    import torch

    from daemon.generation import model
    from daemon.generation.files import ModelFiles
    from daemon.generation.vocab import prune_tokenizer

    tok = json.loads((dirs["merged"] / "base" / "tokenizer.json").read_text())
    kept = torch.tensor(prune_tokenizer(tok, 40000)[1])
    loaded = model.load(ModelFiles(dirs["merged"]), "fp32", "cpu")
    gen = torch.Generator().manual_seed(1)
    torch.randint(4, len(kept), (1, PROMPT_TOKENS), generator=gen)  # same draws as run_one
    forced = [torch.randint(4, len(kept), (1, FORCED[1]), generator=gen) for _ in
              range(FORCED[0])]
    out = [model.teacher_forced_argmax(loaded.model, kept[ids]).tolist() for ids in forced]
    (cache / "fp32_argmax_pruned.json").write_text(json.dumps(out))


PROMPT = "human:天气:晴天,日期:工作日,时间:上午,提示我去做:喝水assistant:"


def cold_start(folder: Path, kernel: str, threads: int = 2) -> dict[str, Any]:
    """Spawn the worker as the daemon does: seconds and CPU until its first generated token,
    its peak RSS then, and its peak after writing a whole reminder's worth (``max_new_tokens``
    64, sampled with the daemon's defaults) on the same prompt."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")]), "CHIME_WORKER_LOG": "WARNING"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "daemon.generation.worker"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin and proc.stdout
    load = {"op": "load", "models_dir": str(folder), "backend": "torch-int8", "device": "cpu",
            "kernel": kernel, "threads": threads, "keep_warm": 30}
    one = {"op": "generate", "items": [{"id": 1, "prompt": PROMPT, "seed": 1}],
           "decoding": {"temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0,
                        "max_new_tokens": 1}}
    whole = {"op": "generate", "items": [{"id": 2, "prompt": PROMPT, "seed": 2}],
             "decoding": {"temperature": 0.8, "top_p": 0.9, "repetition_penalty": 1.2,
                          "max_new_tokens": 64}}
    events: dict[str, tuple[float, dict[str, Any]]] = {}
    cpu = 0.0
    for command in (load, one, whole):
        if "error" in events:
            break
        proc.stdin.write(json.dumps(command) + "\n")
        proc.stdin.flush()
        if command is load:
            continue
        for line in proc.stdout:
            event = json.loads(line)
            key = f"{event['event']}{'' if command is one else '-whole'}"
            events.setdefault(key, (time.perf_counter() - started, event))
            if key == "result":  # the worker's CPU seconds so far (it is still running)
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            if event["event"] in ("done", "error"):
                break
    proc.stdin.close()
    proc.wait(60)
    if "done" not in events or "done-whole" not in events:
        raise RuntimeError(f"worker failed: {events}")
    return {"first_token_s": round(events["result"][0], 2), "cpu_s": round(cpu, 2),
            "ready_s": round(events["ready"][0], 2),
            "peak_mb": round(events["done"][1]["peak_rss_mb"]),
            "whole_tokens": events["result-whole"][1].get("tokens"),
            "peak_whole_mb": round(events["done-whole"][1]["peak_rss_mb"])}


def run_child(name: str, *argv: str) -> dict[str, Any] | None:
    """Run this script on one backend in its own process; its last JSON line, or None (said)."""
    done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                          check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode or not lines:
        print(f"{name}: failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "chime-bench" / "generation")
    parser.add_argument("--backends", default=",".join(ALL))
    parser.add_argument("--cold-runs", type=int, default=3,
                        help="worker cold starts per torch-int8 variant (best is printed)")
    parser.add_argument("--peers", default="",
                        help="also run these peers: llama.cpp, ctranslate2 (bench/peers.py)")
    parser.add_argument("--install-peers", action="store_true",
                        help="pip-install the peers that are missing (not chime dependencies)")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--peer-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                      HF_HUB_DISABLE_PROGRESS_BARS="1")
    dirs = {"merged": args.cache / "models" / "merged", "sep": args.cache / "models" / "sep",
            "40k": args.cache / "models" / "40k"}
    if args.run == "fp32-pruned":
        fp32_on_pruned_inputs(args.cache, dirs)
        return
    if args.run and args.run.startswith("peer:"):
        print(json.dumps(peers.run(args.run[5:], args.peer_path, NEW_TOKENS)), flush=True)
        return
    if args.run and args.run.startswith("peer-first:"):
        peers.first_token(args.run[11:], args.peer_path)
        return
    if args.run:
        print(json.dumps(run_one(args.run, args.cache, dirs)), flush=True)
        return
    hub = prepare(args.cache)
    install(args.cache, hub)
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    for name in names:
        if name == "torch-int8-40k" and not (args.cache / "fp32_argmax_pruned.json").exists() \
                and "fp32" in names:
            subprocess.run([sys.executable, __file__, "--cache", str(args.cache),
                            "--run", "fp32-pruned"], check=False)
        r = run_child(name, "--cache", str(args.cache), "--run", name)
        if r is None:
            continue
        if name.startswith("torch-int8") and args.cold_runs:
            folder = dirs["sep" if name.endswith("-sep") else "40k" if name.endswith("-40k")
                          else "merged"]
            kernel = KERNELS.get(name.rpartition("-")[2], "auto")
            colds = [cold_start(folder, kernel) for _ in range(args.cold_runs)]
            best = min(colds, key=lambda c: c["first_token_s"])
            print(f"{name:15} cold start: first token {best['first_token_s']:.2f}s (ready "
                  f"{best['ready_s']:.2f}s, worker CPU {best['cpu_s']:.2f}s; best of "
                  f"{len(colds)}: {[c['first_token_s'] for c in colds]}); worker peak "
                  f"{max(c['peak_mb'] for c in colds)} MB at the first token, "
                  f"{max(c['peak_whole_mb'] for c in colds)} MB after a whole reminder "
                  f"({colds[0]['whole_tokens']} tokens)", flush=True)
        print(f"{name:15} load {r['load_s']:5.1f}s  peak load {r['peak_load_mb']:6d} MB  "
              f"rss after load {r['rss_after_load_mb']:6d} MB  peak {r['peak_mb']:6d} MB  "
              f"decode {r['decode_tok_s']:5.2f} tok/s  limit {r['limit_tok_s']:5.1f} tok/s "
              f"({r['of_limit']:.0%}; {r['gb_per_token']} GB/token at "
              f"{r['bandwidth_gbs']} GB/s)  agreement {r.get('agreement')}"
              + (f" ({r['agreement_kept']} where fp32 picks a kept token)"
                 if "agreement_kept" in r else "") + "  "
              f"[{r['info'].get('engine', '')}]", flush=True)

    run_peers([n.strip() for n in args.peers.split(",") if n.strip()], args, hub, dirs)


def run_peers(names: list[str], args: argparse.Namespace, hub: Path,
              dirs: dict[str, Path]) -> None:
    """The peers on the same merged weights, each in its own process (bench/peers.py)."""
    if args.install_peers:
        peers.install(names)
    for name in names:
        path = peers.prepare(name, args.cache, hub, dirs["merged"] / "adapter")
        r = run_child(name, "--cache", str(args.cache), "--run", f"peer:{name}",
                      "--peer-path", str(path))
        if r is None:
            continue
        colds = [peers.cold_start(name, path, Path(__file__)) for _ in range(args.cold_runs)]
        best = min(colds, key=lambda c: c["first_token_s"])
        print(f"{name:15} load {r['load_s']:5.2f}s  peak load {r['peak_load_mb']:6d} MB  "
              f"peak {r['peak_mb']:6d} MB  decode {r['decode_tok_s']:5.2f} tok/s  cold start: "
              f"first token {best['first_token_s']:.2f}s (CPU {best['cpu_s']:.2f}s, peak "
              f"{best['peak_mb']} MB; {[c['first_token_s'] for c in colds]})", flush=True)


if __name__ == "__main__":
    main()
