"""Semantic duplicates, SemDeDup-style: k-means on embeddings, then cosine ≥ ε in a cluster.

Rows are clustered in two levels so that the work per row stays the same whatever the
input's size: coarse k-means with one cluster per `COARSE_ROWS` rows (fitted on at most
`FIT_ROWS` rows: a seeded sample above it; every row then goes to its nearest coarse
centroid), then, within each coarse cluster, k-means with one cluster per `cluster_size`
rows fitted on all of its rows. Only rows of one fine cluster are compared. An input of fewer
than twice `COARSE_ROWS` rows is one coarse cluster: plain SemDeDup. Inside a cluster rows are
visited from the most representative (nearest the centroid; ties in input order) outwards; a
row is dropped when its cosine similarity to an already kept row of its cluster is at least
`epsilon`. So every set of semantic duplicates keeps its most representative member.

The steps are separate functions so that the corpus clean stage can run them over vectors
spilled to disk (`semantic_spill.py`, a coarse cluster at a time) and drop exactly the rows
this in-memory version drops: the fit sample, the assignment chunks and each coarse
cluster's work are the same arrays in both.

Reason: `semantic_duplicate`. References: Abbas et al., SemDeDup, 2023.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distill_core.filter.base import Drop, FilterInput, group_positions

COARSE_ROWS = 262_144     # rows per coarse cluster (compared in memory one at a time)
FIT_ROWS = 262_144        # rows the coarse centroids are fitted on (a seeded sample above)
MINIBATCH_ABOVE = 20_000  # fit rows above which k-means is mini-batch
ASSIGN_CELLS = 1 << 24    # rows x centroids of one assignment product (64 MB of float32)
CHUNK_ROWS = 65_536       # rows of one assignment product at most
BLOCK_ROWS = 1024         # a cluster's rows compared at a time


def cluster_count(rows: int, cluster_size: int) -> int:
    """k: one cluster per `cluster_size` rows, at least one."""
    return max(1, rows // cluster_size)


def coarse_count(rows: int) -> int:
    """Coarse clusters: one per `COARSE_ROWS` rows, at least one."""
    return max(1, rows // COARSE_ROWS)


def fit_rows(rows: int, seed: int) -> np.ndarray:
    """Positions (ascending) of the rows the coarse centroids are fitted on: all of them up to
    `FIT_ROWS`, a seeded sample of that many above."""
    if rows <= FIT_ROWS:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, FIT_ROWS, replace=False))


def fit_centroids(sample: np.ndarray, k: int, seed: int) -> np.ndarray:
    """[k, d] k-means centroids of the sample's rows (float32); their mean when k is 1."""
    if k == 1:
        return sample.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    from sklearn.cluster import KMeans, MiniBatchKMeans  # when used: not on a cached rerun

    k = min(k, len(sample))
    model = (MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=4096)
             if len(sample) > MINIBATCH_ABOVE else KMeans(n_clusters=k, random_state=seed,
                                                          n_init=1))
    return np.asarray(model.fit(sample).cluster_centers_, dtype=np.float32)


