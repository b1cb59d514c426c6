"""Features of generated rows, looked up by example id like those of real rows.

The `generate` artifact carries each generated line's embedding and teacher
probabilities; the filters, the evaluation and the benchmark harness read a
distilled row's features from the training split or, for a generated row,
from here. The same text generated in two replicates has one id and one row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distill_core.artifacts.store import RunStore
from distill_core.generate.candidates import list_matrix


@dataclass
class GeneratedFeatures:
    ids: list[str]
    x: np.ndarray  # [n, d] embeddings as the encoder wrote them
    y: np.ndarray  # [n] label ids
    label_prob: np.ndarray  # [n] the teacher's probability of the row's own label

    def extend(self, position: dict[str, int], x: np.ndarray) -> np.ndarray:
        """Append these rows after `x`: adds their ids to `position`, returns the stacked x."""
        offset = len(x)
        position.update({e: offset + j for j, e in enumerate(self.ids) if e not in position})
        return np.vstack([x, self.x.astype(x.dtype)]) if self.x.size else x


def generated_features(store: RunStore) -> GeneratedFeatures | None:
    """The generated rows' features, one per example id; None when the run generated none.
    A learned method's decoded rows (the `learn` stage) are read the same way."""
    stage = next((s for s in ("generate", "learn") if store.manifest(s) is not None), None)
    if stage is None:
        return None
    table = store.read(stage, columns=["example_id", "label_id", "embedding",
                                       "teacher_prob"])
    ids = table.column("example_id").to_pylist()
    first = sorted({e: i for i, e in reversed(list(enumerate(ids)))}.values())
    table = table.take(pa.array(first, pa.int64()))
    n = table.num_rows
    y = table.column("label_id").to_numpy().astype(np.int64)
    x = list_matrix(table, "embedding", np.float32)
    probs = list_matrix(table, "teacher_prob", np.float64)
    label_prob = probs[np.arange(n), y] if n else np.zeros(0)
    return GeneratedFeatures(table.column("example_id").to_pylist(), x, y, label_prob)
