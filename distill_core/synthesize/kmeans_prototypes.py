"""`kmeans`: per class, k-means with k = budget, then the real example nearest each centroid.

This is what DiLM (Maekawa et al., 2024) and CondenseLM (Shen et al., 2025)
report as "K-Center": prototypes that cover the class's modes. (Greedy
farthest-first k-center is a different method that picks outliers on
normalised sentence embeddings.)

Attributes: `n_init` k-means++ restarts, `max_iter` Lloyd iterations, `threads`
the BLAS/OpenMP threads it may use (default: the cores this process may use;
an explicit limit keeps a shared machine from being oversubscribed). faiss's
k-means was measured 0.45x as fast here at this size (`benchmarks/bench_kmeans.py`),
so scikit-learn stays.
Input: one class's feature matrix. Output: for each centroid, largest cluster
first, the index of the nearest row not already taken; score = its Euclidean
distance to the centroid. Ranked beyond the budget (the filter stage's reserve),
the order continues round by round over the clusters in the same order: each
cluster's next-nearest member (by k-means assignment) not yet taken, a cluster
whose members are all taken being skipped.
References: Lloyd 1982; Arthur & Vassilvitskii 2007 (k-means++).
"""

from __future__ import annotations

import os

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, ranked_length, register


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API on this platform
        return os.cpu_count() or 1


def squared_distances(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[n, k] squared distances via |x|^2 - 2 x.c + |c|^2, one matrix product."""
    sq = (np.einsum("ij,ij->i", features, features)[:, None] - 2.0 * (features @ centroids.T)
          + np.einsum("ij,ij->i", centroids, centroids)[None, :])
    return np.maximum(sq, 0.0, out=sq)


def nearest_distinct(features: np.ndarray, centroids: np.ndarray, order: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """For each centroid in `order`, the nearest row not taken by an earlier centroid."""
    sq = squared_distances(features, centroids)
    taken = np.zeros(len(features), dtype=bool)
    chosen, distances = [], []
    for c in order:
        column = np.where(taken, np.inf, sq[:, c])
        row = int(np.argmin(column))
        taken[row] = True
        chosen.append(row)
        distances.append(float(np.sqrt(column[row])))
    return np.asarray(chosen, dtype=np.int64), np.asarray(distances)


def next_members(sq: np.ndarray, assignment: np.ndarray, order: np.ndarray,
                 taken: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` more rows, round by round over the clusters in `order`: each cluster's
    nearest member (rows assigned to it) not yet taken; exhausted clusters are skipped."""
    queues = []
    for c in order:
        members = np.flatnonzero(assignment == c)
        queues.append((c, members[np.argsort(sq[members, c], kind="stable")].tolist()))
    chosen: list[int] = []
    distances: list[float] = []
    while len(chosen) < count and any(queue for _, queue in queues):
        for c, queue in queues:
            while queue and taken[queue[0]]:
                queue.pop(0)
            if queue and len(chosen) < count:
                row = queue.pop(0)
                taken[row] = True
                chosen.append(row)
                distances.append(float(np.sqrt(sq[row, c])))
    return np.asarray(chosen, dtype=np.int64), np.asarray(distances)


@register("kmeans")
def kmeans_prototypes(data: ClassData, budget: int, seed: int, n_init: int = 3,
                      max_iter: int = 300, ranked: int | None = None,
                      threads: int | None = None) -> ClassSelection:
    from sklearn.cluster import KMeans  # imported when used: not on a cached rerun
    from threadpoolctl import threadpool_limits

    features = data.features
    model = KMeans(n_clusters=budget, init="k-means++", n_init=n_init, max_iter=max_iter,
                   random_state=seed)
    with threadpool_limits(limits=threads or available_cores()):
        assignment = model.fit_predict(features.astype(np.float32, copy=False))
    sizes = np.bincount(assignment, minlength=budget)
    order = np.argsort(-sizes, kind="stable")
    centroids = model.cluster_centers_.astype(np.float32)
    x = features.astype(np.float32, copy=False)
    indices, distances = nearest_distinct(x, centroids, order)
    extra = ranked_length(budget, ranked, len(x)) - budget
    if extra > 0:
        taken = np.zeros(len(x), dtype=bool)
        taken[indices] = True
        more, more_distances = next_members(squared_distances(x, centroids), assignment, order,
                                            taken, extra)
        indices = np.concatenate([indices, more])
        distances = np.concatenate([distances, more_distances])
    return ClassSelection(indices=indices, scores=distances)
