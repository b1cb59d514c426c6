"""Learned per-example weights: the implicit gradient is the outer loss's true gradient, and the
learned weights lower the weighted probe's loss on pool rows without moving any class's mean."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from distill_core.synthesize.learned_weights import _WeightProblem, learn_weights
from tests.synthesize.fixtures import run_rows
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


def test_a_selection_method_learns_weights_the_evaluation_trains_with(
        slice_dir, tmp_path, run_stages) -> None:
    """kmeans with `synthesize.weights.learn` on real SST-2 rows: selected in memory, each
    class's picks weigh 1 on average (the reserve 1), and the evaluation's probe score is the
    weighted probe's on the distilled rows, not the unweighted one's."""

    from distill_core.artifacts.store import RunStore
    from distill_core.config import load_config
    from distill_core.evaluate.linear_probe import linear_probe

    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]", "run.name=weights",
                             "synthesize.method=kmeans", "synthesize.per_class=4",
                             "synthesize.weights.learn=true", "evaluate.baselines=[random]"])
    store, _ = run_stages(cfg, tmp_path)
    manifest = store.manifest("synthesize")
    assert manifest["selection"] == {"streamed": False}
    assert manifest["learned_weights"]["demand_rows"] == 4000
    low, high = manifest["learned_weights"]["min_max_by_replicate"]["0"]
    assert low < 1.0 < high
    candidates = store.read("synthesize")
    ranks = candidates.column("rank").to_numpy()
    weights = candidates.column("weight").to_numpy()
    labels = candidates.column("label_id").to_numpy()
    assert (weights[ranks >= 4] == 1.0).all()
    for label in (0, 1):
        assert weights[(ranks < 4) & (labels == label)].mean() == pytest.approx(1.0)
    # the evaluation trained on the weighted rows
    _, x, y, eval_x, eval_y = run_rows(store, RunStore(tmp_path, cfg.run_id()))
    distilled = store.read("filter")
    w = distilled.column("weight").to_numpy()
    weighted = linear_probe(x, y, eval_x, eval_y, [0, 1], sample_weight=w).accuracy
    plain = linear_probe(x, y, eval_x, eval_y, [0, 1]).accuracy
    scores = store.read("evaluate").to_pylist()
    score = next(r for r in scores if r["setting"] == "distilled"
                 and r["learner"] == "linear_probe")
    assert score["accuracy"] == pytest.approx(weighted)
    assert weighted != plain  # else the check above could pass on unweighted training
    from distill_core.report import build_report

    assert (f"Learned per-example weights on the picks (each class's mean 1, fitted for the "
            f"linear probe at C = 1.0 to 4000 pool rows; the reserve weighs 1): replicate 0: "
            f"{low:.2f}-{high:.2f}.") in build_report(store.root)
    assert "| label | example_id | text | weight |" in build_report(store.root)


def test_weights_are_refused_where_nothing_learns_them_and_count_only_when_read() -> None:
    from distill_core.config import load_config
    from distill_core.errors import ConfigError

    with pytest.raises(ConfigError, match="synthesize.weights.learn: llm_synth is not a "
                                          "selection method"):
        load_config(None, ["synthesize.method=llm_synth", "synthesize.weights.learn=true"])
    with pytest.raises(ConfigError, match="keeps its own weights"):
        load_config(None, ["synthesize.method=gradmatch", "synthesize.gradmatch.keep_weights=true",
                           "synthesize.weights.learn=true"])

    def run_id(*given: str) -> str:
        return load_config(None, list(given)).run_id()

    steps = "synthesize.weights.steps=5"
    assert run_id("synthesize.method=kmeans", steps) == run_id("synthesize.method=kmeans")
    learn = ("synthesize.method=kmeans", "synthesize.weights.learn=true")
    assert run_id(*learn) != run_id("synthesize.method=kmeans")
    assert run_id(*learn, steps) != run_id(*learn)
    assert run_id("synthesize.method=dilm", steps) == run_id("synthesize.method=dilm")
