"""Learned soft labels: the soft-label probe trained on them is the target probe (same
predictions, same direction), they are distributions, and a selection method carries them
through the pipeline to the evaluation's `+soft` score."""

from __future__ import annotations

import numpy as np
import pytest

from distill_core.evaluate.soft_probe import fit_soft_probe
from distill_core.synthesize.learned_labels import (
    LabelSettings,
    centred_span,
    label_picks,
    solve_labels,
    target_probe,
)
from tests.synthesize.fixtures import run_rows
from tests.synthesize.test_bilevel import _blobs


@pytest.mark.parametrize(("classes", "c", "temperature"), [(2, 1.0, 1.0), (3, 1.0, 1.0),
                                                           (3, 10.0, 2.0)])
def test_the_soft_probe_on_solved_labels_is_the_target(classes: int, c: float,
                                                       temperature: float) -> None:
    data, y = _blobs(7, per_class=80, classes=classes, dim=12)
    x = data.features.astype(np.float64)
    picks = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(classes)])
    weight, bias = target_probe(x[picks], x, y, classes)
    labels, scale = solve_labels(x[picks], weight, bias, c, temperature)
    assert scale > 0
    assert labels.shape == (len(picks), classes)
    assert (labels >= 0).all() and np.allclose(labels.sum(axis=1), 1.0)
    assert labels.min() == pytest.approx(0.0, abs=1e-6)  # the largest scale: one bound binds
    fitted_w, fitted_b = fit_soft_probe(x[picks], labels, c, temperature, max_iter=2000)
    # the optimum is the scaled target (the intercepts up to one common shift)
    assert np.abs(fitted_w - scale * weight).max() < 1e-4 * max(1.0, np.abs(scale * weight).max())
    shift = fitted_b - scale * bias
    assert np.ptp(shift) < 1e-4
    predicted = np.argmax(x @ fitted_w.T + fitted_b, axis=1)
    assert np.array_equal(predicted, np.argmax(x @ weight.T + bias, axis=1))
    # the target lies in the span of the picks' differences
    basis = centred_span(x[picks])
    assert np.abs(weight - weight @ basis @ basis.T).max() < 1e-9


def test_learned_labels_fit_the_pool_better_than_the_hard_labels() -> None:
    """On overlapping classes the probe the picks' hard labels make is not the best their
    span allows; the learned labels make the best by the pool's likelihood."""
    data, y = _blobs(11, per_class=150, classes=3, dim=16)
    x = data.features.astype(np.float64)
    x += np.random.default_rng(1).normal(scale=0.6, size=x.shape)  # classes overlap
    picks = np.concatenate([np.flatnonzero(y == k)[:4] for k in range(3)])
    labels = label_picks(x, y, picks, 0, LabelSettings(target_rows=20_000), 3)
    soft_w, soft_b = fit_soft_probe(x[picks], labels, 1.0, 1.0)
    hard_w, hard_b = fit_soft_probe(x[picks], np.eye(3)[y[picks]], 1.0, 1.0)

    def accuracy(w: np.ndarray, b: np.ndarray) -> float:
        return float((np.argmax(x @ w.T + b, axis=1) == y).mean())

    assert accuracy(soft_w, soft_b) > accuracy(hard_w, hard_b)
    assert not np.allclose(labels, np.eye(3)[y[picks]])


def test_picks_of_one_class_keep_one_hot_labels() -> None:
    data, y = _blobs(2, per_class=20, classes=3, dim=6)
    picks = np.flatnonzero(y == 1)[:3]
    labels = label_picks(data.features, y, picks, 0, LabelSettings(), 3)
    assert np.array_equal(labels, np.eye(3)[[1, 1, 1]])


