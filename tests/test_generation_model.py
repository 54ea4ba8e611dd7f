"""Loading the tiny model on every backend through the real code, and building the artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from daemon.errors import GenerationError  # noqa: E402
from daemon.generation import bloom, int8, model  # noqa: E402
from daemon.generation.build import build  # noqa: E402
from daemon.generation.files import ModelFiles  # noqa: E402
from daemon.generation.vocab import prune_tokenizer, token_text  # noqa: E402
from tests.generation_fixtures import copy_models  # noqa: E402
from tests.tinymodel import TinyModel, samples  # noqa: E402

GREEDY = model.Decoding(temperature=0.0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=40)


def _answers(loaded: model.Loaded, n: int = 4) -> list[tuple[str, str]]:
    """(generated, expected) for a few training prompts, greedy."""
    return [(loaded.generate(prompt, 1, GREEDY)[0], answer) for prompt, answer in samples()[:n]]


def _agreement(loaded: model.Loaded, reference: model.Loaded) -> float:
    """Teacher-forced argmax agreement on the training lines."""
    same = total = 0
    for prompt, answer in samples():
        ids = reference.tokenizer(prompt + answer, return_tensors="pt")["input_ids"]
        a = model.teacher_forced_argmax(loaded.model, ids)
        b = model.teacher_forced_argmax(reference.model, ids)
        same += int((a == b).sum())
        total += b.numel()
    return same / total


@pytest.fixture(scope="module")
def fp32(installed: ModelFiles) -> model.Loaded:
    return model.load(installed, "fp32", "cpu")


def test_fp32_unmerged_adapter_answers_like_training(fp32: model.Loaded) -> None:
    assert fp32.info["merged"] is False
    assert type(fp32.model).__name__ == "PeftModelForCausalLM"
    for got, expected in _answers(fp32):
        assert got.startswith(expected)


def test_the_adapter_matters(installed: ModelFiles, fp32: model.Loaded) -> None:
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(installed.base)
    prompt, _answer = samples()[4]
    ids = fp32.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert not torch.allclose(base(ids).logits, fp32.model(ids).logits, atol=1e-3)


def test_bf16_and_converted_adapter(tiny: TinyModel, installed: ModelFiles,
                                    fp32: model.Loaded) -> None:
    from safetensors.torch import load_file

    converted = load_file(str(installed.adapter / "adapter_model.safetensors"))
    original = load_file(str(tiny.adapter_st / "adapter_model.safetensors"))
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)
    loaded = model.load(installed, "bf16", "cpu")
    assert _agreement(loaded, fp32) > 0.9


def test_bnb_int8_on_cpu(installed: ModelFiles, fp32: model.Loaded) -> None:
    loaded = model.load(installed, "bnb-int8", "cpu")  # bnb >= 0.45 runs on the CPU: no skip
    layer = loaded.model.base_model.model.transformer.h[0].mlp.dense_h_to_4h
    assert type(layer).__name__ == "Linear8bitLt"
    assert _agreement(loaded, fp32) > 0.8


@pytest.mark.parametrize("kernel", ["auto", "dynamic", "weight-only"])
def test_int8_artifact_loads_mapped_without_float_linears(installed: ModelFiles,
                                                          fp32: model.Loaded,
                                                          kernel: str) -> None:
    loaded = model.load(installed, "torch-int8", "cpu", kernel=kernel)
    mods = dict(loaded.model.named_modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in mods.values())
    assert isinstance(mods["head"], int8.Int8Linear)
    assert isinstance(mods["embedding"], int8.Int8Embedding)
    assert loaded.info["kernel"] == ("int-mm" if kernel == "auto" else kernel)  # x86 here
    assert _agreement(loaded, fp32) > 0.85
    for got, expected in _answers(loaded):
        assert got.startswith(expected)


def _bloom_on(hf: object) -> bloom.Bloom:
    """Our BLOOM forward pass on the layers of a transformers ``BloomForCausalLM``."""
    t = hf.transformer  # type: ignore[attr-defined]

    def norm(layer: torch.nn.LayerNorm) -> bloom.Norm:
        return layer.weight, layer.bias

    shape = bloom.Shape(hidden=t.config.hidden_size, heads=t.config.n_head,
                        layers=t.config.n_layer, vocab=t.config.vocab_size,
                        eps=t.config.layer_norm_epsilon, eos=None, pad=None)
    blocks = [bloom.Block(shape, (norm(b.input_layernorm), norm(b.post_attention_layernorm)),
                          b.self_attention.query_key_value, b.self_attention.dense,
                          b.mlp.dense_h_to_4h, b.mlp.dense_4h_to_h) for b in t.h]
    return bloom.Bloom(shape, t.word_embeddings, hf.lm_head,  # type: ignore[attr-defined]
                       (norm(t.word_embeddings_layernorm), norm(t.ln_f)), blocks)


def test_bloom_forward_matches_transformers(installed: ModelFiles) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(installed.base).eval()
    ours = _bloom_on(hf)
    prompt, answer = samples()[2]
    ids = AutoTokenizer.from_pretrained(installed.base)(prompt + answer,
                                                        return_tensors="pt")["input_ids"]
    n = ids.shape[1]
    with torch.inference_mode():
        reference = hf(ids).logits[0]
        torch.testing.assert_close(ours(ids[0], every=True), reference, atol=1e-4, rtol=1e-4)
        cache = bloom.Cache(ours.shape, n)
        torch.testing.assert_close(ours(ids[0, : n - 3], cache)[0], reference[n - 4],
                                   atol=1e-4, rtol=1e-4)
        for j in range(n - 3, n):  # one token at a time on the key/value cache
            torch.testing.assert_close(ours(ids[0, j: j + 1], cache)[0], reference[j],
                                       atol=1e-4, rtol=1e-4)


def test_sampling_filters_like_transformers() -> None:
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(300, generator=gen) * 3
    seen = torch.tensor([5, 7, 7, 120, 299])
    how = bloom.Sampling(temperature=0.8, top_p=0.9, repetition_penalty=1.2)
    chain = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.2),
                                 TemperatureLogitsWarper(0.8), TopKLogitsWarper(bloom.TOP_K),
                                 TopPLogitsWarper(0.9)])
    expected = torch.softmax(chain(seen[None], logits[None].clone())[0], -1)
    probs, index = bloom.candidates(logits, seen, how)
    got = torch.zeros(300).index_put_((index,), probs)
    torch.testing.assert_close(got, expected)
    greedy = bloom.Sampling(temperature=0.0, top_p=1.0, repetition_penalty=1.2)
    penalized = RepetitionPenaltyLogitsProcessor(1.2)(seen[None], logits[None].clone())[0]
    assert bloom.next_token(logits, seen, greedy) == int(penalized.argmax())


def test_select_engine_per_architecture() -> None:
    supported = torch.backends.quantized.supported_engines
    if "qnnpack" in supported:
        assert int8.select_engine("aarch64") == "qnnpack"
    here = int8.select_engine()
    assert here in supported
    assert torch.backends.quantized.engine == here


def test_artifact_loads_under_qnnpack(installed: ModelFiles,
                                      fp32: model.Loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch has no qnnpack engine")
    monkeypatch.setattr(int8.platform, "machine", lambda: "aarch64")  # as on a Jetson
    try:
        loaded = model.load(installed, "torch-int8", "cpu")
        assert loaded.info["engine"] == "qnnpack"
        assert _agreement(loaded, fp32) > 0.85
    finally:
        int8.select_engine()


def test_separate_adapter_is_applied_at_load(installed: ModelFiles, tmp_path: Path,
                                             fp32: model.Loaded) -> None:
    files = copy_models(installed, tmp_path / "models")
    meta = build(files, merge=False)
    assert meta["merged"] is False
    loaded = model.load(files, "torch-int8", "cpu")
    qkv = loaded.model.blocks[0].query_key_value
    assert isinstance(qkv, int8.LoraLinear)
    assert _agreement(loaded, fp32) > 0.85
    (files.adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(GenerationError, match="adapter is missing"):
        model.load(files, "torch-int8", "cpu")


def test_bf16_embedding_variant(installed: ModelFiles, tmp_path: Path,
                                fp32: model.Loaded) -> None:
    files = copy_models(installed, tmp_path / "models")
    build(files, embedding="bf16")
    loaded = model.load(files, "torch-int8", "cpu")
    assert isinstance(loaded.model.head, int8.Bf16Head)
    assert _agreement(loaded, fp32) > 0.85


def test_artifact_is_standard_safetensors_and_aligned(installed: ModelFiles) -> None:
    from safetensors import safe_open

    path = installed.artifact / "model.safetensors"
    st = int8.SafetensorsFile(path)
    try:
        for name in st.entries:
            assert (st._base + st.entries[name]["data_offsets"][0]) % 64 == 0, name
        dtypes = {st.entries[n]["dtype"] for n in st.entries if n.endswith(".weight")}
    finally:
        st.close()
    assert "I8" in dtypes
    with safe_open(str(path), framework="pt") as fh:
        weight = fh.get_tensor("transformer.h.0.mlp.dense_h_to_4h.weight")
    assert weight.dtype == torch.int8


def test_pruned_vocabulary_keeps_text_round_trip(installed: ModelFiles, tmp_path: Path,
                                                 fp32: model.Loaded) -> None:
    tokenizer = json.loads((installed.base / "tokenizer.json").read_text())
    _pruned, kept = prune_tokenizer(tokenizer, 40)
    assert len(kept) < len(tokenizer["model"]["vocab"])
    assert kept[:4] == [0, 1, 2, 3]  # the special tokens keep their place
    files = copy_models(installed, tmp_path / "models")
    meta = build(files, vocab=40)
    assert meta["vocab_pruned"] and meta["vocab_size"] == len(kept)
    loaded = model.load(files, "torch-int8", "cpu")
    assert loaded.model.shape.vocab == len(kept)
    for prompt, answer in samples()[:3]:
        ids = loaded.tokenizer.encode(prompt + answer)
        assert max(ids) < len(kept)
        assert loaded.tokenizer.decode(ids) == prompt + answer
    text, tokens = loaded.generate(samples()[0][0], 1, GREEDY)
    assert tokens > 0 and isinstance(text, str)  # fewer merges: the answer may differ


def test_token_text_knows_partial_utf8() -> None:
    assert token_text("Ġhello") == " hello"
    assert token_text("æ") is None  # the first byte of a 3-byte character


def test_corrupt_and_missing_files_are_clear_errors(installed: ModelFiles,
                                                    tmp_path: Path) -> None:
    files = copy_models(installed, tmp_path / "models")
    weights = files.artifact / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(GenerationError, match="truncated"):
        model.load(files, "torch-int8", "cpu")
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(GenerationError, match="cannot read"):
        model.load(files, "torch-int8", "cpu")
    weights.unlink()
    with pytest.raises(GenerationError, match=r"model\.safetensors is missing"):
        model.load(files, "torch-int8", "cpu")
    with pytest.raises(GenerationError, match="run `chime model build`"):
        model.load(files, "auto", "cpu")
    (files.base / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(GenerationError, match="cannot load fp32 model"):
        model.load(files, "fp32", "cpu")
    with pytest.raises(GenerationError, match="CPU only"):
        model.load(installed, "torch-int8", "cuda")


def test_int8_worker_path_imports_no_transformers(installed: ModelFiles) -> None:
    """Cold start: loading and writing with the artifact needs torch and tokenizers only."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from pathlib import Path\n"
            "from daemon.generation import model\n"
            "from daemon.generation.files import ModelFiles\n"
            f"loaded = model.load(ModelFiles(Path({str(installed.root)!r})), 'auto', 'cpu')\n"
            "print(loaded.generate('human:', 1, model.Decoding(0.8, 0.9, 1.2, 4))[1])\n"
            "print(sorted(m for m in ('transformers', 'peft') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    tokens, imported = done.stdout.splitlines()
    assert int(tokens) > 0 and imported == "[]", done.stdout
