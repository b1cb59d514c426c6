"""What every filter sees and returns.

A filter looks at rows in priority order (best first: rank for candidates,
file order for a corpus) within dedup groups (one per replicate for
candidates, one for a corpus) and returns the rows it drops, each with a
reason and a detail a person can check. It never drops silently and never
rewrites a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distill_core.ingest.normalize import normalize_text


@dataclass
class FilterInput:
    """Rows to filter and what filters may need about them, all aligned by position."""

    table: pa.Table                         # example_id, text, text_pair, label, label_id
    groups: np.ndarray                      # dedup scope of each row
    vectors: np.ndarray | None = None       # L2-normalised features
    label_prob: np.ndarray | None = None    # teacher probability of the row's own label
    eval_texts: list[str] | None = None     # every evaluation split's texts (pairs joined)
    eval_vectors: np.ndarray | None = None  # and their L2-normalised features

    def __len__(self) -> int:
        return self.table.num_rows

    def take(self, rows: np.ndarray) -> FilterInput:
        return FilterInput(
            table=self.table.take(pa.array(rows, pa.int64())), groups=self.groups[rows],
            vectors=None if self.vectors is None else self.vectors[rows],
            label_prob=None if self.label_prob is None else self.label_prob[rows],
            eval_texts=self.eval_texts, eval_vectors=self.eval_vectors)

    def texts(self) -> list[str]:
        """Each row's text, a pair's two sides joined by a space."""
        return joined_texts(self.table)

    def normalized_texts(self) -> list[str]:
        return [normalize_text(t) for t in self.texts()]

    def ids(self) -> list[str]:
        return self.table.column("example_id").to_pylist()


def joined_texts(table: pa.Table) -> list[str]:
    """Each row's `text`, with its `text_pair` appended after a space for pair tasks."""
    pairs = table.column("text_pair").to_pylist()
    return [t if p is None else f"{t} {p}"
            for t, p in zip(table.column("text").to_pylist(), pairs, strict=True)]


@dataclass
class Drop:
    """One dropped row: its position in the filter's input, why, and the evidence."""

    row: int
    reason: str
    detail: str
    field: str | None = "text"


def group_positions(groups: np.ndarray) -> list[np.ndarray]:
    """Row positions of each group, in input (priority) order."""
    return [np.flatnonzero(groups == g) for g in dict.fromkeys(groups.tolist())]
