"""The evaluation's training pool without the training split in memory.

`FeaturePool` holds every training row with its features: what the `full` baseline needs (it
fits on all of them), O(corpus) memory. Without `full`, evaluation touches a few rows only:
each replicate's distilled rows and each seed's random draw. `StreamedFeaturePool` holds the
training split's label ids (4 bytes a row) and reads the rows a fit asks for, with their
features, in one streamed pass over the corpus and its embeddings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.store import RunStore
from distill_core.evaluate.data import learner_data
from distill_core.generate.features import GeneratedFeatures
from distill_core.learners import TrainingRows
from distill_core.pipeline.batches import stage_batches
from distill_core.pipeline.inputs import POOL_COLUMNS, corpus_where, ids_pick

if TYPE_CHECKING:
    from distill_core.learners.embeds import LearnedSource

COLUMNS = POOL_COLUMNS + ["split"]


def _is_train(rows: pa.Table) -> np.ndarray:
    return np.asarray(pc.equal(rows.column("split"), "train").to_numpy(zero_copy_only=False),
                      dtype=bool)


class StreamedFeaturePool:
    """`FeaturePool`'s `replicate`, `sample`, `take_rows` and `train_y`, reading rows on demand
    (no `full`: the `full` baseline uses the in-memory pool)."""

    def __init__(self, store: RunStore, generated: GeneratedFeatures | None = None,
                 learned: LearnedSource | None = None) -> None:
        self.store, self.generated, self.learned = store, generated, learned
        labels = [rows.column("label_id").to_numpy()[_is_train(rows)].astype(np.int32)
                  for rows in stage_batches(store, "ingest", ["split", "label_id"])]
        self.train_y = np.concatenate(labels) if labels else np.zeros(0, np.int32)

    def _by_position(self, indices: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """Training rows at `indices` (positions in the training split), in that order."""
        wanted = np.unique(np.asarray(indices, dtype=np.int64))
        seen = {"train": 0}

        def pick(rows: pa.Table, _start: int) -> np.ndarray:
            train = _is_train(rows)
            at = seen["train"] + np.cumsum(train) - 1
            seen["train"] += int(train.sum())
            hit = np.minimum(np.searchsorted(wanted, at), max(len(wanted) - 1, 0))
            return train & (wanted[hit] == at) if len(wanted) else np.zeros(len(train), bool)

        table, x, _ = corpus_where(self.store, pick, COLUMNS)
        order = np.searchsorted(wanted, np.asarray(indices, dtype=np.int64))
        return table.take(pa.array(order, pa.int64())), x[order]

    def take_rows(self, indices: np.ndarray) -> pa.Table:
        """Training rows by position, as `train.take` gives them."""
        return self._by_position(indices)[0].select(POOL_COLUMNS)

    def sample(self, indices: np.ndarray) -> TrainingRows:
        """Rows of the training split by position (a baseline's subset)."""
        table, x = self._by_position(indices)
        return TrainingRows(learner_data(table, x))

    def full(self) -> TrainingRows:
        raise RuntimeError("the streamed pool does not hold the whole training split; the "
                           "`full` baseline reads it with `FeaturePool`")

    def replicate(self, distilled: pa.Table, replicate: int) -> TrainingRows:
        """One replicate of a distilled set, with its weights and soft labels when it has them:
        its rows' features from the training split or, for generated rows, the generate stage."""
        subset = distilled.filter(pc.equal(distilled.column("replicate"), replicate))
        ids = subset.column("example_id").to_pylist()
        train_pick = ids_pick(ids)
        table, x, _ = corpus_where(self.store, lambda rows, start: train_pick(rows, start)
                                   & _is_train(rows), COLUMNS)
        position = {e: i for i, e in enumerate(table.column("example_id").to_pylist())}
        if self.generated is not None:
            x = self.generated.extend(position, x)
        rows = np.fromiter((position[e] for e in ids), dtype=np.int64, count=len(ids))
        weights = subset.column("weight").to_numpy()
        soft = None
        if subset.num_rows and subset.column("soft_label").null_count == 0:
            soft = np.asarray(subset.column("soft_label").to_pylist(), dtype=np.float64)
        synthetic = (None if self.learned is None else self.learned.rows_for(replicate, ids))
        return TrainingRows(learner_data(subset, x[rows]),
                            weights=None if np.allclose(weights, 1.0) else weights, soft=soft,
                            synthetic=synthetic)
