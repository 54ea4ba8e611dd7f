"""The artifact's tokenizer in flat tables: byte-level BPE without 85 MB of hash maps.

BLOOM's 250 k-token tokenizer, loaded by the ``tokenizers`` library, holds ~85 MB (the
vocabulary twice, token → id and id → token, and the merges, in hash maps of strings),
resident beside the weights for the worker's whole life, while a batch encodes one prompt per
reminder. Byte-level BPE needs far less (~7 MB for BLOOM):

* encoding: ``tokenizers`` itself splits the text — normalizer, pre-tokenizer, added tokens,
  post-processor, all as in tokenizer.json — on a stand-in whose vocabulary is only the 256
  byte symbols and the added tokens, with their real ids; each piece is then merged from a
  sorted table of (left, right) → (rank, merged id), lowest rank first, leftmost first, as the
  library's BPE model does;
* decoding: every token's bytes in one blob (special tokens empty), joined and decoded as
  UTF-8 with replacement: the ByteLevel decoder with ``skip_special_tokens``.

``chime model build`` writes the tables beside the weights (``tokenizer.tables``, in the
safetensors format); for an artifact built before, they are computed from its tokenizer.json
at load (~1 s more).
The tests check both directions against ``tokenizers`` on the same files.
"""

from __future__ import annotations

import json
import logging
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from daemon.errors import GenerationError
from daemon.generation.vocab import byte_decoder

log = logging.getLogger("daemon.generation.tokens")
FILE = "tokenizer.tables"  # safetensors format; not *.safetensors: no weights in it
FORMAT = "chime-tokens/1"
NONE = 1 << 62  # the rank of a pair that has no merge
ARRAYS = {"pairs": "q", "ranks": "i", "merged": "i", "starts": "q", "blob": "B"}


@dataclass
class Tables:
    """What encoding and decoding need, as flat arrays (``ARRAYS`` gives their types).

    ``pairs``: sorted merge keys ``left * size + right``; ``ranks``/``merged``: each key's
    merge rank and resulting id; token ``i``'s bytes are ``blob[starts[i]:starts[i + 1]]``;
    ``splitter``: the stand-in tokenizer.json that splits text into byte-symbol pieces.
    """

    splitter: str
    size: int
    pairs: array[int]
    ranks: array[int]
    merged: array[int]
    starts: array[int]
    blob: array[int]


def tables(spec: dict[str, Any]) -> Tables:
    """The tables of a byte-level BPE tokenizer.json (GenerationError for any other kind)."""
    model = spec.get("model") or {}
    decoder = spec.get("decoder") or {}
    unsupported = [key for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix",
                                   "byte_fallback", "ignore_merges") if model.get(key)]
    vocab: dict[str, int] = model.get("vocab") or {}
    symbols = byte_decoder()
    if model.get("type") != "BPE" or decoder.get("type") != "ByteLevel" or unsupported \
            or not isinstance(vocab, dict) or any(s not in vocab for s in symbols):
        raise GenerationError("the int8 artifact needs a byte-level BPE tokenizer (BLOOM's); "
                              f"unsupported: {unsupported or 'model or decoder type'}")
    added = spec.get("added_tokens") or []
    size = max([*vocab.values(), *(t["id"] for t in added)]) + 1
    pieces = [b""] * size
    for token, i in vocab.items():
        pieces[i] = _token_bytes(token, symbols)
    for t in added:  # decoding skips special tokens
        pieces[t["id"]] = b"" if t.get("special") else _token_bytes(t["content"], symbols)
    merges: dict[int, tuple[int, int]] = {}
    try:
        for rank, merge in enumerate(model.get("merges") or []):
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            merges[vocab[left] * size + vocab[right]] = (rank, vocab[left + right])
    except (KeyError, ValueError) as exc:
        raise GenerationError(f"tokenizer.json has a merge outside its vocabulary: {exc}") \
            from exc
    keys = sorted(merges)
    starts = array("q", [0])
    for piece in pieces:
        starts.append(starts[-1] + len(piece))
    splitter = {**spec, "model": {**model, "merges": [], "vocab": {
        **{s: vocab[s] for s in symbols}, **{t["content"]: t["id"] for t in added}}}}
    return Tables(json.dumps(splitter, ensure_ascii=False), size, array("q", keys),
                  array("i", (merges[k][0] for k in keys)),
                  array("i", (merges[k][1] for k in keys)), starts, array("B", b"".join(pieces)))


