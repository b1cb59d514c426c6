"""Semantic duplicates, SemDeDup-style: k-means on embeddings, then cosine ≥ ε in a cluster.

Each group's rows are clustered (k-means, about `cluster_size` rows per
cluster), so only rows of one cluster are compared. Inside a cluster rows are
visited from the most representative (nearest the centroid) outwards; a row
is dropped when its cosine similarity to an already kept row is at least
`epsilon`. So every set of semantic duplicates keeps its most representative
member.

Reason: `semantic_duplicate`. References: Abbas et al., SemDeDup, 2023.
"""

from __future__ import annotations

import numpy as np

from distill_core.filter.base import Drop, FilterInput, group_positions


def _clusters(vectors: np.ndarray, cluster_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans, MiniBatchKMeans  # when used: not on a cached rerun

    k = max(1, len(vectors) // cluster_size)
    if k == 1:
        return np.zeros(len(vectors), dtype=np.int64), vectors.mean(axis=0, keepdims=True)
    model = (MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=4096)
             if len(vectors) > 20_000 else KMeans(n_clusters=k, random_state=seed, n_init=1))
    labels = model.fit_predict(vectors)
    return labels, model.cluster_centers_


def semantic_dedup(data: FilterInput, epsilon: float, cluster_size: int, seed: int
                   ) -> list[Drop]:
    if data.vectors is None:
        raise ValueError("semantic dedup needs embeddings")
    ids = data.ids()
    drops = []
    for rows in group_positions(data.groups):
        vectors = data.vectors[rows].astype(np.float32)
        labels, centroids = _clusters(vectors, cluster_size, seed)
        for cluster in np.unique(labels):
            members = np.flatnonzero(labels == cluster)
            distance = np.linalg.norm(vectors[members] - centroids[cluster], axis=1)
            members = members[np.argsort(distance, kind="stable")]
            similarity = vectors[members] @ vectors[members].T
            kept: list[int] = []
            for position, member in enumerate(members):
                if kept:
                    best = int(np.argmax(similarity[position, kept]))
                    if similarity[position, kept[best]] >= epsilon:
                        drops.append(Drop(
                            int(rows[member]), "semantic_duplicate",
                            f"cosine {similarity[position, kept[best]]:.3f} with "
                            f"{ids[rows[members[kept[best]]]]}"))
                        continue
                kept.append(position)
    return sorted(drops, key=lambda d: d.row)
