"""The worker's compact tokenizer (daemon/generation/tokens.py) against ``tokenizers``."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tokenizers import Tokenizer  # noqa: E402

from daemon.context.prompt import END_MARKER  # noqa: E402
from daemon.errors import GenerationError  # noqa: E402
from daemon.generation import bloom, model, tokens  # noqa: E402
from daemon.generation.files import ModelFiles  # noqa: E402
from tests.tinymodel import samples  # noqa: E402

# BLOOM's own pre-tokenizer (its tokenizer.json): a regex split, then bytes without a regex.
BLOOM_SPLIT = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": " ?[^(\\s|[.,!?…。，、।۔،])]+"},
     "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
POOL = ("天气晴多云日期工作日时间上午提示我去做喝水吃药开会写日记，。！？、：,.!? \n\t"
        "assistant:human:end Hello world 123 é ñ 😀 <s> </s> <pad> <unk>")


def _texts(n: int) -> list[str]:
    rng = random.Random(5)
    texts = [p + a for p, a in samples()] + ["", " ", "   leading", "trailing  ", "喝水" * 60]
    return texts + ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 50)))
                    for _ in range(n)]


def _id_runs(size: int, n: int) -> list[list[int]]:
    """Id sequences heavy in single-byte tokens (partial UTF-8), specials and unknown ids."""
    rng = random.Random(6)
    return [[rng.randrange(size + 20) if rng.random() < 0.4 else rng.randrange(270)
             for _ in range(rng.randint(0, 10))] for _ in range(n)]


def _same_as_tokenizers(codec: tokens.Codec, path: Path) -> None:
    reference = Tokenizer.from_file(str(path))
    for text in _texts(400):
        assert codec.encode(text) == reference.encode(text).ids, text
    for ids in _id_runs(codec.size, 1500):
        assert codec.decode(ids) == reference.decode(ids, skip_special_tokens=True), ids


def test_tables_encode_and_decode_like_tokenizers(installed: ModelFiles, tmp_path: Path) -> None:
    folder = installed.artifact
    assert (folder / tokens.FILE).is_file()  # written by build
    saved = tokens.load(folder)
    assert saved.splitter.get_vocab_size() < 300  # the byte symbols and specials, not 464
    _same_as_tokenizers(saved, folder / "tokenizer.json")
    old = tmp_path / "built-before"  # an artifact without the tables: read from the JSON
    old.mkdir()
    shutil.copy(folder / "tokenizer.json", old)
    from_json = tokens.load(old)
    assert (from_json.pairs, from_json.blob) == (saved.pairs, saved.blob)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"] = BLOOM_SPLIT
    (old / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    tokens.save(old)
    _same_as_tokenizers(tokens.load(old), old / "tokenizer.json")


def test_other_tokenizers_are_refused(installed: ModelFiles) -> None:
    spec = json.loads((installed.artifact / "tokenizer.json").read_text(encoding="utf-8"))
    with pytest.raises(GenerationError, match="byte-level BPE"):
        tokens.tables({**spec, "decoder": {"type": "WordPiece"}})
    with pytest.raises(GenerationError, match="byte-level BPE"):
        tokens.tables({**spec, "model": {**spec["model"], "dropout": 0.1}})


def test_worker_writes_what_the_full_tokenizer_would(installed: ModelFiles) -> None:
    """The same model writes the same text with the compact tables as with ``tokenizers``
    (encode and decode, the stop check included), sampled and greedy."""
    loaded = model.load(installed, "torch-int8", "cpu")
    reference = Tokenizer.from_file(str(installed.artifact / "tokenizer.json"))

    def decode(ids: list[int]) -> str:
        return str(reference.decode(ids, skip_special_tokens=True))

    prompts = [p for p, _ in samples()[:6]] + ["天气:晴天 <s> hello </s> 😀", "human:" + "喝水" * 20]
    for prompt in prompts:
        for seed, how in [(1, bloom.Sampling(0.8, 0.9, 1.2)), (2, bloom.Sampling(1.5, 1.0, 1.0)),
                          (3, bloom.Sampling(0.0, 1.0, 1.2))]:
            decoding = model.Decoding(how.temperature, how.top_p, how.repetition_penalty, 24)
            new = bloom.generate(loaded.model, reference.encode(prompt).ids, how, 24,
                                 lambda ids: END_MARKER in decode(ids), seed)
            assert loaded.generate(prompt, seed, decoding) == (decode(new), len(new)), prompt
