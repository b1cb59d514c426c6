"""Semantic dedup over a corpus without holding it: the rows that reach it are spilled to a
scratch folder as they stream by, then clustered and compared a bucket of clusters at a time.

`add` appends each batch's surviving rows (corpus positions, float32 vectors) to one file.
`drops` then runs `semantic.py`'s steps on that file: the centroids fitted on the same seeded
sample of rows, every row assigned in the same chunks (read back one chunk at a time), the
rows ordered by cluster and distance, then scattered into bucket files of whole clusters
(about `BUCKET_ROWS` rows each) and each bucket's clusters compared as the in-memory version
compares them. So it drops the rows, with the cosines and kept rows, that `semantic_dedup`
over the same rows in memory drops, while holding the fit sample (at most `FIT_ROWS` rows),
one chunk or bucket of vectors, and about 16 bytes a row (position, cluster, distance,
order). The caller removes the folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distill_core.filter import semantic
from distill_core.filter.semantic import SemanticDrops

BUCKET_ROWS = 131_072  # rows of whole clusters compared from one bucket file
READ_ROWS = 65_536     # rows read back from the spill at a time for the fit sample


class SemanticSpill:
    """The rows that reach semantic dedup, spilled under `folder`, and their duplicates."""

    def __init__(self, folder: Path, epsilon: float, cluster_size: int, seed: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.epsilon, self.cluster_size, self.seed = epsilon, cluster_size, seed
        self._path = folder / "vectors.f32"
        self._file = self._path.open("wb")
        self._positions: list[np.ndarray] = []
        self.dim = 0

    def add(self, positions: np.ndarray, vectors: np.ndarray) -> None:
        """Append rows (ascending corpus positions, after every earlier call's)."""
        if not len(positions):
            return
        self.dim = vectors.shape[1]
        np.ascontiguousarray(vectors, dtype=np.float32).tofile(self._file)
        self._positions.append(np.asarray(positions, np.int64))

    @property
    def positions(self) -> np.ndarray:
        """The corpus positions of every row added, ascending."""
        return (np.concatenate(self._positions) if self._positions
                else np.zeros(0, np.int64))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def _read(self, path: Path, start: int, stop: int) -> np.ndarray:
        count = (stop - start) * self.dim
        out = np.fromfile(path, np.float32, count=count, offset=start * self.dim * 4)
        return out.reshape(stop - start, self.dim)

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        """The spilled vectors at `rows` (ascending), read a chunk at a time."""
        out = np.empty((len(rows), self.dim), np.float32)
        total = int(len(self.positions))
        for start in range(0, total, READ_ROWS):
            lo, hi = np.searchsorted(rows, [start, start + READ_ROWS])
            if hi > lo:
                chunk = self._read(self._path, start, min(total, start + READ_ROWS))
                out[lo:hi] = chunk[rows[lo:hi] - start]
        return out

    def drops(self) -> SemanticDrops:
        """The semantic duplicates among the rows added, as corpus positions."""
        self.close()
        positions = self.positions
        n = len(positions)
        if not n:
            return SemanticDrops.concat([])
        centroids = semantic.fit_centroids(self._gather(semantic.fit_rows(n, self.seed)),
                                           semantic.cluster_count(n, self.cluster_size),
                                           self.seed)
        labels = np.empty(n, np.int32)
        distance = np.empty(n, np.float32)
        for start, stop in semantic.assign_chunks(n, len(centroids)):
            labels[start:stop], distance[start:stop] = semantic.assign(
                self._read(self._path, start, stop), centroids)
        order = semantic.cluster_order(np.arange(n), labels, distance)
        buckets = self._scatter(order, labels)
        self._path.unlink()  # every row is in its bucket's file now
        merged = SemanticDrops.concat([self._bucket_drops(path, rows, labels)
                                       for path, rows in buckets])
        return SemanticDrops(positions[merged.dropped], merged.cosine,
                             positions[merged.kept])

    def _scatter(self, order: np.ndarray, labels: np.ndarray
                 ) -> list[tuple[Path, np.ndarray]]:
        """Each bucket's file and its rows in cluster order: the clusters that start within
        one `BUCKET_ROWS` stretch of `order` form a bucket, whose rows are written to a file
        of its own (in spill order) in one pass over the spill."""
        ordered_labels = labels[order]
        starts = np.flatnonzero(np.r_[True, ordered_labels[1:] != ordered_labels[:-1]])
        bucket_in_order = np.repeat((starts // BUCKET_ROWS).astype(np.int32),
                                    np.diff(np.r_[starts, len(order)]))
        bucket_of_row = np.empty(len(order), np.int32)
        bucket_of_row[order] = bucket_in_order
        paths = {b: self.folder / f"bucket-{b}.f32" for b in np.unique(bucket_in_order).tolist()}
        files = {b: path.open("wb") for b, path in paths.items()}
        try:
            for start in range(0, len(order), READ_ROWS):
                stop = min(len(order), start + READ_ROWS)
                chunk = self._read(self._path, start, stop)
                held = bucket_of_row[start:stop]
                for b in np.unique(held).tolist():
                    chunk[held == b].tofile(files[b])
        finally:
            for handle in files.values():
                handle.close()
        edges = np.flatnonzero(np.r_[True, bucket_in_order[1:] != bucket_in_order[:-1]])
        return [(paths[int(bucket_in_order[lo])], order[lo:hi])
                for lo, hi in zip(edges, np.r_[edges[1:], len(order)], strict=True)]

    def _bucket_drops(self, path: Path, rows: np.ndarray, labels: np.ndarray
                      ) -> SemanticDrops:
        """One bucket's duplicates, as spill rows: its file holds `rows` (given in cluster
        order) in spill order."""
        in_file = np.sort(rows)
        vectors = self._read(path, 0, len(in_file))[np.searchsorted(in_file, rows)]
        path.unlink()
        return semantic.greedy_drops(vectors, rows, labels[rows], self.epsilon)
