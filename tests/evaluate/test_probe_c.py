"""`C: cv`'s rule (evaluate/probe_c.py): folds, the row cap, the tie-break and the fallback."""

from __future__ import annotations

import numpy as np

from distill_core.evaluate import probe_c
from distill_core.evaluate.probe_c import C_GRID, choose_c


def _recording_fit(y: np.ndarray, right_for: set[float]):
    """A fit that predicts the true labels for the Cs in `right_for`, the wrong ones otherwise,
    and records the training rows it was given."""
    seen: list[tuple[float, np.ndarray]] = []

    def fit(train: np.ndarray, c: float):
        seen.append((c, train))
        return lambda held: y[held] if c in right_for else 1 - y[held]

    return fit, seen


def test_the_best_c_wins_on_held_out_rows_only() -> None:
    y = np.array([0, 1] * 10)
    fit, seen = _recording_fit(y, {10.0})
    chosen, note = choose_c(y, fit, seed=3)
    assert chosen == 10.0 and note.startswith("C=10 by 5-fold cv on 20 rows")
    assert len(seen) == len(C_GRID) * 5
    assert all(len(train) == 16 for _, train in seen)  # each fold holds out 4 of 20


def test_ties_go_to_the_c_nearest_one_and_folds_follow_the_smallest_class() -> None:
    y = np.array([0] * 9 + [1] * 3)
    fit, seen = _recording_fit(y, {0.01, 0.1, 1.0, 10.0, 100.0})
    chosen, note = choose_c(y, fit, seed=0)
    assert chosen == 1.0 and "3-fold" in note


def test_a_class_with_one_row_keeps_the_fallback_without_fitting() -> None:
    y = np.array([0, 0, 0, 1])
    fit, seen = _recording_fit(y, {10.0})
    assert choose_c(y, fit, seed=0)[0] == probe_c.FALLBACK_C and seen == []


def test_large_sets_are_cross_validated_on_a_stratified_sample(monkeypatch) -> None:
    monkeypatch.setattr(probe_c, "CV_MAX_ROWS", 100)
    y = np.array([0] * 900 + [1] * 100)
    fit, seen = _recording_fit(y, {0.1})
    chosen, note = choose_c(y, fit, seed=0)
    rows = np.unique(np.concatenate([train for _, train in seen]))
    assert chosen == 0.1 and "on 100 rows" in note and len(rows) == 100
    assert (y[rows] == 1).sum() == 10  # the class shares are kept
    again = np.unique(np.concatenate([t for _, t in _run_again(y)]))
    np.testing.assert_array_equal(rows, again)  # same seed, same sample


def _run_again(y: np.ndarray) -> list[tuple[float, np.ndarray]]:
    fit, seen = _recording_fit(y, {0.1})
    choose_c(y, fit, seed=0)
    return seen