def _token_bytes(token: str, symbols: dict[str, int]) -> bytes:
    """A token's bytes as the ByteLevel decoder gives them (its own UTF-8 when not all of
    its characters are byte symbols)."""
    if all(ch in symbols for ch in token):
        return bytes(symbols[ch] for ch in token)
    return token.encode("utf-8")


def save(folder: Path) -> None:
    """Write ``folder``'s tokenizer.json as tables to ``folder/tokenizer.tables``."""
    import torch

    from daemon.generation.int8 import SafetensorsWriter

    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    t = tables(spec)
    dtypes = {"q": torch.int64, "i": torch.int32, "B": torch.uint8}
    plan = [(name, dtypes[code], [len(getattr(t, name))]) for name, code in ARRAYS.items()]
    writer = SafetensorsWriter(folder / FILE, plan, {
        "format": FORMAT, "size": str(t.size), "splitter": t.splitter})
    try:
        for name, dtype, _shape in plan:
            data = getattr(t, name).tobytes()
            writer.write(name, torch.frombuffer(bytearray(data), dtype=dtype) if data
                         else torch.empty(0, dtype=dtype))
    finally:
        writer.close()


def load(folder: Path) -> Codec:
    """The codec of an artifact folder: its saved tables, or computed from tokenizer.json."""
    from daemon.generation.int8 import SafetensorsFile

    if not (folder / FILE).is_file():
        log.info("%s has no %s (built by an older chime): reading tokenizer.json", folder, FILE)
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        return Codec(tables(spec))
    with SafetensorsFile(folder / FILE) as st:
        if st.metadata.get("format") != FORMAT:
            raise GenerationError(f"{folder / FILE} is not a {FORMAT} file (rebuild)")
        arrays = {name: array(code, st.read(name).numpy().tobytes())
                  for name, code in ARRAYS.items()}
        return Codec(Tables(st.metadata["splitter"], int(st.metadata["size"]), **arrays))


class Codec:
    """Encode text to ids and decode ids to text from ``Tables``, as ``tokenizers`` would with
    the full tokenizer.json (``decode`` skips special tokens)."""

    def __init__(self, t: Tables) -> None:
        from tokenizers import Tokenizer

        self.splitter: Any = Tokenizer.from_str(t.splitter)
        self.size, self.pairs, self.ranks, self.merged = t.size, t.pairs, t.ranks, t.merged
        self.starts, self.blob = t.starts, bytes(t.blob)

    def encode(self, text: str) -> list[int]:
        split = self.splitter.encode(text)
        ids: list[int] = []
        piece: list[int] = []
        last = None
        for token, word in zip(split.ids, split.word_ids, strict=True):
            if word is None or word != last:  # pieces are merged separately
                ids += self._merge(piece)
                piece = []
            piece.append(token)
            last = word
        return ids + self._merge(piece)

    def decode(self, ids: list[int]) -> str:
        blob, starts = self.blob, self.starts
        return b"".join(blob[starts[i]:starts[i + 1]] for i in ids if 0 <= i < self.size
                        ).decode("utf-8", "replace")

    def _merge(self, piece: list[int]) -> list[int]:
        """Apply the merges to one piece: lowest rank first, leftmost first."""
        found = [self._find(a, b) for a, b in pairwise(piece)]
        while found:
            ranks = [rank for rank, _ in found]
            best = min(ranks)
            if best == NONE:
                break
            i = ranks.index(best)
            piece[i:i + 2] = [found[i][1]]
            del found[i]
            if i > 0:
                found[i - 1] = self._find(piece[i - 1], piece[i])
            if i < len(found):
                found[i] = self._find(piece[i], piece[i + 1])
        return piece

    def _find(self, left: int, right: int) -> tuple[int, int]:
        """(rank, merged id) of the pair, or (NONE, -1)."""
        key = left * self.size + right
        i = bisect_left(self.pairs, key)
        if i < len(self.pairs) and self.pairs[i] == key:
            return self.ranks[i], self.merged[i]
        return NONE, -1
