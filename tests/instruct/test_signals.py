"""Reference-decoder signals on real Alpaca rows: losses, IFD, projected LoRA gradients."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from distill_core.instruct.rows import InstructionRow, rows_from_records
from distill_core.instruct.signals import (
    RandomProjection,
    difficulty,
    gradient_features,
    warm_lora,
)


@pytest.fixture(scope="module")
def tiny_lm(tiny_decoder: Path):
    from distill_core.generate.models import load_causal_lm

    return load_causal_lm(str(tiny_decoder), device="cpu")


def test_ifd_is_finite_and_direct_loss_ignores_the_prompt(tiny_lm, alpaca_records) -> None:
    rows = rows_from_records(alpaca_records[:8])
    # Row 0's response after row 1's prompt: same direct loss, another conditioned loss.
    rows.append(InstructionRow("swap", rows[1].prompt, rows[0].response))
    scores = difficulty(tiny_lm.model, tiny_lm.tokenizer, rows, "cpu", max_length=128,
                        batch_size=4)
    assert np.isfinite(scores.ifd).all() and (scores.conditioned > 0).all()
    assert scores.direct[-1] == pytest.approx(scores.direct[0], rel=1e-5)
    assert abs(scores.conditioned[-1] - scores.conditioned[0]) > 1e-4
    assert scores.ifd == pytest.approx(scores.conditioned / scores.direct)


@pytest.mark.slow
def test_smollm2_prompts_help_their_own_responses(alpaca_records) -> None:
    """On the real reference decoder a row's own prompt lowers its IFD more than another's."""
    from distill_core.generate.models import load_causal_lm

    lm = load_causal_lm("smollm2", device="cpu")
    rows = rows_from_records(alpaca_records[:8])
    swapped = [InstructionRow(r.example_id, rows[(i + 1) % len(rows)].prompt, r.response)
               for i, r in enumerate(rows)]
    own = difficulty(lm.model, lm.tokenizer, rows, "cpu", max_length=256, batch_size=8)
    other = difficulty(lm.model, lm.tokenizer, swapped, "cpu", max_length=256, batch_size=8)
    assert own.direct == pytest.approx(other.direct, rel=1e-4)
    assert np.median(own.ifd) < np.median(other.ifd)
    assert (own.ifd < other.ifd).mean() >= 0.75


def test_projection_is_seeded_blockwise_and_keeps_norms() -> None:
    import torch

    dim = 70_000  # two blocks
    vectors = torch.randn(4, dim, generator=torch.Generator().manual_seed(0))
    first = RandomProjection(dim, 256, seed=5)(vectors)
    uncached = RandomProjection(dim, 256, seed=5, cache_bytes=0)(vectors)
    other = RandomProjection(dim, 256, seed=6)(vectors)
    assert torch.equal(first, uncached) and not torch.equal(first, other)
    ratio = first.norm(dim=1) / vectors.norm(dim=1)
    assert ((ratio > 0.8) & (ratio < 1.2)).all()
    gaussian = RandomProjection(dim, 256, seed=5, kind="gaussian")(vectors)
    assert not torch.equal(gaussian, first)


def _warmed_lora(decoder: Path, records: list[dict]):
    """The tiny decoder with LoRA adapters warmed up on `records` (so A's gradients are not
    zero): (lm, model, rows)."""
    from distill_core.generate.models import load_causal_lm
    from distill_core.instruct.sft import SftOptions, add_lora

    lm = load_causal_lm(str(decoder), device="cpu")
    options = SftOptions(steps=2, batch_size=4, lr=1e-2, max_length=96)
    model = add_lora(lm.model, options, seed=0)
    rows = rows_from_records(records)
    warm_lora(model, lm.tokenizer, rows, "cpu", options, seed=0)
    return lm, model, rows


def test_gradient_features_are_deterministic(tiny_decoder: Path, alpaca_records) -> None:
    lm, model, rows = _warmed_lora(tiny_decoder, alpaca_records[:10])
    grads = partial(gradient_features, model, lm.tokenizer, device="cpu", max_length=96)
    features = grads(rows[:5], k=32, seed=1, together=1)
    again = grads(rows[:5], k=32, seed=1, together=1)
    other = grads(rows[:5], k=32, seed=2, together=1)
    assert features.shape == (5, 32) and np.array_equal(features, again)
    assert not np.allclose(features, other)
    assert (np.linalg.norm(features, axis=1) > 0).all()
    assert not np.allclose(features[0], features[1])
    # Taken alone, a row's features do not depend on the rows beside it.
    alone = grads(rows[3:4], k=32, seed=1, together=1)
    assert np.array_equal(alone[0], features[3])


def test_batched_gradients_match_each_row_alone(tiny_decoder: Path, alpaca_records) -> None:
    """One padded backward pass over rows of different lengths gives each row the gradient
    it has alone (to float rounding), in input order, and the same features on a rerun."""
    lm, model, rows = _warmed_lora(tiny_decoder, alpaca_records[:12])
    grads = partial(gradient_features, model, lm.tokenizer, device="cpu", max_length=96)
    lengths = [len(r.prompt) + len(r.response) for r in rows[:9]]
    assert max(lengths) > 2 * min(lengths)  # padding is exercised
    alone = grads(rows[:9], k=64, seed=3, together=1)
    batched = grads(rows[:9], k=64, seed=3, together=4)
    again = grads(rows[:9], k=64, seed=3, together=4)
    assert np.array_equal(batched, again)
    scale = np.abs(alone).max()
    assert np.abs(batched - alone).max() <= 1e-4 * scale
    # Rows in another order come back in their own order.
    shuffled = [rows[i] for i in (8, 2, 5, 0, 7, 1, 6, 3, 4)]
    reordered = grads(shuffled, k=64, seed=3, together=4)
    assert np.abs(reordered - alone[[8, 2, 5, 0, 7, 1, 6, 3, 4]]).max() <= 1e-4 * scale
