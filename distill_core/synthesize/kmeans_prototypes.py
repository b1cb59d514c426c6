"""`kmeans`: per class, k-means with k = budget, then the real example nearest each centroid.

This is what DiLM (Maekawa et al., 2024) and CondenseLM (Shen et al., 2025)
report as "K-Center": prototypes that cover the class's modes. (Greedy
farthest-first k-center is a different method that picks outliers on
normalised sentence embeddings.)

Attributes: `n_init` k-means++ restarts, `max_iter` Lloyd iterations.
Input: one class's feature matrix. Output: for each centroid, largest cluster
first, the index of the nearest row not already taken; score = its Euclidean
distance to the centroid.
References: Lloyd 1982; Arthur & Vassilvitskii 2007 (k-means++).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from distill_core.synthesize.base import ClassData, ClassSelection, register


def nearest_distinct(features: np.ndarray, centroids: np.ndarray, order: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """For each centroid in `order`, the nearest row not taken by an earlier centroid."""
    # Squared distances via the expansion |x|^2 - 2 x.c + |c|^2, one matrix product.
    sq = (np.einsum("ij,ij->i", features, features)[:, None] - 2.0 * features @ centroids.T
          + np.einsum("ij,ij->i", centroids, centroids)[None, :])
    np.maximum(sq, 0.0, out=sq)
    taken = np.zeros(len(features), dtype=bool)
    chosen, distances = [], []
    for c in order:
        column = np.where(taken, np.inf, sq[:, c])
        row = int(np.argmin(column))
        taken[row] = True
        chosen.append(row)
        distances.append(float(np.sqrt(column[row])))
    return np.asarray(chosen, dtype=np.int64), np.asarray(distances)


@register("kmeans")
def kmeans_prototypes(data: ClassData, budget: int, seed: int, n_init: int = 3,
                      max_iter: int = 300) -> ClassSelection:
    features = data.features
    model = KMeans(n_clusters=budget, init="k-means++", n_init=n_init, max_iter=max_iter,
                   random_state=seed)
    assignment = model.fit_predict(features.astype(np.float32, copy=False))
    sizes = np.bincount(assignment, minlength=budget)
    order = np.argsort(-sizes, kind="stable")
    centroids = model.cluster_centers_.astype(np.float32)
    indices, distances = nearest_distinct(features.astype(np.float32, copy=False), centroids,
                                          order)
    return ClassSelection(indices=indices, scores=distances)