def chunk_rows(k: int) -> int:
    """Rows assigned to `k` centroids by one matrix product (at most `CHUNK_ROWS`: the
    spilled version reads that many rows' vectors at a time)."""
    return max(1, min(CHUNK_ROWS, ASSIGN_CELLS // k))


def assign(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid (int32) and its Euclidean distance to it (float32)."""
    sq = (np.einsum("ij,ij->i", vectors, vectors)[:, None] - 2.0 * (vectors @ centroids.T)
          + np.einsum("ij,ij->i", centroids, centroids)[None, :])
    labels = np.argmin(sq, axis=1)
    nearest = np.maximum(sq[np.arange(len(sq)), labels], 0.0)
    return labels.astype(np.int32), np.sqrt(nearest).astype(np.float32)


@dataclass
class SemanticDrops:
    """Dropped rows, the cosine to the kept row that made each a duplicate, and that row
    (row numbers of the caller's choosing: positions in a group, or in the corpus)."""

    dropped: np.ndarray
    cosine: np.ndarray
    kept: np.ndarray

    @staticmethod
    def concat(parts: list[SemanticDrops]) -> SemanticDrops:
        if not parts:
            return SemanticDrops(np.zeros(0, np.int64), np.zeros(0, np.float32),
                                 np.zeros(0, np.int64))
        return SemanticDrops(*(np.concatenate([getattr(p, f) for p in parts])
                               for f in ("dropped", "cosine", "kept")))


def cluster_order(rows: np.ndarray, labels: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Indices into `rows` sorted by cluster, then distance to the centroid, then row."""
    return np.lexsort((rows, distance, labels))


def _cluster_drops(members: np.ndarray, epsilon: float
                   ) -> list[tuple[int, float, int]]:
    """(member, cosine, kept member) for each of one cluster's rows (in visiting order) whose
    cosine to a member kept before it is at least `epsilon`; `BLOCK_ROWS` rows are compared
    at a time with the members kept before them and with each other."""
    kept: list[int] = []
    found = []
    for lo in range(0, len(members), BLOCK_ROWS):
        hi = min(len(members), lo + BLOCK_ROWS)
        columns = np.r_[np.asarray(kept, np.int64), np.arange(lo, hi)]
        similarity = members[lo:hi] @ members[columns].T
        look = list(range(len(kept)))  # columns of the members kept so far
        before = len(kept)
        for i in range(hi - lo):
            if look:
                row = similarity[i, look]
                best = int(np.argmax(row))
                if row[best] >= epsilon:
                    found.append((lo + i, float(row[best]), int(columns[look[best]])))
                    continue
            look.append(before + i)
            kept.append(lo + i)
    return found


def greedy_drops(vectors: np.ndarray, order: np.ndarray, labels: np.ndarray, epsilon: float
                 ) -> SemanticDrops:
    """Each cluster's rows visited in `order` (`cluster_order`'s: whole clusters, each from its
    centroid outwards): the rows whose cosine to a row kept before them in their cluster is
    at least `epsilon`, as indices into `vectors` (one cluster's rows copied at a time)."""
    if not len(order):
        return SemanticDrops.concat([])
    dropped, cosine, kept_by = [], [], []
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        members = order[start:stop]
        for member, similarity, kept in _cluster_drops(vectors[members], epsilon):
            dropped.append(members[member])
            cosine.append(similarity)
            kept_by.append(members[kept])
    return SemanticDrops(np.asarray(dropped, np.int64), np.asarray(cosine, np.float32),
                         np.asarray(kept_by, np.int64))


def nearest(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`assign` over the rows `chunk_rows` at a time."""
    labels = np.empty(len(vectors), np.int32)
    distance = np.empty(len(vectors), np.float32)
    step = chunk_rows(len(centroids))
    for start in range(0, len(vectors), step):
        labels[start:start + step], distance[start:start + step] = assign(
            vectors[start:start + step], centroids)
    return labels, distance


def fine_drops(vectors: np.ndarray, rows: np.ndarray, cluster_size: int, seed: int,
               epsilon: float) -> SemanticDrops:
    """One coarse cluster's duplicates (`vectors` of its `rows`, in input order): k-means with
    one cluster per `cluster_size` rows fitted on all of them, then each cluster's rows
    compared from its centroid outwards."""
    centroids = fit_centroids(vectors, cluster_count(len(vectors), cluster_size), seed)
    labels, distance = nearest(vectors, centroids)
    order = cluster_order(np.arange(len(vectors)), labels, distance)
    found = greedy_drops(vectors, order, labels, epsilon)
    return SemanticDrops(rows[found.dropped], found.cosine, rows[found.kept])


def coarse_centroids(sample: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """The coarse centroids of `rows` input rows, fitted on `sample` (`fit_rows`' rows)."""
    return fit_centroids(sample, coarse_count(rows), seed)


def semantic_drops(vectors: np.ndarray, cluster_size: int, seed: int, epsilon: float
                   ) -> SemanticDrops:
    """The semantic duplicates among `vectors` (rows in priority order), as row numbers."""
    vectors = np.asarray(vectors, dtype=np.float32)
    coarse = coarse_centroids(vectors[fit_rows(len(vectors), seed)], len(vectors), seed)
    labels, _ = nearest(vectors, coarse)
    parts = []
    for rows in coarse_members(labels, len(coarse)):
        parts.append(fine_drops(vectors[rows], rows, cluster_size, seed, epsilon))
    return SemanticDrops.concat(parts)


def coarse_members(labels: np.ndarray, clusters: int) -> list[np.ndarray]:
    """Each coarse cluster's rows (ascending), empty ones left out."""
    order = np.argsort(labels, kind="stable")
    edges = np.searchsorted(labels[order], np.arange(clusters + 1))
    return [order[lo:hi] for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


def semantic_dedup(data: FilterInput, epsilon: float, cluster_size: int, seed: int
                   ) -> list[Drop]:
    if data.vectors is None:
        raise ValueError("semantic dedup needs embeddings")
    ids = data.ids()
    drops = []
    for rows in group_positions(data.groups):
        found = semantic_drops(data.vectors[rows], cluster_size, seed, epsilon)
        drops += [Drop(int(rows[d]), "semantic_duplicate",
                       f"cosine {c:.3f} with {ids[rows[k]]}")
                  for d, c, k in zip(found.dropped, found.cosine, found.kept, strict=True)]
    return sorted(drops, key=lambda d: d.row)
