"""A tiny, real BLOOM + character LoRA laid out like the hub repositories, built once per session.

``build_tiny(root)`` trains (in a few seconds) a 2-layer BLOOM and a LoRA on seed-format lines,
so that the model really answers the training prompts, and writes:

* ``root/base``: config.json, model.safetensors, tokenizer.json (byte-level BPE trained here
  with ``tokenizers``), tokenizer_config.json — like ``bigscience/bloomz-1b7``;
* ``root/adapter_bin``: adapter_config.json + pickled adapter_model.bin — like the hub's LoRA;
* ``root/adapter_st``: the same adapter as adapter_model.safetensors.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.context import Context
from daemon.context.prompt import END_MARKER, build_prompt

TASKS = ["喝水", "吃药", "开会", "跑步", "睡觉", "写日记"]
CONTEXTS = [("晴天", "工作日", "上午"), ("小雨", "双休日", "晚上"), ("多云", "春节", "下午")]
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]  # BLOOM's ids 0..3


def context(weather: str = "晴天", day: str = "工作日", part: str = "上午") -> Context:
    """A context with the given words (kind and time are irrelevant to the model)."""
    at = datetime(2025, 3, 3, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    return Context(at=at, weather=weather, weather_source="live", day=day, day_kind="workday",
                   part_of_day=part)


def answer(task: str, weather: str, part: str) -> str:
    """The character's answer the tiny model is trained to give."""
    return f"主人{part}好呀，现在该{task}啦，今天{weather}，要照顾好自己哦！"


def samples() -> list[tuple[str, str]]:
    """(prompt, answer + end marker) for every task and context."""
    out = []
    for task, (weather, day, part) in itertools.product(TASKS, CONTEXTS):
        prompt = build_prompt(context(weather, day, part), task)
        out.append((prompt, answer(task, weather, part) + END_MARKER))
    return out


@dataclass(frozen=True)
class TinyModel:
    root: Path
    base: Path
    adapter_bin: Path
    adapter_st: Path


def _tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    lines = [p + a for p, a in samples()] + ["Hello world, this is an English line."] * 3
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(path)


def build_tiny(root: Path, steps: int = 450) -> TinyModel:
    """Train and save the tiny model under ``root`` (reused when already there)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, BloomConfig, BloomForCausalLM

    tiny = TinyModel(root, root / "base", root / "adapter_bin", root / "adapter_st")
    if (root / "done").exists():
        return tiny
    _tokenizer(tiny.base)
    tok = AutoTokenizer.from_pretrained(tiny.base)
    torch.manual_seed(0)
    config = BloomConfig(vocab_size=len(tok), hidden_size=64, n_layer=2, n_head=4,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    # No dropout: with it, this 2-layer model confuses tasks on a third of the prompts (loss 0.06);
    # without, it answers all 18 training prompts exactly (loss 0.002).
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query_key_value"],
                      task_type="CAUSAL_LM", init_lora_weights=False)
    model = get_peft_model(BloomForCausalLM(config), lora)
    for param in model.parameters():  # train base and adapter together
        param.requires_grad_(True)
    data = samples()
    encoded = [tok(p + a + tok.eos_token)["input_ids"] for p, a in data]
    prompt_lens = [len(tok(p)["input_ids"]) for p, _ in data]
    width = max(map(len, encoded))
    ids = torch.full((len(data), width), config.pad_token_id)
    labels = torch.full((len(data), width), -100)
    for i, (seq, plen) in enumerate(zip(encoded, prompt_lens, strict=True)):
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, plen : len(seq)] = torch.tensor(seq[plen:])
    mask = (ids != config.pad_token_id).long()
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    model.save_pretrained(tiny.adapter_st)  # adapter_config.json + adapter_model.safetensors
    tiny.adapter_bin.mkdir()
    (tiny.adapter_bin / "adapter_config.json").write_text(
        (tiny.adapter_st / "adapter_config.json").read_text())
    from peft.utils import get_peft_model_state_dict

    state = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
    torch.save(state, tiny.adapter_bin / "adapter_model.bin")
    base = model.unload()
    base.save_pretrained(tiny.base)
    (root / "done").write_text(json.dumps({"final_loss": float(loss.detach())}))
    return tiny
