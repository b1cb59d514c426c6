"""`llm_synth` for instruction data: prompts from k-means prototypes, parsing, best of n.

Plan (`plan_pairs`): per replicate (run seed), k-means on the pool's prompt
embeddings with k = the budget (`generate.llm_synth.plan_slots`, one class); each
slot's prompt shows the `shots` real pairs nearest its centroid, whose ids become
the generated rows' `parent_ids`, and asks for ONE new instruction and its
response in a fixed format; the answer is started with `### Instruction:` so the
model writes in it. Parse (`parse_pair`): the instruction runs to a
`### Response:` line, the response to the next `### ...` heading or the end; no
response line, or an empty part, is `unparseable_generation`, and a response
still open when the answer ran out of tokens is `truncated`, and a response that
only repeats its instruction is `echoed_instruction` (the reference decoder scores
such a copy well, by loss and by IFD: SmolLM2 on Alpaca, benchmarks/RESULTS.md). Choose
(`choose_pairs`): per slot, candidates in order of the reference decoder's
score (lowest first); one whose prompt is cosine-closer than `max_similarity`
to one of its shots or to an already chosen row is `near_duplicate_generation`,
the first other one wins, the rest are `not_best_of_n` (the runners-up that the
filter stage may refill from). Every candidate ends chosen or rejected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from distill_core.generate.llm_synth import plan_slots
from distill_core.generate.plan import PromptInfo, PromptPlan
from distill_core.generate.sampling import render_prompts

INSTRUCTION_HEADING = "### Instruction:"
RESPONSE_HEADING = "### Response:"
ANSWER_PREFIX = INSTRUCTION_HEADING + "\n"
REQUEST = ("Here are examples of instructions and their responses:\n\n{examples}\n\n"
           "Write ONE new instruction, different from these, and its response, in the same "
           "format: a line \"" + INSTRUCTION_HEADING + "\", the instruction, a line \""
           + RESPONSE_HEADING + "\", the response. Write nothing else.")
_RESPONSE = re.compile(r"^[ \t]*#*[ \t]*response[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)
_HEADING = re.compile(r"^[ \t]*#{2,}|^[ \t]*#*[ \t]*instruction[ \t]*:", re.IGNORECASE
                      | re.MULTILINE)


def pair_messages(shots: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Chat messages asking for one new pair after the `shots` (prompt, response) pairs."""
    examples = "\n\n".join(f"{INSTRUCTION_HEADING}\n{p.strip()}\n{RESPONSE_HEADING}\n"
                           f"{r.strip()}" for p, r in shots)
    return [{"role": "user", "content": REQUEST.format(examples=examples)}]


@dataclass(frozen=True)
class ParsedPair:
    """One answer read: the new (prompt, response), or why there is none."""

    prompt: str | None = None
    response: str | None = None
    reason: str | None = None  # unparseable_generation | truncated | echoed_instruction
    detail: str = ""


def parse_pair(answer: str, ran_out: bool = False) -> ParsedPair:
    """The pair in one answer (the text after `ANSWER_PREFIX`); see the module doc.

    `ran_out`: the answer used every allowed new token, so a response with no heading after
    it may stop mid-way."""
    marker = _RESPONSE.search(answer)
    if marker is None:
        return ParsedPair(reason="unparseable_generation", detail="no response heading")
    prompt = answer[:marker.start()].strip()
    rest = answer[marker.end():]
    end = _HEADING.search(rest)
    response = (rest if end is None else rest[:end.start()]).strip()
    if _HEADING.search(prompt):
        return ParsedPair(reason="unparseable_generation", detail="a heading in the instruction")
    if not prompt or not response:
        return ParsedPair(reason="unparseable_generation",
                          detail="empty instruction" if not prompt else "empty response")
    if end is None and ran_out:
        return ParsedPair(reason="truncated", detail="response cut at max_new_tokens")
    if _letters(response) == _letters(prompt):
        return ParsedPair(reason="echoed_instruction", detail="the response repeats it")
    return ParsedPair(prompt, response)


def _letters(text: str) -> str:
    """Letters and digits, lower case: what two texts share when only spacing differs."""
    return re.sub(r"[\W_]+", "", text.lower())


def plan_pairs(prompts: Sequence[str], responses: Sequence[str], ids: Sequence[str],
               prompt_x: np.ndarray, budget: int, shots: int, seeds: Sequence[int],
               samples: int, tokenizer) -> PromptPlan:
    """One prompt per k-means slot and replicate (see the module doc); `samples` each."""
    plan = PromptPlan(samples=samples)
    single_class = np.zeros(len(prompts), dtype=np.int64)
    for replicate, seed in enumerate(seeds):
        slots = plan_slots(prompt_x, single_class, budget, shots, seed)
        messages = [pair_messages([(prompts[r], responses[r]) for r in s.example_rows])
                    for s in slots]
        for slot, text in zip(slots, render_prompts(tokenizer, messages), strict=True):
            plan.add(f"r{replicate}-s{slot.slot}", text + ANSWER_PREFIX, PromptInfo(
                replicate, 0, slot.slot, [ids[r] for r in slot.example_rows],
                [prompts[r] for r in slot.example_rows], slot.centroid.tolist()))
    return plan


@dataclass
class PairChoice:
    chosen: list[int] = field(default_factory=list)  # one winner per slot, in slot order
    reserve: list[int] = field(default_factory=list)  # runners-up, best score first
    reasons: dict[int, str] = field(default_factory=dict)  # candidate -> reject reason


def choose_pairs(slot_of: np.ndarray, prompt_vectors: np.ndarray, shot_similarity: np.ndarray,
                 score: np.ndarray, max_similarity: float, reserve: int = 0) -> PairChoice:
    """Best of n per slot (module doc), then up to `reserve` runners-up by score.

    slot_of[i]: candidate i's slot; prompt_vectors: L2-normalised prompt embeddings;
    shot_similarity[i]: the highest cosine of i's prompt to its slot's shots; score[i]: the
    criterion, lower is better (NaN: not scored, `unscored_generation`)."""
    out = PairChoice()

    def too_close(i: int) -> bool:
        return bool(out.chosen) and float(
            np.max(prompt_vectors[out.chosen] @ prompt_vectors[i])) >= max_similarity

    runners_up: list[int] = []
    for slot in sorted(set(slot_of.tolist())):
        members = np.flatnonzero(slot_of == slot)
        keyed = [math.inf if math.isnan(score[i]) else float(score[i]) for i in members]
        winner = None
        for i in (int(members[k]) for k in np.argsort(keyed, kind="stable")):
            if math.isnan(score[i]):
                out.reasons[i] = "unscored_generation"
            elif shot_similarity[i] >= max_similarity:
                out.reasons[i] = "near_duplicate_generation"
            elif winner is not None:
                runners_up.append(i)
            elif too_close(i):
                out.reasons[i] = "near_duplicate_generation"
            else:
                winner = i
                out.chosen.append(i)
    runners_up.sort(key=lambda i: (float(score[i]), i))
    out.reserve = runners_up[:reserve]
    out.reasons.update({i: "not_best_of_n" for i in runners_up[reserve:]})
    return out
