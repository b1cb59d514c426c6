"""Semantic dedup over a corpus without holding it: the rows that reach it are spilled to a
scratch folder as they stream by, then clustered and compared a coarse cluster at a time.

`add` appends each batch's surviving rows (corpus positions, float32 vectors) to one file.
`drops` then runs `semantic.py`'s steps on that file: the coarse centroids fitted on the same
seeded sample of rows, every row assigned to one in the same chunks (read back one chunk at a
time), the rows scattered into one file per coarse cluster in one pass, and each coarse
cluster's rows read back and deduplicated as the in-memory version does (`fine_drops`). So it
drops the rows, with the cosines and kept rows, that `semantic_drops` over the same rows in
memory drops, while holding the fit sample (at most `FIT_ROWS` rows), one chunk or coarse
cluster of vectors (about `COARSE_ROWS` rows; k-means leaves them uneven, up to twice that
at 1M rows), and about 16 bytes a row. The spill is one
copy of the vectors at a time on disk; the caller removes the folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from distill_core.filter import semantic
from distill_core.filter.semantic import SemanticDrops

READ_ROWS = 65_536  # rows read back from the spill at a time


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

    def _chunks(self, rows: int, step: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, vectors) of the spill's first `rows` rows, `step` at a time."""
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            yield start, stop, self._read(self._path, start, stop)

    def _gather(self, rows: np.ndarray, total: int) -> np.ndarray:
        """The spilled vectors at `rows` (ascending), read a chunk at a time."""
        out = np.empty((len(rows), self.dim), np.float32)
        for start, stop, chunk in self._chunks(total, READ_ROWS):
            lo, hi = np.searchsorted(rows, [start, stop])
            out[lo:hi] = chunk[rows[lo:hi] - start]
        return out

    def drops(self) -> SemanticDrops:
        """The semantic duplicates among the rows added, as corpus positions."""
        self.close()
        positions = self.positions
        self._positions = [positions]  # concatenated once
        n = len(positions)
        if not n:
            return SemanticDrops.concat([])
        coarse = semantic.coarse_centroids(self._gather(semantic.fit_rows(n, self.seed), n),
                                           n, self.seed)
        labels = np.empty(n, np.int32)
        for start, stop, chunk in self._chunks(n, semantic.chunk_rows(len(coarse))):
            labels[start:stop] = semantic.nearest(chunk, coarse)[0]
        members = semantic.coarse_members(labels, len(coarse))
        paths = self._scatter(labels, n)
        self._path.unlink()  # every row is in its coarse cluster's file now
        found = []
        for rows in members:
            path = paths[int(labels[rows[0]])]
            vectors = self._read(path, 0, len(rows))
            path.unlink()
            found.append(semantic.fine_drops(vectors, rows, self.cluster_size, self.seed,
                                             self.epsilon))
        merged = SemanticDrops.concat(found)
        return SemanticDrops(positions[merged.dropped], merged.cosine,
                             positions[merged.kept])

    def _scatter(self, labels: np.ndarray, n: int) -> dict[int, Path]:
        """Each coarse cluster's rows written to a file of its own, in spill order, in one
        pass over the spill (a file opened for each chunk that has rows of it)."""
        paths = {}
        for start, stop, chunk in self._chunks(n, READ_ROWS):
            held = labels[start:stop]
            for cluster in np.unique(held).tolist():
                path = paths.setdefault(cluster, self.folder / f"coarse-{cluster}.f32")
                with path.open("ab") as handle:
                    chunk[held == cluster].tofile(handle)
        return paths
