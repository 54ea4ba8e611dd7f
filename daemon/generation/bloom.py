"""BLOOM inference for the int8 artifact, in plain torch: no transformers in the worker.

Importing transformers, building its module tree and its tokenizer wrapper cost the worker
seconds and ~240 MB before the first token; the int8 artifact needs none of it. This is the
BLOOM forward pass (ALiBi attention, fused query/key/value, tanh-GELU MLP, tied output
layer) for one sequence with a key/value cache, and the same sampling as ``generate`` in
transformers (repetition penalty, temperature, top-k 50 — its default —, top-p); the
tokenizer is ``tokens.py``. The tests check its logits against transformers'
``BloomForCausalLM`` on the same weights.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

TOP_K = 50  # transformers' GenerationConfig default, which the character was sampled with


@dataclass(frozen=True)
class Shape:
    """The numbers of a BLOOM config.json that the forward pass needs."""

    hidden: int
    heads: int
    layers: int
    vocab: int
    eps: float
    eos: int | None
    pad: int | None

    @classmethod
    def read(cls, folder: Path) -> Shape:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return cls(hidden=config.get("hidden_size") or config["n_embed"],
                   heads=config.get("n_head") or config["num_attention_heads"],
                   layers=config.get("n_layer") or config["num_hidden_layers"],
                   vocab=config["vocab_size"], eps=config.get("layer_norm_epsilon", 1e-5),
                   eos=config.get("eos_token_id"), pad=config.get("pad_token_id"))


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (the paper's geometric series; interleaved past a power of 2)."""
    closest = 2 ** math.floor(math.log2(heads))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base ** p for p in range(1, closest + 1)]
    if closest != heads:
        extra = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        slopes += [extra ** p for p in range(1, 2 * (heads - closest), 2)]
    return torch.tensor(slopes, dtype=torch.float32)


Norm = tuple[torch.Tensor, torch.Tensor]  # LayerNorm weight, bias


