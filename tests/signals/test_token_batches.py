"""The encoder's batches: at most `batch_size` rows and `batch_size x TOKENS_PER_ROW` padded
tokens each, every row once and in order; and a text's vector does not depend on the
batch it lands in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_core.signals.encoder import TOKENS_PER_ROW, token_budget_batches


@pytest.mark.parametrize("batch_size", [1, 4, 128])
def test_batches_cover_every_row_once_within_both_limits(batch_size: int) -> None:
    rng = np.random.default_rng(batch_size)
    lengths = np.sort(np.r_[rng.integers(3, 40, 500), rng.integers(40, 257, 300)])
    batches = token_budget_batches(lengths, batch_size)
    covered = np.concatenate([np.arange(len(lengths))[b] for b in batches])
    assert covered.tolist() == list(range(len(lengths)))
    budget = batch_size * TOKENS_PER_ROW
    for b in batches:
        rows = b.stop - b.start
        assert 1 <= rows <= batch_size
        assert rows == 1 or rows * int(lengths[b.stop - 1]) <= budget
        # and no batch stops short of a row that would still have fitted
        if b.stop < len(lengths) and rows < batch_size:
            assert (rows + 1) * int(lengths[b.stop]) > budget


def test_short_texts_keep_whole_batches_and_long_ones_get_smaller() -> None:
    lengths = np.sort(np.r_[np.full(256, 20), np.full(64, 256)])
    sizes = [b.stop - b.start for b in token_budget_batches(lengths, 128)]
    assert sizes == [128, 128, 32, 32]  # 128 x 64 tokens = 32 rows of 256


def test_vectors_do_not_depend_on_the_batching(encoder, slice_dir: Path) -> None:
    lines = (slice_dir / "sst2_glue" / "train.tsv").read_text().splitlines()[1:]
    sentences = [line.split("\t")[0] for line in lines[:60]]
    texts = sentences[:40] + [" ".join(sentences[i:i + 12]) for i in range(20)]  # long too
    together = encoder.encode(texts, batch_size=64)
    alone = np.vstack([encoder.encode([t], batch_size=1) for t in texts[-5:]])
    assert np.allclose(together[-5:], alone, atol=2e-3)
    assert np.allclose(encoder.encode(texts[::-1], batch_size=8)[::-1], together, atol=2e-3)
