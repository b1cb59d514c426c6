"""The linear probe and the score summary, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from distill_core.evaluate import linear_probe, summarize_scores
from distill_core.evaluate.stage import SCORES_SCHEMA


def test_separable_data_is_learned_perfectly() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, (40, 5)), rng.normal(3, 1, (40, 5))])
    y = np.repeat([0, 1], 40)
    score = linear_probe(x[::2], y[::2], x[1::2], y[1::2], [0, 1])
    assert score.accuracy == 1.0 and score.macro_f1 == 1.0 and score.n_train == 40


def test_single_class_training_set_predicts_that_class() -> None:
    x = np.zeros((4, 2))
    score = linear_probe(x, np.zeros(4, int), x, np.array([0, 0, 0, 1]), [0, 1])
    # accuracy 3/4; F1 class 0 = 2*0.75*1/(1.75) = 6/7, class 1 = 0 -> macro 3/7
    assert score.accuracy == pytest.approx(0.75)
    assert score.macro_f1 == pytest.approx(3 / 7)
    assert "single class" in score.note


def test_summary_mean_and_sample_std() -> None:
    rows = [{"setting": "distilled", "method": "kmeans", "replicate": i, "seed": i,
             "per_class": 10, "n_train": 20, "accuracy": a, "macro_f1": a / 2,
             "converged": True, "wall_time_s": 0.0, "note": ""}
            for i, a in enumerate([0.6, 0.7, 0.8])]
    rows.append({**rows[0], "setting": "full", "method": "full", "accuracy": 0.9,
                 "per_class": None})
    summary = {s["setting"]: s for s in summarize_scores(pa.Table.from_pylist(
        rows, schema=SCORES_SCHEMA))}
    assert summary["distilled"]["accuracy_mean"] == pytest.approx(0.7)
    assert summary["distilled"]["accuracy_std"] == pytest.approx(0.1)  # ddof=1
    assert summary["distilled"]["macro_f1_mean"] == pytest.approx(0.35)
    assert summary["full"]["n"] == 1 and summary["full"]["accuracy_std"] == 0.0
