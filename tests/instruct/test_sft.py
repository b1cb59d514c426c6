"""`sft_lora` on the tiny decoder and real rows; the response loss; GSM8K answer matching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from distill_core.errors import ConfigError
from distill_core.instruct.answers import is_exact_match, last_number, reference_number
from distill_core.instruct.rows import InstructionRow, rows_from_records
from distill_core.instruct.sft import (
    SftOptions,
    batch_order,
    epoch_order,
    sft_lora,
    training_batches,
)


def test_response_loss_matches_the_model_loss(tiny_decoder: Path, alpaca_records) -> None:
    import torch

    from distill_core.generate.models import load_causal_lm
    from distill_core.instruct.losses import response_losses, token_losses
    from distill_core.instruct.tokens import collate, encode_rows

    lm = load_causal_lm(str(tiny_decoder), device="cpu")
    encoded = encode_rows(lm.tokenizer, rows_from_records(alpaca_records[:6]), 128)
    batch = collate(encoded, pad_id=0)
    with torch.no_grad():
        sums, counts = token_losses(lm.model, batch)
        expected = lm.model(**batch).loss
    assert torch.isclose(sums.sum() / counts.sum(), expected, atol=1e-5)
    assert counts.tolist() == [len(e.response_ids) for e in encoded]
    # Batched by length in another order, each row's loss is its own.
    by_row, n = response_losses(lm.model, encoded, 0, "cpu", batch_size=4)
    assert n.tolist() == counts.tolist()
    assert by_row == pytest.approx(sums.double().numpy(), rel=1e-4)


def test_the_head_runs_on_response_positions_only_with_the_model_s_loss_and_gradients(
        tiny_decoder: Path, alpaca_records) -> None:
    import torch

    from distill_core.generate.models import load_causal_lm
    from distill_core.instruct.losses import response_loss
    from distill_core.instruct.sft import SftOptions, add_lora
    from distill_core.instruct.tokens import collate, encode_rows

    lm = load_causal_lm(str(tiny_decoder), device="cpu")
    model = add_lora(lm.model, SftOptions(model=str(tiny_decoder)), seed=0)
    encoded = encode_rows(lm.tokenizer, rows_from_records(alpaca_records[:6]), 128)
    batch = collate(encoded, pad_id=0)
    labelled = sum(len(e.response_ids) for e in encoded)
    assert labelled < batch["input_ids"].numel() // 2  # prompts and padding are most positions
    shapes: list[tuple[int, ...]] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda _m, _a, out: shapes.append(tuple(out.shape)))
    params = [p for p in model.parameters() if p.requires_grad]
    ours = response_loss(model, batch)
    our_grads = torch.autograd.grad(ours, params)
    theirs = model(**batch).loss
    their_grads = torch.autograd.grad(theirs, params)
    hook.remove()
    vocabulary = lm.model.config.vocab_size
    assert shapes == [(1, labelled, vocabulary), (*batch["input_ids"].shape, vocabulary)]
    assert torch.isclose(ours, theirs, rtol=1e-5)
    for mine, reference in zip(our_grads, their_grads, strict=True):
        assert torch.allclose(mine, reference, rtol=1e-4, atol=1e-7)


def test_sft_lora_lowers_held_out_loss_and_is_seeded(tiny_decoder: Path, alpaca_records) -> None:
    rows = rows_from_records(alpaca_records[:30])
    options = SftOptions(model=str(tiny_decoder), steps=15, batch_size=4, lr=1e-2,
                         max_length=96, eval_before=True)
    result = sft_lora(rows[:20], rows[20:], options, seed=0)
    assert result.eval_loss_before is not None
    assert result.eval_loss < result.eval_loss_before - 0.02
    assert result.perplexity == pytest.approx(2.718281828 ** result.eval_loss)
    assert result.eval_rows == 10 and result.eval_tokens > 10 and len(result.train_losses) == 15
    again = sft_lora(rows[:20], rows[20:], options, seed=0)
    assert again.train_losses == result.train_losses and again.eval_loss == result.eval_loss


def test_gsm8k_exact_match_runs_greedy_decoding(tiny_decoder: Path, gsm8k_lines) -> None:
    records = [json.loads(line) for line in gsm8k_lines[:8]]
    rows = [InstructionRow(str(i), r["question"], r["answer"]) for i, r in enumerate(records)]
    options = SftOptions(model=str(tiny_decoder), steps=1, batch_size=2, max_length=96,
                         exact_match_rows=3, max_new_tokens=4)
    result = sft_lora(rows[:5], rows[5:], options)
    # A random tiny model writes no right answer, but the fixed sample was decoded.
    assert result.exact_match == 0.0 and result.exact_match_rows == 3


@pytest.mark.slow
def test_exact_match_scores_the_greedy_answers_of_the_real_decoder() -> None:
    """SmolLM2-135M-Instruct answers 2 + 3 with 5 and 10 minus 4 with 2 (greedy): one hit of
    two, counted over the sample's greedy generations."""
    from distill_core.generate.models import load_causal_lm
    from distill_core.instruct.sft import exact_match, greedy_answers

    lm = load_causal_lm("smollm2", device="cpu")
    rows = [InstructionRow("a", "What is 2 + 3?", "2 + 3 = 5\n#### 5"),
            InstructionRow("b", "What is 10 minus 4?", "10 - 4 = 6\n#### 6")]
    answers = greedy_answers(lm.model, lm.tokenizer, [r.prompt for r in rows], "cpu", 12, 2)
    assert [last_number(a) for a in answers] == [5, 2]
    options = SftOptions(exact_match_rows=2, max_new_tokens=12)
    assert exact_match(lm.model, lm.tokenizer, rows, options, "cpu") == (0.5, 2)


