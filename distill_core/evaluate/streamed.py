"""The evaluation's training pool without the training split in memory.

`FeaturePool` holds every training row with its features: what the `full` baseline needs (it
fits on all of them), O(corpus) memory. Without `full`, evaluation touches a few rows only:
each replicate's distilled rows and each seed's random draw. `StreamedFeaturePool` holds the
training split's label ids (4 bytes a row) and reads the rows a fit asks for, with their
features, in one streamed pass over the corpus and its embeddings; rows once read are kept
(a few hundred at most), so every learner's fits and the fit count reuse them, and the
distilled rows of every replicate come in one pass ahead (`prefetch`).
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
        self._rows: pa.Table | None = None  # training rows read so far, with their features
        self._x: np.ndarray | None = None
        self._corpus_at = np.zeros(0, np.int64)  # corpus position of each row of `_rows`
        self._at_position: dict[int, int] = {}  # training position -> row of `_rows`
        self._at_id: dict[str, int] = {}  # example_id -> row of `_rows`
        self._absent: set[str] = set()  # ids looked for and not in the training split

    def _fetch(self, positions: np.ndarray, ids: list[str], force: bool = False,
               split: str | None = None) -> tuple[pa.Table, np.ndarray] | None:
        """Read, in one streamed pass, the training rows at `positions` or with `ids` that no
        earlier read brought in; every fit of every learner then reuses them (an evaluation
        touches the same few rows many times: counted, then fitted, once per learner).
        With `split`, every row of that split comes in the same pass and is returned."""
        wanted = np.setdiff1d(np.unique(np.asarray(positions, dtype=np.int64)),
                              np.fromiter(self._at_position, np.int64,
                                          len(self._at_position)))
        new_ids = [e for e in dict.fromkeys(ids) if e not in self._at_id
                   and e not in self._absent]
        if not len(wanted) and not new_ids and not force and split is None:
            return None
        by_id = ids_pick(new_ids) if new_ids else None
        seen, found = {"train": 0}, []

        def pick(rows: pa.Table, start: int) -> np.ndarray:
            train = _is_train(rows)
            at = seen["train"] + np.cumsum(train) - 1
            seen["train"] += int(train.sum())
            mask = train & np.isin(at, wanted)
            if by_id is not None:
                mask |= train & np.asarray(by_id(rows, start), dtype=bool)
            found.append(at[mask])
            if split is not None:
                mask |= np.asarray(pc.equal(rows.column("split"), split).to_numpy(
                    zero_copy_only=False), dtype=bool)
            return mask

        table, x, corpus_at = corpus_where(self.store, pick, COLUMNS)
        other = None
        if split is not None:
            train = _is_train(table)
            other = (table.filter(pa.array(~train)), x[~train])
            table, x, corpus_at = table.filter(pa.array(train)), x[train], corpus_at[train]
        offset = self._rows.num_rows if self._rows is not None else 0
        self._rows = table if self._rows is None else pa.concat_tables([self._rows, table])
        self._x = x if self._x is None else np.concatenate([self._x, x])
        self._corpus_at = np.concatenate([self._corpus_at, corpus_at])
        positions_read = np.concatenate(found) if found else np.zeros(0, np.int64)
        for i, (at, example_id) in enumerate(zip(positions_read.tolist(),
                                                 table.column("example_id").to_pylist(),
                                                 strict=True)):
            self._at_position[at] = offset + i
            self._at_id[example_id] = offset + i
        self._absent.update(e for e in new_ids if e not in self._at_id)
        return other

    def read_rows(self, ids: list[str]) -> tuple[pa.Table, np.ndarray, np.ndarray] | None:
        """The training rows with `ids` that earlier reads brought in, their features and
        corpus positions, in corpus order; None when any id was not read (the filters then
        read the corpus themselves: `StreamedFilterContext.share_reads`)."""
        if self._rows is None or self._x is None or any(e not in self._at_id for e in ids):
            return None
        at = np.unique(np.fromiter((self._at_id[e] for e in ids), np.int64, len(ids)))
        at = at[np.argsort(self._corpus_at[at], kind="stable")]
        return self._rows.take(pa.array(at, pa.int64())), self._x[at], self._corpus_at[at]

    def prefetch(self, ids: list[str], split: str) -> tuple[pa.Table, np.ndarray]:
        """Read the training rows with `ids` (a run's distilled rows) ahead, and return every
        row of `split` (the evaluation split) with its features, in one pass."""
        other = self._fetch(np.zeros(0, np.int64), ids, split=split)
        assert other is not None
        return other

    def _by_position(self, indices: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """Training rows at `indices` (positions in the training split), in that order."""
        self._fetch(indices, [])
        assert self._rows is not None and self._x is not None
        at = np.fromiter((self._at_position[int(i)] for i in indices), np.int64, len(indices))
        return self._rows.take(pa.array(at, pa.int64())), self._x[at]

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
        self._fetch(np.zeros(0, np.int64), ids, force=self._x is None)
        found = [e for e in dict.fromkeys(ids) if e in self._at_id]
        at = np.fromiter((self._at_id[e] for e in found), np.int64, len(found))
        assert self._x is not None
        x = self._x[at]
        position = {e: i for i, e in enumerate(found)}
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
