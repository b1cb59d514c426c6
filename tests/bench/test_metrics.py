"""Benchmark metrics against values computed by hand."""

from __future__ import annotations

import pytest

from distill_core.bench.metrics import summarize


def _row(method: str, per_class: int | None, seed: int, accuracy: float,
         labels: str = "hard") -> dict:
    return {"dataset": "d", "learner": "lp", "labels": labels, "method": method,
            "per_class": per_class, "seed": seed, "accuracy": accuracy,
            "macro_f1": accuracy - 0.1, "wall_time_s": 1.0 + seed, "peak_rss_mb": 100.0 + seed,
            "n_train": 20 if per_class else 1000}


def test_metrics_match_hand_computed_values() -> None:
    rows = [_row("full", None, 0, 0.80),
            _row("random", 10, 0, 0.60), _row("random", 10, 1, 0.64),
            _row("kmeans", 10, 0, 0.70), _row("kmeans", 10, 1, 0.74), _row("kmeans", 10, 2, 0.72),
            _row("kmeans", 10, 0, 0.76, "soft"), _row("kmeans", 10, 1, 0.78, "soft")]
    by = {(s["method"], s["labels"]): s for s in summarize(rows)}
    kmeans = by[("kmeans", "hard")]
    assert kmeans["n"] == 3
    assert kmeans["accuracy_mean"] == pytest.approx(0.72)
    assert kmeans["accuracy_std"] == pytest.approx(0.02)  # sample std of .70 .74 .72
    assert kmeans["macro_f1_mean"] == pytest.approx(0.62)
    assert kmeans["retention"] == pytest.approx(0.72 / 0.80)
    assert kmeans["improvement_over_random"] == pytest.approx(0.72 - 0.62)
    assert kmeans["hard_label_recovery"] == pytest.approx(0.80 - 0.72)
    assert kmeans["wall_time_s_mean"] == pytest.approx(2.0)
    assert kmeans["peak_rss_mb_max"] == 102.0
    soft = by[("kmeans", "soft")]
    # No soft-label random baseline here: improvement is measured against hard-label random;
    # hard-label recovery always uses the set's hard-label accuracy.
    assert soft["improvement_over_random"] == pytest.approx(0.77 - 0.62)
    assert soft["hard_label_recovery"] == pytest.approx(0.80 - 0.72)
    assert soft["retention"] == pytest.approx(0.77 / 0.80)
    assert by[("random", "hard")]["improvement_over_random"] is None
    full = by[("full", "hard")]
    assert full["retention"] is None and full["accuracy_std"] == 0.0
