"""Learned per-example weights: the implicit gradient is the outer loss's true gradient, and the
learned weights lower the weighted probe's loss on pool rows without moving any class's mean."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from distill_core.synthesize.learned_weights import _WeightProblem, learn_weights
from tests.synthesize.test_bilevel import _blobs


@pytest.mark.parametrize("classes", [2, 3])
def test_implicit_gradient_matches_finite_differences(classes: int) -> None:
    data, y = _blobs(3, per_class=40, classes=classes, dim=8)
    x = data.features.astype(np.float64)
    picks = np.concatenate([np.flatnonzero(y == c)[:4] for c in range(classes)])
    problem = _WeightProblem(x[picks], y[picks], x, y, 1.0)
    log_weights = np.random.default_rng(0).normal(scale=0.4, size=len(picks))
    _, gradient = problem.value_and_gradient(log_weights)
    step = 1e-5
    for i in range(len(picks)):
        shift = np.zeros(len(picks))
        shift[i] = step
        numeric = (problem.value_and_gradient(log_weights + shift)[0]
                   - problem.value_and_gradient(log_weights - shift)[0]) / (2 * step)
        assert gradient[i] == pytest.approx(numeric, rel=1e-3, abs=1e-7)
    assert np.abs(gradient).max() > 1e-4  # a gradient of zeros would pass the loop


@pytest.mark.parametrize("classes", [2, 3])
def test_learned_weights_lower_the_pool_loss_and_keep_class_means(classes: int) -> None:
    data, y = _blobs(5, per_class=60, classes=classes, dim=8)
    x = data.features.astype(np.float64)
    picks = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(classes)])
    demand = np.setdiff1d(np.arange(len(y)), picks)
    weights = learn_weights(x[picks], y[picks], x[demand], y[demand], max_ratio=16.0)
    problem = _WeightProblem(x[picks], y[picks], x[demand], y[demand], 1.0)
    before, _ = problem.value_and_gradient(np.zeros(len(picks)))
    after, _ = problem.value_and_gradient(np.log(weights))
    assert after < before - 1e-3
    for c in range(classes):
        mine = weights[y[picks] == c]
        assert mine.mean() == pytest.approx(1.0)
        assert mine.max() / mine.min() <= 16.0 + 1e-9  # the bound holds within a class
    assert not np.allclose(weights, 1.0)
    # what the evaluation trains: scikit-learn with these weights, a different model
    plain = LogisticRegression(C=1.0).fit(x[picks], y[picks])
    weighted = LogisticRegression(C=1.0).fit(x[picks], y[picks], sample_weight=weights)
    assert np.abs(plain.coef_ - weighted.coef_).max() > 1e-3
