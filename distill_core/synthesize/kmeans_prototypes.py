"""`kmeans`: per class, k-means with k = budget, then the real example nearest each centroid.

This is what DiLM (Maekawa et al., 2024) and CondenseLM (Shen et al., 2025)
report as "K-Center": prototypes that cover the class's modes. (Greedy
farthest-first k-center is a different method that picks outliers on
normalised sentence embeddings.)

The clustering is faiss's k-means (Johnson et al., 2019), made for corpora of
millions of rows: every row of the class is used (no subsampling), `n_init`
restarts from seeded k-means++ rows (the lowest inertia kept), at most
`max_iter` Lloyd iterations each, stopped at scikit-learn's tolerance (faiss
alone has none and would run them all), Euclidean centroids as before (not
spherical: the features are L2-normalised, their means are not renormalised).
The thread count is explicit (`threads`, default the cores this process may
use, restored afterwards): left to OpenMP's default, threads oversubscribe a
shared machine. The result is the same for any count.

Attributes: `n_init` restarts, `max_iter` Lloyd iterations, `threads` faiss threads.
Input: one class's feature matrix. Output: for each centroid, largest cluster
first, the index of the nearest row not already taken; score = its Euclidean
distance to the centroid. Ranked beyond the budget (the filter stage's reserve),
the order continues round by round over the clusters in the same order: each
cluster's next-nearest member (by k-means assignment) not yet taken, a cluster
whose members are all taken being skipped.
References: Lloyd 1982; Arthur & Vassilvitskii 2007 (k-means++); Johnson, Douze &
Jégou, Billion-scale similarity search with GPUs (faiss), 2019.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, ranked_length, register


def squared_distances(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[n, k] squared distances via |x|^2 - 2 x.c + |c|^2, one matrix product."""
    sq = (np.einsum("ij,ij->i", features, features)[:, None] - 2.0 * features @ centroids.T
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


ROUND = 5  # Lloyd iterations between two convergence checks


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def faiss_threads(threads: int | None) -> Iterator[int]:
    """faiss's OpenMP threads set to `threads` (None: `usable_cores()`), restored on exit."""
    import faiss  # imported when used: not on a cached rerun

    before = faiss.omp_get_max_threads()
    count = threads or usable_cores()
    faiss.omp_set_num_threads(count)
    try:
        yield count
    finally:
        faiss.omp_set_num_threads(before)


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k seed rows by D^2 sampling (Arthur & Vassilvitskii, 2007): k passes over the rows."""
    chosen = [int(rng.integers(len(x)))]
    closest = squared_distances(x, x[chosen]).ravel()
    for _ in range(1, k):
        total = float(closest.sum())
        row = (int(rng.choice(len(x), p=closest / total)) if total > 0
               else int(rng.integers(len(x))))
        chosen.append(row)
        np.minimum(closest, squared_distances(x, x[[row]]).ravel(), out=closest)
    return x[chosen].copy()


def faiss_centroids(x: np.ndarray, k: int, seed: int, n_init: int, max_iter: int,
                    threads: int | None = None, tol: float = 1e-4) -> np.ndarray:
    """[k, d] k-means centroids of the float32 rows `x` (all of them), seeded.

    Each of `n_init` restarts starts from k-means++ seeds and runs faiss's Lloyd iterations
    in rounds of `ROUND`, stopping once a round moves the centroids by less than
    scikit-learn's tolerance (`tol` x the mean feature variance, summed squared shift) or
    after `max_iter` iterations; the restart with the lowest inertia is kept."""
    import faiss

    rng = np.random.default_rng(seed)
    threshold = tol * float(np.mean(np.var(x, axis=0)))
    best, best_inertia = None, np.inf
    with faiss_threads(threads):
        for restart in range(n_init):
            centroids = kmeans_plus_plus(x, k, rng)
            done = 0
            while done < max_iter:
                step = min(ROUND, max_iter - done)
                model = faiss.Kmeans(x.shape[1], k, niter=step, nredo=1, verbose=False,
                                     seed=(seed + 7919 * restart + done) % 2**31,
                                     spherical=False, min_points_per_centroid=1,
                                     max_points_per_centroid=-(-len(x) // k) + 1)
                model.train(x, init_centroids=centroids)
                shift = float(((model.centroids - centroids) ** 2).sum())
                centroids, done = np.array(model.centroids, dtype=np.float32), done + step
                if shift <= threshold:
                    break
            inertia = float(squared_distances(x, centroids).min(axis=1).sum())
            if inertia < best_inertia:
                best, best_inertia = centroids, inertia
    assert best is not None
    return best


@register("kmeans")
def kmeans_prototypes(data: ClassData, budget: int, seed: int, n_init: int = 3,
                      max_iter: int = 300, ranked: int | None = None,
                      threads: int | None = None) -> ClassSelection:
    x = np.ascontiguousarray(data.features, dtype=np.float32)
    centroids = faiss_centroids(x, budget, seed, n_init, max_iter, threads)
    sq = squared_distances(x, centroids)
    assignment = np.argmin(sq, axis=1)
    sizes = np.bincount(assignment, minlength=budget)
    order = np.argsort(-sizes, kind="stable")
    indices, distances = nearest_distinct(x, centroids, order)
    extra = ranked_length(budget, ranked, len(x)) - budget
    if extra > 0:
        taken = np.zeros(len(x), dtype=bool)
        taken[indices] = True
        more, more_distances = next_members(sq, assignment, order, taken, extra)
        indices = np.concatenate([indices, more])
        distances = np.concatenate([distances, more_distances])
    return ClassSelection(indices=indices, scores=distances)
