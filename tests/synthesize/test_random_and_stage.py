"""Stratified random selection and the synthesize stage's accounting."""

from __future__ import annotations

import numpy as np

from distill_core.synthesize import select_candidates, select_per_class
from distill_core.synthesize.stage import SelectionInputs
from tests.synthesize.fixtures import two_class_train


def test_random_is_stratified_deterministic_and_seed_dependent() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    features = np.zeros((100, 3), dtype=np.float32)
    a = select_per_class("random", features, labels, 4, seed=0)
    b = select_per_class("random", features, labels, 4, seed=0)
    c = select_per_class("random", features, labels, 4, seed=1)
    assert np.bincount(labels[a.indices]).tolist() == [4, 4, 4]
    assert np.array_equal(a.indices, b.indices) and not np.array_equal(a.indices, c.indices)


def test_stage_accounts_for_every_row_in_every_replicate() -> None:
    n = 30
    train = two_class_train(n, 20)
    features = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    inputs = SelectionInputs("kmeans", features, train.column("label_id").to_numpy(), 3, {})
    result = select_candidates(train, inputs, [5, 6], "run-x")
    assert result.counts["rows_in"] == 2 * n
    assert result.candidates.num_rows == 12 and result.rejects.num_rows == 0
    assert result.counts["rows_rejected"] == 2 * n - 12
    assert result.counts["implicit_rejects"] == {"not_selected": [n - 6, n - 6]}
    rows = result.candidates.to_pylist()
    assert all(r["parent_ids"] == [r["example_id"]] and r["run_id"] == "run-x" and
               r["method"] == "kmeans" for r in rows)
    assert {r["seed"] for r in rows if r["replicate"] == 1} == {6}
    for replicate in (0, 1):
        chosen = [r["example_id"] for r in rows if r["replicate"] == replicate]
        assert len(set(chosen)) == len(chosen) == 6  # distinct pool rows; the rest not selected
