"""Time one LoRA training step of bloomz-1b7's shape on this CPU, without building all of it.

    python bench/train.py [--precision fp32,bf16] [--batch 8] [--tokens 64] [--steps 3]

A step of ``chime model train`` (forward, backward, AdamW on an r=16 LoRA on query_key_value,
loss on the answer half) is timed on three random BLOOMs of the 1b7 width (hidden 2048, 16
heads): 1 and 3 blocks with a 4 096-token vocabulary give the cost of one block; 1 block
with the full 250 880-token vocabulary gives the embedding, head and loss. The 24-block step
is then ``t(1 block, full vocabulary) + 23 × t(block)``: blocks are identical, so the cost
is additive. Printed: each measurement, the estimated 1b7 step, and the time for the seed's
run (1 000 examples, 5 % held out, 3 epochs, batch 8 → 357 steps).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WIDTH = {"hidden_size": 2048, "n_head": 16}
FULL_VOCAB, SMALL_VOCAB, BLOCKS = 250880, 4096, 24
SEED_STEPS = math.ceil(950 / 8) * 3


def step_seconds(n_layer: int, vocab: int, precision: str, batch: int, tokens: int,
                 steps: int) -> float:
    """Mean seconds of ``steps`` training steps (after one warm-up step)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import BloomConfig, BloomForCausalLM

    from daemon.generation.train import HyperParameters

    torch.manual_seed(0)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    config = BloomConfig(vocab_size=vocab, n_layer=n_layer, **WIDTH)
    model = BloomForCausalLM(config).to(dtype)
    h = HyperParameters()  # the defaults: the seed's LoRA
    model = get_peft_model(model, LoraConfig(r=h.rank, lora_alpha=h.alpha,
                                             lora_dropout=h.dropout,
                                             target_modules=list(h.target_modules),
                                             task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=h.learning_rate)
    ids = torch.randint(0, vocab, (batch, tokens))
    labels = ids.clone()
    labels[:, : tokens // 2] = -100  # the prompt half carries no loss
    model.train()
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return sum(times[1:]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} "
          f"× {args.tokens} tokens")
    for precision in args.precision.split(","):
        run = {key: step_seconds(layers, vocab, precision, args.batch, args.tokens, args.steps)
               for key, (layers, vocab) in {"1": (1, SMALL_VOCAB), "3": (3, SMALL_VOCAB),
                                            "1v": (1, FULL_VOCAB)}.items()}
        block = (run["3"] - run["1"]) / 2
        full = run["1v"] + (BLOCKS - 1) * block
        print(f"{precision}: 1 block {run['1']:.2f} s, 3 blocks {run['3']:.2f} s, "
              f"1 block + full vocabulary {run['1v']:.2f} s → block {block:.2f} s")
        print(f"{precision}: bloomz-1b7 step ≈ {full:.1f} s; the seed's {SEED_STEPS} steps ≈ "
              f"{full * SEED_STEPS / 3600:.1f} h")


if __name__ == "__main__":
    main()
