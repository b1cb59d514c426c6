"""`sft_lora`: fine-tune a causal LM with LoRA on instruction rows and score it on held-out rows.

The decoder is any causal LM by name or folder (`smollm2` is the offline
SmolLM2-135M-Instruct, loaded by `generate.models.load_causal_lm`). LoRA
adapters (peft; rank `lora_r` on the model type's default projections) are
the only trained weights. Rows are formatted by `tokens` (chat template when
the tokenizer has one), and the loss counts response tokens only. Training is
seeded: the adapter initialisation (torch) and the batch order (numpy) come
from `seed`, and dropout is off by default, so a seed gives one result on one
device. AdamW, linear warm-up then linear decay over batches of `batch_size`
rows drawn epoch by epoch from seeded permutations.

The protocol is budget-independent by default: `epochs` passes over the
training rows (each row seen exactly `epochs` times; a pass is a permutation
cut into batches, the last one smaller), so a 5 % set and a 20 % set are
trained the same way and the compute grows with the rows. `steps` (when set)
replaces it with a fixed step count, cycling through the rows, the same compute
for every set (a small set is then seen for more epochs).

Metrics: the held-out response loss per token (all held-out response tokens
pooled) and its perplexity; with `exact_match_rows > 0` (GSM8K) the share of a
fixed sample of held-out rows (chosen by `exact_match_seed`, not the training
seed) whose greedy generation ends with the reference's final number.

References: Hu et al., LoRA, ICLR 2022.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from distill_core.errors import ConfigError
from distill_core.instruct.answers import is_exact_match
from distill_core.instruct.device import resolve_device
from distill_core.instruct.losses import response_loss, response_losses
from distill_core.instruct.rows import InstructionRow
from distill_core.instruct.tokens import (
    Encoded,
    collate,
    encode_rows,
    pad_id_of,
    render_prompt,
)

# The defaults, chosen on the Alpaca subset's training pool (README, "Instruction data").
EPOCHS = 1
LR = 1e-3
LORA_R = 8
BATCH_SIZE = 8
MAX_LENGTH = 512


class SftOptions(BaseModel):
    """Settings of the `sft_lora` learner."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="smollm2", description="Decoder: hub id, local folder, or "
                       "`smollm2` (offline SmolLM2-135M-Instruct).")
    lora_r: int = Field(default=LORA_R, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(default=2 * LORA_R, ge=1, description="LoRA scaling numerator.")
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] | None = Field(
        default=None, description="Modules to adapt; unset: peft's default for the model type "
        "(q_proj and v_proj for Llama), else every linear layer; [all-linear]: every linear "
        "layer.")
    lr: float = Field(default=LR, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(default=0.0, ge=0.0)
    epochs: int = Field(default=EPOCHS, ge=0, description="Passes over the training rows "
                        "(each row seen this many times); ignored when `steps` is set.")
    steps: int | None = Field(default=None, ge=0, description="Fixed optimizer steps instead "
                              "of epochs (rows cycled; unset: `epochs`).")
    batch_size: int = Field(default=BATCH_SIZE, ge=1)
    warmup_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    max_length: int = Field(default=MAX_LENGTH, ge=8,
                            description="Tokens per row (prompt+response).")
    eval_batch_size: int = Field(default=16, ge=1)
    eval_before: bool = Field(default=False, description="Also score the model before training.")
    exact_match_rows: int = Field(default=0, ge=0, description="GSM8K: held-out rows whose "
                                  "final number is checked after greedy decoding (0: none).")
    exact_match_seed: int = Field(default=0, description="Seed of that fixed sample.")
    max_new_tokens: int = Field(default=256, ge=1, description="Greedy decoding length.")
    device: str | None = Field(default=None, description="cuda if available, else cpu.")


@dataclass
class SftResult:
    """Held-out metrics of one fine-tuned model, with its training curve."""

    eval_loss: float
    perplexity: float
    eval_rows: int
    eval_tokens: int
    train_losses: list[float] = field(default_factory=list)
    eval_loss_before: float | None = None
    exact_match: float | None = None
    exact_match_rows: int = 0
    seed: int = 0
    wall_s: float = 0.0
    train_s: float = 0.0
    eval_s: float = 0.0
    device: str = "cpu"


def add_lora(model: Any, options: SftOptions, seed: int) -> Any:
    """`model` wrapped with fresh LoRA adapters (initialised from `seed`); only they train."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    targets: Any = options.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"  # peft's keyword for every linear layer but the output head
    config = LoraConfig(r=options.lora_r, lora_alpha=options.lora_alpha,
                        lora_dropout=options.lora_dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError:
        if targets is not None:
            raise
        config.target_modules = "all-linear"  # a model type peft has no default for
        return get_peft_model(model, config)


def pooled_loss(model: Any, encoded: Sequence[Encoded], pad_id: int, device: str,
                batch_size: int) -> tuple[float, int]:
    """(loss per response token over all rows pooled, token count)."""
    sums, counts = response_losses(model, encoded, pad_id, device, batch_size)
    tokens = int(counts.sum())
    return (float(sums.sum() / tokens) if tokens else float("nan")), tokens


def epoch_order(rows: int, epochs: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """Row indices of each step's batch: every epoch a seeded permutation of the rows cut into
    batches (the last one smaller), so each row is seen exactly `epochs` times."""
    rng = np.random.default_rng(seed)
    batches: list[np.ndarray] = []
    for _ in range(epochs):
        order = rng.permutation(rows)
        batches.extend(order[i:i + batch_size] for i in range(0, rows, batch_size))
    return batches


def training_batches(rows: int, options: SftOptions, seed: int) -> list[np.ndarray]:
    """The batches of one fit: `steps` cycled batches when set, else `epochs` passes."""
    if options.steps is not None:
        return batch_order(rows, options.steps, options.batch_size, seed)
    return epoch_order(rows, options.epochs, options.batch_size, seed)


def batch_order(rows: int, steps: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """Row indices of each step's batch: consecutive slices of seeded permutations, a new
    permutation each time the rows run out."""
    rng = np.random.default_rng(seed)
    stream: list[int] = []
    needed = steps * batch_size
    while len(stream) < needed:
        stream.extend(rng.permutation(rows).tolist())
    return [np.asarray(stream[i * batch_size:(i + 1) * batch_size]) for i in range(steps)]


def train_lora(model: Any, encoded: Sequence[Encoded], options: SftOptions, seed: int,
               pad_id: int, device: str) -> list[float]:
    """Train the LoRA weights of `model` in place; the training loss of every step."""
    import torch

    batches = training_batches(len(encoded), options, seed)
    if not batches:
        return []
    total = len(batches)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
    warmup = int(options.warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    losses: list[float] = []
    for indices in batches:
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in indices],
                                                      pad_id).items()}
        loss = response_loss(model, batch)
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def greedy_answers(model: Any, tokenizer: Any, prompts: Sequence[str], device: str,
                   max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy generations for `prompts` (left-padded batches), decoded without the prompt."""
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [render_prompt(tokenizer, p) for p in prompts[start:start + batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad():
                generated = model.generate(**batch, do_sample=False,
                                           max_new_tokens=max_new_tokens,
                                           pad_token_id=pad_id_of(tokenizer))
            new = generated[:, batch["input_ids"].shape[1]:]
            outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return outputs


def exact_match(model: Any, tokenizer: Any, rows: Sequence[InstructionRow],
                options: SftOptions, device: str) -> tuple[float, int]:
    """(share of the fixed sample answered with the reference's final number, sample size)."""
    count = min(options.exact_match_rows, len(rows))
    chosen = np.sort(np.random.default_rng(options.exact_match_seed)
                     .choice(len(rows), size=count, replace=False))
    sample = [rows[int(i)] for i in chosen]
    answers = greedy_answers(model, tokenizer, [r.prompt for r in sample], device,
                             options.max_new_tokens, options.eval_batch_size)
    hits = sum(is_exact_match(a, r.response) for a, r in zip(answers, sample, strict=True))
    return hits / count, count


def sft_lora(train_rows: Sequence[InstructionRow], eval_rows: Sequence[InstructionRow],
             options: SftOptions | None = None, seed: int = 0) -> SftResult:
    """Fine-tune `options.model` with LoRA on `train_rows`; score it on `eval_rows`."""
    options = options or SftOptions()
    if not train_rows:
        raise ConfigError("sft_lora: no training rows")
    if not eval_rows:
        raise ConfigError("sft_lora: no evaluation rows")
    clock = time.perf_counter()
    device = resolve_device(options.device)
    result = _sft_lora(train_rows, eval_rows, options, seed, device)
    result.wall_s = time.perf_counter() - clock
    return result


def _sft_lora(train_rows: Sequence[InstructionRow], eval_rows: Sequence[InstructionRow],
              options: SftOptions, seed: int, device: str) -> SftResult:
    from distill_core.generate.models import load_causal_lm

    lm = load_causal_lm(options.model, device=device)
    tokenizer = lm.tokenizer
    pad_id = pad_id_of(tokenizer)
    model = add_lora(lm.model, options, seed)
    train_encoded = encode_rows(tokenizer, train_rows, options.max_length)
    eval_encoded = encode_rows(tokenizer, eval_rows, options.max_length)
    before = None
    if options.eval_before:
        before, _ = pooled_loss(model, eval_encoded, pad_id, device, options.eval_batch_size)
    clock = time.perf_counter()
    losses = train_lora(model, train_encoded, options, seed, pad_id, device)
    trained = time.perf_counter()
    loss, tokens = pooled_loss(model, eval_encoded, pad_id, device, options.eval_batch_size)
    result = SftResult(eval_loss=loss, perplexity=math.exp(loss) if loss < 700 else math.inf,
                       eval_rows=len(eval_rows), eval_tokens=tokens, train_losses=losses,
                       eval_loss_before=before, seed=seed, device=device,
                       train_s=trained - clock, eval_s=time.perf_counter() - trained)
    if options.exact_match_rows > 0:
        result.exact_match, result.exact_match_rows = exact_match(model, tokenizer, eval_rows,
                                                                  options, device)
    return result
