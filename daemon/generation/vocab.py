"""Vocabulary pruning: keep the byte-level BPE tokens that Chinese and English reminders use.

BLOOM's 250 880-row embedding (tied to the output layer) is a third of the model and is read
in full for every token; most rows are other scripts. ``prune_tokenizer`` keeps the 256 byte
tokens, the special tokens, the first ``limit`` tokens (lowest id ≈ most frequent merge) whose
text is Chinese, ASCII or common punctuation, and every token their BPE merges go through, so
any text still tokenizes (pieces the pruned vocabulary lacks fall back to shorter tokens).
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

from daemon.errors import GenerationError

WANTED = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\u3000-\u303f\uff00-\uffef\u2010-\u206f"
                    r"\x20-\x7e\n\t·]+")


@cache
def byte_decoder() -> dict[str, int]:
    """GPT-2's printable-character stand-ins for the 256 bytes, reversed."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
          *range(ord("®"), ord("ÿ") + 1)]
    cs = list(bs)
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def token_text(token: str) -> str | None:
    """The text a byte-level token stands for, or None for a partial UTF-8 sequence."""
    table = byte_decoder()
    try:
        return bytes(table[ch] for ch in token).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None


def prune_tokenizer(tokenizer: dict[str, Any], limit: int) -> tuple[dict[str, Any], list[int]]:
    """A pruned copy of a tokenizer.json and the kept old ids, in new-id order."""
    model = tokenizer.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise GenerationError("vocabulary pruning needs a byte-level BPE tokenizer")
    vocab: dict[str, int] = model["vocab"]
    merges = model.get("merges") or []
    pairs = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in merges]
    parent: dict[str, tuple[str, str]] = {}
    for a, b in pairs:
        parent.setdefault(a + b, (a, b))
    alphabet = set(byte_decoder())
    added = tokenizer.get("added_tokens") or []
    specials = {t["content"] for t in added}
    chosen = {t for t in vocab if t in alphabet or t in specials}
    ranked = sorted((i, t) for t, i in vocab.items() if t not in chosen)
    picked = [t for _, t in ranked if (text := token_text(t)) and WANTED.fullmatch(text)]
    stack = picked[:limit]
    while stack:  # every kept token must stay reachable through its merges
        token = stack.pop()
        if token in chosen:
            continue
        chosen.add(token)
        stack.extend(p for p in parent.get(token, ()) if p not in chosen)
    old_ids = sorted({vocab[t] for t in chosen} | {t["id"] for t in added})
    new_id = {old: new for new, old in enumerate(old_ids)}
    out = copy.deepcopy(tokenizer)
    out["model"]["vocab"] = {t: new_id[vocab[t]] for t in sorted(chosen, key=vocab.__getitem__)}
    out["model"]["merges"] = [m for m, (a, b) in zip(merges, pairs, strict=True)
                              if a in chosen and b in chosen and a + b in chosen]
    for token in out.get("added_tokens") or []:
        token["id"] = new_id[token["id"]]
    processor = out.get("post_processor") or {}
    for spec in (processor.get("special_tokens") or {}).values():
        spec["ids"] = [new_id[i] for i in spec.get("ids", [])]
    return out, old_ids
