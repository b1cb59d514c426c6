"""One class's feature rows spilled to a raw float32 file and read back a chunk at a time.

Selection on a corpus larger than memory walks each class's rows several times (k-means
epochs, one herding pass per pick). Reading them from the embeddings' Parquet parts every
time would decode every class's rows for each pass; so one pass over the parts writes each
class's rows, in pool order, to a file of its own (`SpillWriter`), and the selectors read
that file back chunk by chunk (`ClassRows`) with plain reads, never a mapping that would keep
the whole file resident.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill_core.synthesize.centering import centered

CHUNK_ROWS = 16_384  # rows a selector holds at a time (16 MB at 256 float32 dimensions)


@dataclass(frozen=True)
class ClassRows:
    """The rows of one class: `rows` x `dim` float32 in `path`, in pool order."""

    path: str
    rows: int
    dim: int

    def centered_on(self, center: np.ndarray) -> ClassRows:
        """The file rewritten as these rows less `center`, L2-normalised again
        (`synthesize.center_features`), chunk by chunk: the selectors then read them as
        plainly as raw rows, however many passes they make, and the spill keeps one copy."""
        target = Path(f"{self.path}.centred")
        with target.open("wb") as handle:
            for _, chunk in self.chunks():
                np.ascontiguousarray(centered(chunk, center), dtype=np.float32).tofile(handle)
        os.replace(target, self.path)
        return ClassRows(self.path, self.rows, self.dim)

    def __len__(self) -> int:
        return self.rows

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a float32 array."""
        stop = min(stop, self.rows)
        count = max(stop - start, 0) * self.dim
        values = np.fromfile(self.path, dtype=np.float32, count=count,
                             offset=start * self.dim * 4)
        return values.reshape(-1, self.dim)

    def chunk_count(self) -> int:
        return -(-self.rows // CHUNK_ROWS)

    def chunks(self, order: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) `CHUNK_ROWS` at a time, in file order or in chunk order `order`."""
        chunk_rows = CHUNK_ROWS
        starts = np.arange(0, self.rows, chunk_rows)
        for start in (starts if order is None else starts[order]):
            yield int(start), self.read(int(start), int(start) + chunk_rows)

    def load(self) -> np.ndarray:
        """Every row (for a class small enough to hold)."""
        return self.read(0, self.rows)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (sorted, distinct), in one pass of plain reads: a mapping of the
        file would count its touched pages, and the kernel's fault-around neighbours, in RSS."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for start, chunk in self.chunks():
            lo, hi = np.searchsorted(rows, [start, start + len(chunk)])
            out[lo:hi] = chunk[rows[lo:hi] - start]
        return out


class SpillWriter:
    """Appends rows to one file per class under `folder`; `close` lists them."""

    def __init__(self, folder: Path, dim: int | None = None) -> None:
        self.folder, self.dim = folder, dim
        folder.mkdir(parents=True, exist_ok=True)
        self.rows: dict[int, int] = {}
        self.total: np.ndarray | None = None  # float64 sum of every row written

    def path(self, label: int) -> Path:
        return self.folder / f"class-{label}.f32"

    def add(self, labels: np.ndarray, features: np.ndarray) -> None:
        """Append each row of `features` to its label's file (rows keep their order)."""
        if self.dim is None:
            self.dim = int(features.shape[1])
        if features.shape[1] != self.dim:
            raise ValueError(f"rows of {features.shape[1]} dimensions, not {self.dim}")
        batch_sum = features.sum(axis=0, dtype=np.float64)  # no float64 copy of the batch
        self.total = batch_sum if self.total is None else self.total + batch_sum
        for label in np.unique(labels):
            rows = np.ascontiguousarray(features[labels == label], dtype=np.float32)
            with self.path(int(label)).open("ab") as handle:
                rows.tofile(handle)
            self.rows[int(label)] = self.rows.get(int(label), 0) + len(rows)

    def mean(self) -> np.ndarray | None:
        """The mean of every row written (None before the first)."""
        count = sum(self.rows.values())
        return None if self.total is None or not count else (self.total / count)

    def close(self) -> dict[int, ClassRows]:
        return {label: ClassRows(str(self.path(label)), rows, int(self.dim or 0))
                for label, rows in sorted(self.rows.items())}
