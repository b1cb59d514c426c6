"""`kmeans` prototypes against a brute-force reference, and the per-class contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from distill_core.synthesize.base import ClassData, class_seed, select_per_class
from distill_core.synthesize.kmeans_prototypes import kmeans_prototypes, nearest_distinct


def _blobs(seed: int = 0, per_blob: int = 40, blobs: int = 4, dim: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(blobs, dim))
    return np.concatenate([c + rng.normal(size=(per_blob, dim)) for c in centres]).astype(
        np.float32)


def _brute_force(features: np.ndarray, budget: int, seed: int) -> list[int]:
    """Same k-means, then nearest distinct row per centroid by explicit loops."""
    model = KMeans(n_clusters=budget, init="k-means++", n_init=3, max_iter=300,
                   random_state=seed).fit(features)
    sizes = np.bincount(model.labels_, minlength=budget)
    order = sorted(range(budget), key=lambda c: (-sizes[c], c))
    taken: list[int] = []
    for c in order:
        best, best_d = -1, float("inf")
        for i, row in enumerate(features):
            if i in taken:
                continue
            d = float(sum((float(a) - float(b)) ** 2 for a, b in zip(row, model.cluster_centers_[c],
                                                                      strict=True)))
            if d < best_d:
                best, best_d = i, d
        taken.append(best)
    return taken


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_matches_brute_force_reference(seed: int) -> None:
    features = _blobs(seed)
    chosen = kmeans_prototypes(ClassData(features), 6, seed)
    assert chosen.indices.tolist() == _brute_force(features, 6, seed)


def test_one_prototype_per_well_separated_blob() -> None:
    features = _blobs(per_blob=30, blobs=4)
    chosen = kmeans_prototypes(ClassData(features), 4, 0).indices
    assert sorted(i // 30 for i in chosen) == [0, 1, 2, 3]


def test_nearest_distinct_never_repeats_a_row() -> None:
    features = np.array([[0.0, 0.0], [10.0, 10.0], [0.1, 0.0]], dtype=np.float32)
    centroids = np.array([[0.0, 0.0], [0.05, 0.0]], dtype=np.float32)
    rows, distances = nearest_distinct(features, centroids, np.array([0, 1]))
    assert rows.tolist() == [0, 2]
    assert distances == pytest.approx([0.0, 0.05], abs=1e-6)


def test_per_class_budget_is_exact_and_deterministic() -> None:
    features = _blobs(per_blob=25)
    labels = np.repeat([0, 1, 2, 3], 25)
    first = select_per_class("kmeans", features, labels, 5, seed=3)
    again = select_per_class("kmeans", features, labels, 5, seed=3)
    assert np.array_equal(first.indices, again.indices)
    assert np.bincount(labels[first.indices]).tolist() == [5, 5, 5, 5]
    assert len(set(first.indices.tolist())) == 20


def test_class_smaller_than_budget_keeps_all_rows_and_says_so() -> None:
    features = _blobs(per_blob=10, blobs=2)
    labels = np.array([0] * 17 + [1] * 3)
    picked = select_per_class("kmeans", features, labels, 5, seed=0)
    assert sorted(picked.indices[labels[picked.indices] == 1].tolist()) == [17, 18, 19]
    assert picked.shortfall == {1: {"available": 3, "budget": 5}}


def test_class_seeds_differ_per_class_and_seed() -> None:
    states = {tuple(class_seed(s, c).generate_state(2)) for s in (0, 1) for c in (0, 1)}
    assert len(states) == 4


def test_same_prototypes_for_any_thread_count_and_threads_restored() -> None:
    from threadpoolctl import threadpool_info

    features = _blobs(seed=3, per_blob=200, dim=32)
    before = [pool["num_threads"] for pool in threadpool_info()]
    one = kmeans_prototypes(ClassData(features), 8, 5, ranked=24, threads=1)
    two = kmeans_prototypes(ClassData(features), 8, 5, ranked=24, threads=2)
    assert one.indices.tolist() == two.indices.tolist()
    assert np.allclose(one.scores, two.scores, atol=1e-5)
    assert [pool["num_threads"] for pool in threadpool_info()] == before  # limits undone
