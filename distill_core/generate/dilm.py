"""`dilm`: a decoder fine-tuned class-conditionally on the training split, then sampled.

After DiLM (Maekawa et al., 2024): the generator learns p(text | label) from
sentences written as `label: <name>\\ntext: <sentence><eos>`; the loss counts
the sentence's tokens only, so the model learns to write the class, not to
repeat the prompt. With `lora_r > 0` only LoRA adapters on every linear layer
train (peft; how 1B+ models fit one GPU) and are merged into the weights
before saving, so generation actors load a plain model folder. Sampling a
class asks the fine-tuned model to continue `label: <name>\\ntext:`; the first
line of the continuation is the candidate.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from distill_core.artifacts.sealed import seal
from distill_core.generate.models import load_causal_lm
from distill_core.generate.prompts import ParsedOutput

TRAINING_LOG = "training.json"


@dataclass
class GeneratorTraining:
    steps: int = 150
    batch_size: int = 16
    lr: float = 5e-4
    max_length: int = 64
    lora_r: int = 16
    lora_alpha: int = 32
    warmup_ratio: float = 0.1
    seed: int = 0


@dataclass
class TrainedGenerator:
    folder: str
    losses: list[float] = field(default_factory=list)
    trainable_parameters: int = 0
    wall_time_s: float = 0.0


def class_prompt(label: str) -> str:
    """What the generator is conditioned on (and what sampling continues)."""
    return f"label: {label}\ntext:"


def _training_batch(tokenizer, texts: Sequence[str], labels: Sequence[str], max_length: int):
    """Token ids with the prompt's positions masked out of the loss (-100)."""
    import torch

    ids, targets = [], []
    eos = tokenizer.eos_token_id
    for text, label in zip(texts, labels, strict=True):
        prompt = tokenizer(class_prompt(label), add_special_tokens=False)["input_ids"]
        body = tokenizer(" " + " ".join(text.split()), add_special_tokens=False)["input_ids"]
        body = (body + [eos])[:max(max_length - len(prompt), 1)]
        ids.append(prompt + body)
        targets.append([-100] * len(prompt) + body)
    width = max(len(row) for row in ids)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    labels_t = torch.full((len(ids), width), -100, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, (row, target) in enumerate(zip(ids, targets, strict=True)):  # right padding
        input_ids[i, :len(row)] = torch.tensor(row)
        labels_t[i, :len(row)] = torch.tensor(target)
        mask[i, :len(row)] = 1
    return input_ids, mask, labels_t


@dataclass(frozen=True)
class DecoderSource:
    """Which decoder to load and how: a hub id or folder, its dtype, device, remote code."""

    model: str
    dtype: str = "float32"
    device: str | None = None
    trust_remote_code: bool = False


def train_generator(decoder: DecoderSource, texts: Sequence[str], labels: Sequence[str],
                    out_dir: str | Path, settings: GeneratorTraining,
                    progress: Callable[[int, int, float], None] | None = None
                    ) -> TrainedGenerator:
    """Fine-tune the decoder on (text, label name) pairs; save the merged model to `out_dir`."""
    import time

    import torch
    from transformers import get_cosine_schedule_with_warmup

    if len(texts) == 0:
        raise ValueError("the generator needs training sentences")
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    lm = load_causal_lm(decoder.model, decoder.dtype, decoder.device, decoder.trust_remote_code)
    network = lm.model
    if settings.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        network = get_peft_model(network, LoraConfig(
            r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
            target_modules="all-linear", task_type="CAUSAL_LM"))
    network.train()
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(
        optimiser, math.ceil(settings.warmup_ratio * settings.steps), settings.steps)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(texts))
    losses, cursor = [], 0
    for step in range(settings.steps):
        if cursor + settings.batch_size > len(order):
            order, cursor = rng.permutation(len(texts)), 0
        rows = order[cursor:cursor + settings.batch_size]
        cursor += settings.batch_size
        input_ids, mask, targets = _training_batch(
            lm.tokenizer, [texts[i] for i in rows], [labels[i] for i in rows],
            settings.max_length)
        loss = network(input_ids=input_ids.to(lm.device), attention_mask=mask.to(lm.device),
                       labels=targets.to(lm.device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step + 1, settings.steps, losses[-1])
    if settings.lora_r > 0:
        network = network.merge_and_unload()
    network.eval()
    target = Path(out_dir)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    network.save_pretrained(tmp, safe_serialization=True)
    lm.tokenizer.save_pretrained(tmp)
    trained = TrainedGenerator(str(target), losses, sum(p.numel() for p in trainable),
                               round(time.perf_counter() - start, 2))
    (tmp / TRAINING_LOG).write_text(json.dumps({**asdict(trained), "settings": asdict(settings),
                                                "base_model": decoder.model, "rows": len(texts)}))
    seal(tmp)  # reused only while its files are what was written here
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return trained


def training_summary(folder: str | Path) -> dict:
    """What the saved generator's training log says: losses at the start and end, cost."""
    log = json.loads((Path(folder) / TRAINING_LOG).read_text())
    losses = log.pop("losses")
    return {**log, "loss_first5": losses[:5], "loss_last5": losses[-5:]}


def parse_sample(text: str, min_words: int = 3, max_words: int = 60) -> ParsedOutput:
    """The candidate in one dilm sample: its first line (the generator ends it with EOS)."""
    out = ParsedOutput()
    line = " ".join(text.strip().split("\n", 1)[0].split()) if text.strip() else ""
    words = len(line.split())
    if words == 0:
        out.rejected.append((text, "empty_text"))
    elif words < min_words:
        out.rejected.append((line, "too_short"))
    elif words > max_words:
        out.rejected.append((line, "too_long"))
    else:
        out.kept.append(line)
    return out