class Cache:
    """The keys and values of every block for the positions seen so far, in one buffer sized
    once for the whole sequence: no copy per token, and nothing left behind in the heap.
    Memory becomes resident only as positions are written (the buffer is fresh pages)."""

    def __init__(self, shape: Shape, capacity: int) -> None:
        width = shape.hidden // shape.heads
        self.buffer = torch.empty(shape.layers, 2, shape.heads, capacity, width)
        self.length = 0

    def layer(self, i: int, k: torch.Tensor, v: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store block ``i``'s new keys and values (heads, n, width) after the cached ones;
        all of its keys and values so far."""
        end = self.length + k.shape[1]
        if end > self.buffer.shape[3]:
            raise ValueError(f"the key/value cache holds {self.buffer.shape[3]} positions")
        keys, values = self.buffer[i, 0], self.buffer[i, 1]
        keys[:, self.length:end] = k
        values[:, self.length:end] = v
        return keys[:, :end], values[:, :end]


class Block(nn.Module):
    """One transformer layer: attention and MLP, each after a LayerNorm, each residual."""

    def __init__(self, shape: Shape, norms: tuple[Norm, Norm], query_key_value: nn.Module,
                 dense: nn.Module, up: nn.Module, down: nn.Module) -> None:
        super().__init__()
        self.shape, self.norms = shape, norms
        self.query_key_value, self.dense, self.up, self.down = query_key_value, dense, up, down

    def forward(self, x: torch.Tensor, cache: Cache, index: int, bias: torch.Tensor
                ) -> torch.Tensor:
        """``x``: (n, hidden) new positions, after ``cache.length`` cached ones (this block is
        ``cache``'s layer ``index``); ``bias``: (heads, n, total) ALiBi + causal mask."""
        heads, width = self.shape.heads, self.shape.hidden // self.shape.heads
        eps = self.shape.eps
        h = F.layer_norm(x, (self.shape.hidden,), *self.norms[0], eps)
        fused = self.query_key_value(h).view(x.shape[0], heads, 3, width)
        q, k, v = (fused[:, :, i].transpose(0, 1) for i in range(3))  # (heads, n, width)
        k, v = cache.layer(index, k, v)
        scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=1 / math.sqrt(width))
        context = torch.bmm(torch.softmax(scores, -1), v)  # (heads, n, width)
        x = x + self.dense(context.transpose(0, 1).reshape(x.shape))
        h = F.layer_norm(x, (self.shape.hidden,), *self.norms[1], eps)
        return x + self.down(F.gelu(self.up(h), approximate="tanh"))


class Bloom(nn.Module):
    """The whole model: embedding → LayerNorm → blocks → LayerNorm → tied output layer."""

    def __init__(self, shape: Shape, embedding: nn.Module, head: nn.Module,
                 norms: tuple[Norm, Norm], blocks: list[Block]) -> None:
        super().__init__()
        self.shape, self.embedding, self.head, self.norms = shape, embedding, head, norms
        self.blocks = nn.ModuleList(blocks)
        self.slopes = alibi_slopes(shape.heads)

    def forward(self, ids: torch.Tensor, cache: Cache | None = None,
                every: bool = False) -> torch.Tensor:
        """Logits for the last of ``ids`` (1-D, the positions after those in ``cache``), or for
        every position when ``every``. ``cache`` is extended in place."""
        cache = cache if cache is not None else Cache(self.shape, ids.shape[0])
        past = cache.length
        n, total = ids.shape[0], past + ids.shape[0]
        positions = torch.arange(total, dtype=torch.float32)
        bias = self.slopes[:, None, None] * positions  # softmax ignores the per-row offset
        bias = bias.expand(self.shape.heads, n, total)
        if n > 1:
            future = torch.arange(total)[None, :] > (past + torch.arange(n))[:, None]
            bias = bias.masked_fill(future, torch.finfo(torch.float32).min)
        x = F.layer_norm(self.embedding(ids), (self.shape.hidden,), *self.norms[0],
                         self.shape.eps)
        for index, block in enumerate(self.blocks):
            x = block(x, cache, index, bias)
        cache.length = total
        x = F.layer_norm(x if every else x[-1:], (self.shape.hidden,), *self.norms[1],
                         self.shape.eps)
        return self.head(x)


@dataclass
class Sampling:
    """How the next token is picked: greedy when ``temperature`` is 0."""

    temperature: float
    top_p: float
    repetition_penalty: float


def candidates(logits: torch.Tensor, seen: torch.Tensor, how: Sampling
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, token ids) to sample the next token from, as transformers' ``generate``
    computes them: repetition penalty on the ``seen`` ids, temperature, top-k, top-p."""
    scores = logits.float().clone()
    if how.repetition_penalty != 1.0:
        old = scores[seen]
        scores[seen] = torch.where(old < 0, old * how.repetition_penalty,
                                   old / how.repetition_penalty)
    scores = scores / how.temperature
    top, index = scores.topk(min(TOP_K, scores.shape[0]))  # descending
    probs = torch.softmax(top, -1)
    if how.top_p < 1.0:
        before = probs.cumsum(-1) - probs
        probs = torch.softmax(top.masked_fill(before >= how.top_p, -math.inf), -1)
    return probs, index


def next_token(logits: torch.Tensor, seen: torch.Tensor, how: Sampling,
               generator: torch.Generator | None = None) -> int:
    """The next token id from the last position's ``logits`` (1-D): greedy at temperature 0
    (after the repetition penalty), else drawn from ``candidates``."""
    if how.temperature <= 0:
        greedy = Sampling(1.0, 1.0, how.repetition_penalty)
        probs, index = candidates(logits, seen, greedy)
        return int(index[0])
    probs, index = candidates(logits, seen, how)
    return int(index[torch.multinomial(probs, 1, generator=generator)])


def generate(model: Bloom, prompt: list[int], how: Sampling, max_new_tokens: int,
             stop: Callable[[list[int]], bool], seed: int) -> list[int]:
    """New token ids after ``prompt`` until ``stop(new)``, the end token, or the limit."""
    generator = torch.Generator().manual_seed(seed)
    cache = Cache(model.shape, len(prompt) + max_new_tokens)
    seen = torch.tensor(prompt)
    new: list[int] = []
    step = seen
    with torch.inference_mode():
        while len(new) < max_new_tokens:
            token = next_token(model(step, cache)[0], seen, how, generator)
            if token == model.shape.eos:
                break
            new.append(token)
            if stop(new):
                break
            step = torch.tensor([token])
            seen = torch.cat([seen, step])
    return new
