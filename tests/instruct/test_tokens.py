"""Response-only labels on the tiny decoder's tokenizer, plain layout and chat template."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_core.instruct.tokens import (
    IGNORE,
    collate,
    encode,
    render_prompt,
    render_response,
    response_alone,
)

CHAT = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant: {% endif %}")


@pytest.fixture(scope="module")
def tokenizer(tiny_decoder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_decoder)


def _check_masking(tokenizer, prompt: str, response: str) -> None:
    encoded = encode(tokenizer, prompt, response, max_length=512)
    prompt_ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    assert encoded.prompt_ids == prompt_ids
    labels, ids = encoded.labels, encoded.input_ids
    assert labels[:len(prompt_ids)] == [IGNORE] * len(prompt_ids)
    assert labels[len(prompt_ids):] == ids[len(prompt_ids):] and len(labels) > len(prompt_ids)
    response_ids = tokenizer(render_response(tokenizer, prompt, response),
                             add_special_tokens=False)["input_ids"]
    assert encoded.response_ids == response_ids and response_ids[-1] == tokenizer.eos_token_id


def test_prompt_tokens_are_ignored_and_response_tokens_kept(tokenizer, alpaca_records) -> None:
    row = alpaca_records[1]
    prompt = f"{row['instruction']}\n\n{row['input']}"
    assert render_prompt(tokenizer, prompt) == f"<s>{prompt}\n\n"
    assert render_response(tokenizer, prompt, row["output"]) == f"{row['output']}</s>"
    _check_masking(tokenizer, prompt, row["output"])


def test_chat_template_splits_at_the_assistant_turn(tokenizer, alpaca_records) -> None:
    chat = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    chat.chat_template = CHAT
    row = alpaca_records[2]
    assert render_prompt(chat, row["instruction"]).endswith("<s>assistant: ")
    assert render_response(chat, row["instruction"], row["output"]) == f"{row['output']}</s>"
    _check_masking(chat, row["instruction"], row["output"])


def test_truncation_keeps_prompt_end_and_response_start(tokenizer, alpaca_records) -> None:
    row = alpaca_records[3]
    full = encode(tokenizer, row["instruction"] * 20, row["output"] * 20, max_length=512)
    short = encode(tokenizer, row["instruction"] * 20, row["output"] * 20, max_length=64)
    assert len(short.input_ids) == 64 and len(short.response_ids) >= 16
    assert short.response_ids == full.response_ids[:len(short.response_ids)]
    assert short.prompt_ids == full.prompt_ids[-len(short.prompt_ids):]


def test_collate_pads_labels_and_response_alone_keeps_the_tokens(tokenizer,
                                                                 alpaca_records) -> None:
    rows = [encode(tokenizer, r["instruction"], r["output"], 512) for r in alpaca_records[:3]]
    batch = collate(rows, pad_id=0)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        assert batch["labels"][i, :n].tolist() == row.labels
        assert (batch["labels"][i, n:] == IGNORE).all() and batch["attention_mask"][i].sum() == n
    alone = response_alone(tokenizer, rows[0])
    assert alone.prompt_ids == [tokenizer.bos_token_id]
    assert alone.response_ids == rows[0].response_ids
