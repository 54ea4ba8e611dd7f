"""Loading the tiny model on every backend through the real code, and building the artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from daemon.errors import GenerationError  # noqa: E402
from daemon.generation import int8, model  # noqa: E402
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
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:
        pytest.skip(f"bitsandbytes does not import here: {exc}")
    try:
        loaded = model.load(installed, "bnb-int8", "cpu")
    except GenerationError as exc:
        if "cpu" in str(exc).lower() or "cuda" in str(exc).lower():
            pytest.skip(f"bitsandbytes has no CPU int8 path here: {exc}")
        raise
    layer = loaded.model.base_model.model.transformer.h[0].mlp.dense_h_to_4h
    assert type(layer).__name__ == "Linear8bitLt"
    assert _agreement(loaded, fp32) > 0.8


@pytest.mark.parametrize("kernel", ["auto", "weight-only"])
def test_int8_artifact_loads_mapped_without_float_linears(installed: ModelFiles,
                                                          fp32: model.Loaded,
                                                          kernel: str) -> None:
    loaded = model.load(installed, "torch-int8", "cpu", kernel=kernel)
    mods = dict(loaded.model.named_modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in mods.values())
    assert isinstance(mods["lm_head"], int8.Int8Linear)
    assert isinstance(mods["transformer.word_embeddings"], int8.Int8Embedding)
    assert loaded.info["engine"] == (int8.select_engine() if kernel == "auto" else "weight-only")
    assert _agreement(loaded, fp32) > 0.85
    for got, expected in _answers(loaded):
        assert got.startswith(expected)


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
    meta = model.build(files, merge=False)
    assert meta["merged"] is False
    loaded = model.load(files, "torch-int8", "cpu")
    qkv = loaded.model.transformer.h[0].self_attention.query_key_value
    assert isinstance(qkv, int8.LoraLinear)
    assert _agreement(loaded, fp32) > 0.85
    (files.adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(GenerationError, match="adapter is missing"):
        model.load(files, "torch-int8", "cpu")


def test_bf16_embedding_variant(installed: ModelFiles, tmp_path: Path,
                                fp32: model.Loaded) -> None:
    files = copy_models(installed, tmp_path / "models")
    model.build(files, embedding="bf16")
    loaded = model.load(files, "torch-int8", "cpu")
    assert isinstance(loaded.model.lm_head, int8.Bf16Head)
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
    meta = model.build(files, vocab=40)
    assert meta["vocab_pruned"] and meta["vocab_size"] == len(kept)
    loaded = model.load(files, "torch-int8", "cpu")
    assert loaded.model.config.vocab_size == len(kept)
    for prompt, answer in samples()[:3]:
        ids = loaded.tokenizer(prompt + answer)["input_ids"]
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
