"""`bilevel`: herding's picks refined jointly so that the one-step zero-head classifier on the
set fits the pool; checked against a brute-force reading of its objective."""

from __future__ import annotations

import numpy as np
import pytest

from distill_core.synthesize.base import ClassData, select_per_class
from distill_core.synthesize.bilevel import LR_GRID, standardized


def _blobs(seed: int, per_class: int = 40, classes: int = 3, dim: int = 6) -> tuple[
        ClassData, np.ndarray]:
    """Overlapping unit-norm classes, each a mix of a main and a minor mode."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 2, dim)) * 1.2
    rows, labels = [], []
    for c in range(classes):
        mode = rng.random(per_class) < 0.3
        rows.append(centres[c, mode.astype(int)] + rng.normal(size=(per_class, dim)))
        labels.append(np.full(per_class, c))
    x = np.concatenate(rows)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return ClassData(x.astype(np.float32)), np.concatenate(labels)


def _outer_loss(x: np.ndarray, y: np.ndarray, picks: list[int]) -> float:
    """The objective written out: the classifier one softmax-CE step from a zero head makes
    on `picks` (rate lr, mean over the set), scored by mean CE on every row, best lr."""
    classes = int(y.max()) + 1
    onehot = np.eye(classes)
    weight = sum(np.outer(onehot[y[p]] - 1.0 / classes, x[p]) for p in picks) / len(picks)

    def ce(lr: float) -> float:
        logits = lr * x.astype(np.float64) @ weight.T
        logits -= logits.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(len(y)), y]))

    return min(ce(lr) for lr in LR_GRID)


@pytest.mark.parametrize("seed", [0, 1])
def test_refined_set_lowers_the_pool_loss_and_no_single_swap_lowers_it_further(seed: int
                                                                              ) -> None:
    data, y = _blobs(seed)
    x = standardized(data.features)  # what it works on by default
    herding = select_per_class("herding", ClassData(x), y, 3, seed)
    refined = select_per_class("bilevel", data, y, 3, seed,
                               params={"shortlist": 1000, "passes": 20,
                                       "probe_passes": 0})  # the proxy alone
    picks = refined.indices.tolist()
    assert np.bincount(y[picks]).tolist() == [3, 3, 3] and len(set(picks)) == 9
    before, after = _outer_loss(x, y, herding.indices.tolist()), _outer_loss(x, y, picks)
    assert after < before - 1e-3
    # a local optimum of its objective: every swap of one pick for another row of its class
    for slot, row in enumerate(picks):
        for other in np.flatnonzero(y == y[row]):
            if int(other) in picks:
                continue
            swapped = picks[:slot] + [int(other)] + picks[slot + 1:]
            assert _outer_loss(x, y, swapped) >= after - 1e-4


def test_deterministic_for_a_seed_and_the_seed_draws_the_samples() -> None:
    data, y = _blobs(3, per_class=60)
    small = {"demand_rows": 50, "candidate_rows": 20}
    first = select_per_class("bilevel", data, y, 3, 0, params=small)
    again = select_per_class("bilevel", data, y, 3, 0, params=small)
    other = select_per_class("bilevel", data, y, 3, 5, params=small)
    assert first.indices.tolist() == again.indices.tolist()
    assert first.indices.tolist() != other.indices.tolist()
    # the score of a pick is what the loss loses without it: positive for a useful pick
    assert np.all(np.isfinite(first.scores)) and (first.scores > 0).sum() >= 6


def test_a_small_class_is_kept_whole_and_still_shapes_the_others() -> None:
    data, y = _blobs(4)
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1),
                           np.flatnonzero(y == 2)[:2]])
    data, y = data.take(keep), y[keep]
    picked = select_per_class("bilevel", data, y, 4, 0, oversample=2)
    assert picked.shortfall == {2: {"available": 2, "budget": 4}}
    in_two = picked.indices[y[picked.indices] == 2]
    assert sorted(in_two.tolist()) == np.flatnonzero(y == 2).tolist()
    assert np.bincount(y[picked.indices]).tolist() == [8, 8, 2]  # picks then reserve


def test_one_class_leaves_herding_as_is() -> None:
    data, _ = _blobs(5)
    y = np.zeros(len(data), dtype=int)
    start = ClassData(standardized(data.features))
    assert (select_per_class("bilevel", data, y, 4, 0).indices.tolist()
            == select_per_class("herding", start, y, 4, 0).indices.tolist())
    assert (select_per_class("bilevel", data, y, 4, 0, {"standardize": False}).indices.tolist()
            == select_per_class("herding", data, y, 4, 0).indices.tolist())


def test_standardize_is_read_and_optimises_the_z_scored_objective() -> None:
    """With `standardize` (the default) the method works on the features z-scored per
    dimension (its herding start and its proxy): deterministic, and its set fits that
    objective better than the set chosen on the raw features, where one loud dimension
    dominates the products."""
    data, y = _blobs(6)
    loud = data.features * np.array([8.0, 1, 1, 1, 1, 1], dtype=np.float32)
    data = ClassData(loud)
    z = standardized(data.features)
    assert np.allclose(z.mean(0), 0, atol=1e-5)
    assert np.allclose(z.std(0) * np.sqrt(z.shape[1]), 1, atol=1e-3)
    picked = select_per_class("bilevel", data, y, 3, 0, params={"standardize": True})
    again = select_per_class("bilevel", data, y, 3, 0, params={"standardize": True})
    raw = select_per_class("bilevel", data, y, 3, 0, params={"standardize": False})
    assert picked.indices.tolist() == again.indices.tolist() != raw.indices.tolist()
    assert select_per_class("bilevel", data, y, 3, 0).indices.tolist() == picked.indices.tolist()
    assert (_outer_loss(z, y, picked.indices.tolist())
            < _outer_loss(z, y, raw.indices.tolist()) - 1e-3)


def test_kernels_kept_or_recomputed_give_the_same_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import distill_core.synthesize.bilevel as module

    data, y = _blobs(7)
    kept = select_per_class("bilevel", data, y, 3, 0, oversample=2)
    monkeypatch.setattr(module, "KEEP_KERNELS_BYTES", 0)  # one class's kernel at a time
    again = select_per_class("bilevel", data, y, 3, 0, oversample=2)
    assert kept.indices.tolist() == again.indices.tolist()
    assert np.allclose(kept.scores, again.scores, equal_nan=True)
