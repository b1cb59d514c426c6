"""Rows into token ids with response-only labels, the same for training, scoring and signals.

With a chat template the prompt is one user turn rendered with the generation
prompt, and the response is what the template adds after it for the assistant
turn (SmolLM2: the text, `<|im_end|>` and a newline). Without one the layout
is `[bos] prompt \\n\\n` then `response [eos]`. Prompt and response are tokenised
separately, so the boundary is exact: every prompt position's label is -100
(ignored by the loss), every response position's label is its token id.
A pair longer than `max_length` keeps the start of the response (at least a
quarter of the window) and the end of the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One row's prompt and response token ids (already truncated)."""

    prompt_ids: list[int]
    response_ids: list[int]

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids

    @property
    def labels(self) -> list[int]:
        return [IGNORE] * len(self.prompt_ids) + list(self.response_ids)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, prompt: str) -> str:
    """The text the model reads before it answers."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             tokenize=False, add_generation_prompt=True)
    return f"{tokenizer.bos_token or ''}{prompt}\n\n"


def render_response(tokenizer: Any, prompt: str, response: str) -> str:
    """The text the model should write after `render_prompt`, end marker included."""
    if has_chat_template(tokenizer):
        head = render_prompt(tokenizer, prompt)
        full = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
            tokenize=False)
        if full.startswith(head):
            return full[len(head):]
    return f"{response}{tokenizer.eos_token or ''}"


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode(tokenizer: Any, prompt: str, response: str, max_length: int) -> Encoded:
    """Token ids of one row, truncated to `max_length` positions."""
    if max_length < 8:
        raise ValueError(f"max_length must be 8 or more, got {max_length}")
    prompt_ids = _ids(tokenizer, render_prompt(tokenizer, prompt))
    response_ids = _ids(tokenizer, render_response(tokenizer, prompt, response))
    if len(prompt_ids) + len(response_ids) > max_length:
        keep = max(max_length - len(prompt_ids), max_length // 4)
        response_ids = response_ids[:keep]
        prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(response_ids)):]
    return Encoded(prompt_ids, response_ids)


def encode_rows(tokenizer: Any, rows: Sequence[Any], max_length: int) -> list[Encoded]:
    """`encode` for rows with `.prompt` and `.response`."""
    return [encode(tokenizer, r.prompt, r.response, max_length) for r in rows]


def response_alone(tokenizer: Any, encoded: Encoded) -> Encoded:
    """The same response tokens with no prompt: only the BOS token before them (if the
    tokenizer has one), the context the unconditioned loss of IFD is measured in."""
    bos = tokenizer.bos_token_id
    return Encoded([bos] if bos is not None else [], encoded.response_ids)


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask and labels (-100 on padding)."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(e.labels, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pad_id_of(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    return int(pad) if pad is not None else 0
