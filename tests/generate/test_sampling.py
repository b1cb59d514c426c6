"""Loading and sampling a decoder: reproducible per seed, bounded, offline errors are clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_core.errors import TextDistillError
from distill_core.generate.models import load_causal_lm
from distill_core.generate.prompts import few_shot_messages
from distill_core.generate.sampling import SamplingSettings, render_prompts, sample


def test_sampling_is_reproducible_per_seed_and_bounded(tiny_decoder: Path) -> None:
    lm = load_causal_lm(str(tiny_decoder))
    prompts = render_prompts(lm.tokenizer, [few_shot_messages("positive", ["a gorgeous movie"], 3),
                                  few_shot_messages("negative", ["a dull mess"], 3)])
    settings = SamplingSettings(max_new_tokens=12, batch_size=2)
    first = sample(lm, prompts, [7, 8], settings)
    again = sample(lm, prompts, [7, 8], settings)
    other = sample(lm, prompts, [9, 10], settings)
    assert [g.text for g in first] == [g.text for g in again]
    assert [g.text for g in first] != [g.text for g in other]
    assert all(0 < g.new_tokens <= 12 for g in first)


def test_an_unknown_model_offline_fails_fast_with_a_clear_error() -> None:
    with pytest.raises(TextDistillError, match="no-such-org/no-such-model"):
        load_causal_lm("no-such-org/no-such-model")
