"""The prompts a generative run samples, one set per replicate (run seed).

`llm_synth`: per class, `per_class` k-means slots on the training embeddings;
each slot's prompt lists its most representative real rows (their ids become
`parent_ids`) and asks for `per_answer` new examples, and starts the answer
with "-" (`prompts.ANSWER_PREFIX`) so the model writes the list it is asked for;
each prompt is sampled `samples_per_slot` times (best of n). `dilm`:
`candidates_per_class` copies of the class prompt, sampled once each (every copy
gets its own seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from distill_core.generate.dilm import class_prompt
from distill_core.generate.llm_synth import plan_slots
from distill_core.generate.prompts import ANSWER_PREFIX, few_shot_messages
from distill_core.generate.sampling import render_prompts
from distill_core.methods.options import DilmOptions, LlmSynthOptions


@dataclass
class PromptInfo:
    replicate: int
    label_id: int
    slot: int
    parent_ids: list[str]
    example_texts: list[str]
    centroid: list[float] | None = None


@dataclass
class PromptPlan:
    prompt_ids: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    info: dict[str, PromptInfo] = field(default_factory=dict)
    samples: int = 1

    def add(self, prompt_id: str, prompt: str, info: PromptInfo) -> None:
        self.prompt_ids.append(prompt_id)
        self.prompts.append(prompt)
        self.info[prompt_id] = info


def plan_llm_synth(train: pa.Table, train_x: np.ndarray, label_names: Sequence[str],
                   per_class: int, seeds: Sequence[int], options: LlmSynthOptions,
                   tokenizer) -> PromptPlan:
    texts = train.column("text").to_pylist()
    ids = train.column("example_id").to_pylist()
    labels = train.column("label_id").to_numpy()
    plan = PromptPlan(samples=options.samples_per_slot)
    for replicate, seed in enumerate(seeds):
        slots = plan_slots(train_x, labels, per_class, options.shots, seed)
        messages = [few_shot_messages(label_names[s.label_id], [texts[r] for r in s.example_rows],
                                      options.per_answer) for s in slots]
        for slot, prompt in zip(slots, render_prompts(tokenizer, messages), strict=True):
            plan.add(f"r{replicate}-c{slot.label_id}-s{slot.slot}", prompt + ANSWER_PREFIX,
                     PromptInfo(
                         replicate, slot.label_id, slot.slot,
                         [ids[r] for r in slot.example_rows],
                         [texts[r] for r in slot.example_rows], slot.centroid.tolist()))
    return plan


def plan_dilm(label_ids: Sequence[int], label_names: Sequence[str], seeds: Sequence[int],
              options: DilmOptions) -> PromptPlan:
    plan = PromptPlan(samples=1)
    for replicate in range(len(seeds)):
        for label_id in label_ids:
            prompt = class_prompt(label_names[label_id])
            for i in range(options.candidates_per_class):
                plan.add(f"r{replicate}-c{label_id}-n{i}", prompt,
                         PromptInfo(replicate, int(label_id), i, [], []))
    return plan