def test_a_selection_method_learns_labels_the_evaluation_trains_on(
        slice_dir, tmp_path, run_stages) -> None:
    """kmeans with `synthesize.labels.learn` on real SST-2 rows: selected in memory, the picks
    carry learned distributions (the reserve one-hot), the hard-label score is unchanged and
    the `+soft` score is the soft probe's on those labels, equal to the target's accuracy."""
    import pyarrow.compute as pc

    from distill_core.artifacts.store import RunStore
    from distill_core.config import load_config
    from distill_core.evaluate.linear_probe import linear_probe
    from distill_core.evaluate.soft_probe import soft_label_probe
    from distill_core.report import build_report

    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]", "run.name=labels",
                             "synthesize.method=kmeans", "synthesize.per_class=4",
                             "synthesize.labels.learn=true", "evaluate.baselines=[random]"])
    store, _ = run_stages(cfg, tmp_path)
    manifest = store.manifest("synthesize")
    assert manifest["selection"] == {"streamed": False}
    learned = manifest["learned_labels"]
    assert (learned["target_rows"], learned["c"], learned["temperature"]) == (20_000, 1.0, 1.0)
    candidates = store.read("synthesize")
    ranks = candidates.column("rank").to_numpy()
    soft = np.asarray(candidates.column("soft_label").to_pylist(), dtype=np.float64)
    own = candidates.column("label_id").to_numpy()
    assert np.array_equal(soft[ranks >= 4], np.eye(2)[own[ranks >= 4]])
    assert np.allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(soft[ranks < 4].max(axis=1), 1.0)
    assert learned["by_replicate"]["0"]["mean_own_probability"] == pytest.approx(
        soft[ranks < 4][np.arange(8), own[ranks < 4]].mean(), abs=1e-4)

    rows, x, y, eval_x, eval_y = run_rows(store, RunStore(tmp_path, cfg.run_id()))
    distilled = store.read("filter")
    targets = np.asarray(distilled.column("soft_label").to_pylist(), dtype=np.float64)
    expected_soft = soft_label_probe(x, targets, eval_x, eval_y, [0, 1], 1.0, 1.0).accuracy
    expected_hard = linear_probe(x, y, eval_x, eval_y, [0, 1]).accuracy
    scores = [r for r in store.read("evaluate").to_pylist() if r["learner"] == "linear_probe"]
    by_setting = {r["setting"]: r["accuracy"] for r in scores}
    assert by_setting["distilled_soft"] == pytest.approx(expected_soft)
    assert by_setting["distilled"] == pytest.approx(expected_hard)
    # the soft probe is the target: fitted on the pool in the picks' span
    pool = store.read("clean" if cfg.filter.corpus else "ingest")
    pool = pool.filter(pc.equal(pool.column("split"), "train"))
    pool_x, pool_y = rows(pool)
    weight, bias = target_probe(x, pool_x, pool_y, 2)
    target = float((np.argmax(eval_x @ weight.T + bias, axis=1) == eval_y).mean())
    assert expected_soft == pytest.approx(target, abs=1.5 / len(eval_y))
    report = build_report(store.root)
    assert ("Learned soft labels on the picks (solved for the soft-label probe at C = 1.0, "
            "temperature 1.0") in report
    assert "| label | example_id | text | soft label |" in report  # the examples show them
    first = distilled.filter(pc.equal(distilled.column("replicate"), 0)).to_pylist()[0]
    names = store.manifest("ingest")["label_names"]
    shown = " · ".join(f"{n} {p:.2f}" for n, p in zip(names, first["soft_label"], strict=True))
    assert f"| {shown} |" in report


def test_labels_are_refused_where_nothing_learns_them_and_count_only_when_read() -> None:
    from distill_core.config import load_config
    from distill_core.errors import ConfigError

    with pytest.raises(ConfigError, match="synthesize.labels.learn: llm_synth is not a "
                                          "selection method"):
        load_config(None, ["synthesize.method=llm_synth", "synthesize.labels.learn=true"])
    for clash, what in (("synthesize.weights.learn=true", "synthesize.weights.learn"),
                        ("synthesize.soft_labels=true", "synthesize.soft_labels")):
        with pytest.raises(ConfigError, match=f"without {what}"):
            load_config(None, ["synthesize.method=herding", "synthesize.labels.learn=true",
                               clash])

    def run_id(*given: str) -> str:
        return load_config(None, list(given)).run_id()

    rows = "synthesize.labels.target_rows=500"
    assert run_id("synthesize.method=kmeans", rows) == run_id("synthesize.method=kmeans")
    learn = ("synthesize.method=kmeans", "synthesize.labels.learn=true")
    assert run_id(*learn) != run_id("synthesize.method=kmeans")
    assert run_id(*learn, rows) != run_id(*learn)
