"""herding, kcenter_greedy, facility_location, gradmatch and el2n against brute-force
references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from distill_core.synthesize.base import ClassData, select_per_class
from distill_core.synthesize.el2n import el2n_stratified
from distill_core.synthesize.facility_location import facility_location
from distill_core.synthesize.gradmatch import gradient_matching
from distill_core.synthesize.herding import herding
from distill_core.synthesize.kcenter_greedy import kcenter_greedy
from tests.synthesize.fixtures import class_data


def _data(seed: int = 0, n: int = 60, dim: int = 8, classes: int = 3) -> ClassData:
    return class_data(seed, n, dim, classes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_herding_matches_brute_force(seed: int) -> None:
    data = _data(seed)
    x = data.features.astype(np.float64)
    mu = x.mean(axis=0)
    expected: list[int] = []
    for _ in range(7):
        best = min((i for i in range(len(x)) if i not in expected),
                   key=lambda i: np.linalg.norm(mu - x[expected + [i]].mean(axis=0)))
        expected.append(best)
    assert herding(data, 7, seed).indices.tolist() == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kcenter_greedy_matches_brute_force(seed: int) -> None:
    data = _data(seed)
    x = data.features.astype(np.float64)
    pairwise = np.array([[np.linalg.norm(a - b) for b in x] for a in x])
    expected = [int(np.argmin(np.linalg.norm(x - x.mean(axis=0), axis=1)))]
    for _ in range(5):
        expected.append(int(np.argmax(pairwise[:, expected].min(axis=1))))
    chosen = kcenter_greedy(data, 6, seed)
    assert chosen.indices.tolist() == expected
    assert np.all(np.diff(chosen.scores[1:]) <= 1e-6)  # covering radius never grows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_facility_location_matches_brute_force_greedy(seed: int) -> None:
    data = _data(seed)
    x = data.features / np.linalg.norm(data.features, axis=1, keepdims=True)
    similarity = (1 + x @ x.T) / 2

    def coverage(rows: list[int]) -> float:
        return float(similarity[rows].max(axis=0).sum()) if rows else 0.0

    expected: list[int] = []
    for _ in range(6):
        expected.append(max((i for i in range(len(x)) if i not in expected),
                            key=lambda i: coverage(expected + [i])))
    chosen = facility_location(data, 6, seed)
    assert chosen.indices.tolist() == expected
    assert np.all(np.diff(chosen.scores) <= 1e-5)  # submodular: gains never grow


def test_facility_location_covers_every_cluster_and_samples_big_classes() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 10
    x = np.concatenate([c + rng.normal(size=(n, 8))
                        for c, n in zip(centres, (200, 60, 12), strict=True)])
    cluster = np.repeat([0, 1, 2], (200, 60, 12))
    picked = facility_location(ClassData(x.astype(np.float32)), 3, 0)
    assert sorted(cluster[picked.indices].tolist()) == [0, 1, 2]  # one per cluster, the
    # small one too; k-means-style prototypes would follow the mass
    sampled = facility_location(ClassData(x.astype(np.float32)), 3, 0, demand_rows=50,
                                candidate_rows=100)
    again = facility_location(ClassData(x.astype(np.float32)), 3, 0, demand_rows=50,
                              candidate_rows=100)
    other = facility_location(ClassData(x.astype(np.float32)), 3, 1, demand_rows=50,
                              candidate_rows=100)
    assert sampled.indices.tolist() == again.indices.tolist()
    assert sampled.indices.tolist() != other.indices.tolist()  # the seed draws the samples


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradmatch_matches_explicit_omp(seed: int) -> None:
    data = _data(seed)
    g = np.stack([np.outer(a, x).ravel() for a, x in
                  zip(data.grad_logits.astype(np.float64), data.features.astype(np.float64),
                      strict=True)])
    target = g.mean(axis=0)
    residual, expected = target.copy(), []
    for _ in range(5):
        alignment = [(-np.inf if i in expected else
                      float(g[i] @ residual / np.linalg.norm(g[i]))) for i in range(len(g))]
        expected.append(int(np.argmax(alignment)))
        weights, _ = nnls(g[expected].T, target)
        residual = target - g[expected].T @ weights
    chosen = gradient_matching(data, 5, seed, keep_weights=True, at="teacher")
    assert chosen.indices.tolist() == expected
    assert chosen.scores[-1] == pytest.approx(np.linalg.norm(residual) / np.linalg.norm(target),
                                              rel=1e-6)
    assert chosen.weights is not None and chosen.weights.mean() == pytest.approx(1.0)
    assert gradient_matching(data, 5, seed, at="teacher").weights is None


def test_gradmatch_residual_shrinks_as_rows_are_added() -> None:
    chosen = gradient_matching(_data(3), 8, 0, at="teacher")
    assert np.all(np.diff(chosen.scores) <= 1e-9) and chosen.scores[-1] < chosen.scores[0]


def test_el2n_draws_one_row_per_difficulty_stratum() -> None:
    n = 20
    data = ClassData(np.zeros((n, 2), np.float32), np.zeros((n, 2), np.float32),
                     np.arange(n, dtype=np.float32)[::-1].copy())  # row 0 hardest
    chosen = el2n_stratified(data, 4, seed=0, prune_hardest=0.2)
    scores = sorted(data.el2n[chosen.indices].tolist())
    # the 4 hardest (scores 16..19) are pruned; strata of the rest: 0-3, 4-7, 8-11, 12-15
    assert [int(s) // 4 for s in scores] == [0, 1, 2, 3]
    again = el2n_stratified(data, 4, seed=0, prune_hardest=0.2)
    assert chosen.indices.tolist() == again.indices.tolist()


@pytest.mark.parametrize("method", ["herding", "kcenter_greedy", "facility_location",
                                    "gradmatch", "el2n"])
def test_every_method_has_an_exact_budget_per_class(method: str) -> None:
    data = _data(n=90)
    labels = np.repeat([0, 1, 2], 30)
    picked = select_per_class(method, data, labels, 4, seed=1)
    assert np.bincount(labels[picked.indices]).tolist() == [4, 4, 4]
    again = select_per_class(method, data, labels, 4, seed=1)
    assert picked.indices.tolist() == again.indices.tolist()


def test_teacher_methods_refuse_to_run_without_teacher_signals() -> None:
    with pytest.raises(ValueError, match="teacher"):
        select_per_class("gradmatch", np.zeros((10, 2)), np.zeros(10, dtype=int), 2, 0)


def test_gradmatch_at_init_matches_the_class_mean_embedding() -> None:
    data = _data(4)
    chosen = gradient_matching(data, 6, 0, at="init")
    x = data.features.astype(np.float64)
    # at init every gradient is c ⊗ x_i with the same c, so OMP matches the mean embedding
    expected_first = int(np.argmax(x @ x.mean(axis=0) / np.linalg.norm(x, axis=1)))
    assert chosen.indices[0] == expected_first
    with pytest.raises(ValueError, match="`at` must be 'teacher' or 'init', not 'later'"):
        gradient_matching(data, 2, 0, at="later")
