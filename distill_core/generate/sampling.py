"""Batched sampling from a causal LM, reproducible per prompt.

Each prompt carries its own seed: a batch is sampled under a generator seeded
from the batch's first prompt seed, so re-running a shard with the same seeds
gives the same text whatever ran before it in the process. Returns the new
text and its token count per prompt (the tokens-per-second figure counts
only generated tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from distill_core.generate.models import CausalLM


@dataclass
class SamplingSettings:
    max_new_tokens: int = 96
    temperature: float = 0.8
    top_p: float = 0.95
    batch_size: int = 8


@dataclass
class Generation:
    text: str
    new_tokens: int


def render_prompts(tokenizer, messages: Sequence[list[dict[str, str]]]) -> list[str]:
    """Chat-template each prompt (plain concatenation when the tokenizer has no template)."""
    if getattr(tokenizer, "chat_template", None):
        return [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                for m in messages]
    return ["\n".join(turn["content"] for turn in m) + "\n" for m in messages]


def sample(lm: CausalLM, prompts: Sequence[str], seeds: Sequence[int],
           settings: SamplingSettings) -> list[Generation]:
    """One sampled continuation per prompt, in order."""
    import torch

    if len(prompts) != len(seeds):
        raise ValueError("one seed per prompt")
    tokenizer, results = lm.tokenizer, []
    for start in range(0, len(prompts), settings.batch_size):
        chunk = list(prompts[start:start + settings.batch_size])
        # The prompt is the whole text (a chat template writes its own markers; dilm trains
        # without a BOS): the tokenizer adds nothing to it.
        batch = tokenizer(chunk, return_tensors="pt", padding=True,
                          add_special_tokens=False).to(lm.device)
        torch.manual_seed(int(seeds[start]))
        with torch.inference_mode():
            output = lm.model.generate(
                **batch, do_sample=True, temperature=settings.temperature,
                top_p=settings.top_p, max_new_tokens=settings.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id)
        new = output[:, batch["input_ids"].shape[1]:]
        for row in new:
            keep = row[row != tokenizer.pad_token_id]
            if tokenizer.eos_token_id is not None:
                keep = keep[keep != tokenizer.eos_token_id]
            results.append(Generation(tokenizer.decode(keep, skip_special_tokens=True),
                                      int(len(keep))))
    return results