def test_reference_answers_match_themselves(gsm8k_lines) -> None:
    answers = [json.loads(line)["answer"] for line in gsm8k_lines]
    assert reference_number(answers[0]) == 72
    assert all(is_exact_match(a, a) for a in answers)
    assert not is_exact_match(answers[0], answers[1])  # 72 vs 10
    assert last_number("so she earns 1,000.00 dollars.") == reference_number("#### 1000")
    assert not is_exact_match("no number here", "#### 5")


def test_batches_cycle_through_seeded_permutations() -> None:
    batches = batch_order(rows=5, steps=4, batch_size=3, seed=1)
    stream = [int(i) for b in batches for i in b]
    assert sorted(stream[:5]) == list(range(5)) and sorted(stream[5:10]) == list(range(5))
    assert stream == [int(i) for b in batch_order(5, 4, 3, 1) for i in b]


def test_epochs_see_every_row_the_same_number_of_times() -> None:
    batches = epoch_order(rows=10, epochs=3, batch_size=4, seed=2)
    assert [len(b) for b in batches] == [4, 4, 2] * 3  # a pass per epoch, the last batch short
    stream = np.concatenate(batches)
    assert all(sorted(stream[i * 10:(i + 1) * 10].tolist()) == list(range(10)) for i in range(3))
    assert stream.tolist() != np.concatenate(epoch_order(10, 3, 4, seed=3)).tolist()
    # The default protocol is epochs (budget-independent); `steps` fixes the count instead.
    default = SftOptions(batch_size=4)
    assert default.steps is None
    assert len(training_batches(10, default, 0)) == 3 * default.epochs
    assert len(training_batches(10, SftOptions(batch_size=4, steps=5), 0)) == 5
    assert training_batches(10, SftOptions(epochs=0), 0) == []


def test_a_fit_trains_epochs_over_its_rows(tiny_decoder: Path, alpaca_records) -> None:
    rows = rows_from_records(alpaca_records[:14])
    options = SftOptions(model=str(tiny_decoder), epochs=2, batch_size=4, max_length=64)
    result = sft_lora(rows[:10], rows[10:], options, seed=0)
    assert len(result.train_losses) == 2 * 3  # ceil(10 / 4) batches per epoch
    base = sft_lora(rows[:10], rows[10:], options.model_copy(update={"epochs": 0}), seed=0)
    assert base.train_losses == [] and base.eval_loss != result.eval_loss


def test_no_training_rows_is_a_config_error(tiny_decoder: Path) -> None:
    with pytest.raises(ConfigError, match="no training rows"):
        sft_lora([], [InstructionRow("a", "p", "r")], SftOptions(model=str(tiny_decoder)))
