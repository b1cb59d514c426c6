"""The filters' context read from a run folder on demand (`StreamedFilterContext`): only the
rows being filtered, with their features and teacher p(label), and the evaluation split, so
filtering a few thousand candidates of a 5M-row corpus holds a few thousand vectors. The
evaluate stage's pool can share the rows it has read (`share_reads`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.store import RunStore
from distill_core.errors import ArtifactError
from distill_core.filter.base import FilterInput, joined_texts
from distill_core.filter.stage import FilterContext
from distill_core.generate.features import generated_features
from distill_core.pipeline.batches import stage_batches
from distill_core.pipeline.inputs import corpus_where, ids_pick
from distill_core.signals.embeddings import matrix


def teacher_label_prob(store: RunStore, positions: np.ndarray, label_ids: np.ndarray
                       ) -> np.ndarray:
    """The teacher's p(own label) of the corpus rows at `positions` (ascending), streamed."""
    out, offset, at = [], 0, 0
    for rows in stage_batches(store, "teacher", ["soft_label"]):
        hi = int(np.searchsorted(positions, offset + rows.num_rows))
        if hi > at:
            soft = matrix(rows.take(pa.array(positions[at:hi] - offset)), "soft_label")
            out.append(soft[np.arange(hi - at), label_ids[at:hi]])
        offset, at = offset + rows.num_rows, hi
    if at < len(positions):
        raise ArtifactError("the teacher stage has fewer rows than the corpus; rerun the "
                            "command to recompute the stages")
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine by dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# A lookup of rows read already: (rows, features, corpus positions) of the asked-for example
# ids in corpus order, or None when any of them was not read.
ReadRows = Callable[[list[str]], "tuple[pa.Table, np.ndarray, np.ndarray] | None"]


class StreamedFilterContext(FilterContext):
    """The filters' context read from the run folder on demand: `input_for` reads only the
    asked-for rows' features (and teacher p(label)) in one streamed pass, with the eval split,
    so filtering a few thousand candidates of a 5M-row corpus holds a few thousand vectors.
    Filtering every training row at once through `input_for` holds every row's features:
    O(corpus) memory; the corpus clean stage streams instead (`pipeline/clean_stream.py`)."""

    def __init__(self, store: RunStore, with_teacher: bool) -> None:
        super().__init__(ids={})
        self.store, self.with_teacher = store, with_teacher
        self._generated = generated_features(store)
        self._read_already: ReadRows | None = None

    def share_reads(self, evaluation: pa.Table, eval_x: np.ndarray, read_already: ReadRows
                    ) -> None:
        """Take the evaluation split (`evaluation`'s rows in corpus order, their features) and
        a lookup of training rows read already, with their features and corpus positions
        (None when it lacks any asked-for row): the evaluate stage's pool has read both, so
        filtering a random draw that it just read costs no second pass over the corpus."""
        self._eval_texts = joined_texts(evaluation)
        self._eval_vectors = normalised(eval_x)
        self._read_already = read_already

    @property  # type: ignore[override]
    def eval_texts(self) -> list[str] | None:
        if self._eval_texts is None:
            self._read([])
        return self._eval_texts

    @eval_texts.setter
    def eval_texts(self, texts: list[str] | None) -> None:
        self._eval_texts = texts

    @property  # type: ignore[override]
    def eval_vectors(self) -> np.ndarray | None:
        if self._eval_texts is None:
            self._read([])
        return self._eval_vectors

    @eval_vectors.setter
    def eval_vectors(self, vectors: np.ndarray | None) -> None:
        self._eval_vectors = vectors

    def _read(self, wanted: list[str]) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]:
        """The non-eval rows named in `wanted` (and, on the first call, the eval split, kept on
        self): rows, normalised features, corpus positions and which rows are eval rows."""
        if self._eval_texts is not None and self._read_already is not None:
            known = self._read_already(wanted)
            if known is not None:  # training rows only: none is an eval row
                rows, x, positions = known
                return rows, normalised(x), positions, np.zeros(rows.num_rows, dtype=bool)
        columns = ["example_id", "split", "label_id", "text", "text_pair"]
        splits = ("eval",) if self._eval_texts is None else ()
        rows, x, positions = corpus_where(self.store, ids_pick(wanted, splits), columns)
        x = normalised(x)
        is_eval = np.asarray(pc.equal(rows.column("split"), "eval").to_numpy(
            zero_copy_only=False), dtype=bool)
        if splits:
            self._eval_texts = joined_texts(rows.filter(pa.array(is_eval)))
            self._eval_vectors = x[is_eval]
        return rows, x, positions, is_eval

    def input_for(self, table: pa.Table, groups: np.ndarray) -> FilterInput:
        rows, x, positions, is_eval = self._read(table.column("example_id").to_pylist())
        label_prob = (teacher_label_prob(self.store, positions, rows.column("label_id")
                                         .to_numpy()) if self.with_teacher else None)
        ids = {e: i for i, e in enumerate(rows.column("example_id").to_pylist())
               if not is_eval[i]}
        if self._generated is not None:  # generated rows: features from the generate stage
            x = normalised(self._generated.extend(ids, x))
            if label_prob is not None:
                label_prob = np.concatenate([label_prob, self._generated.label_prob])
        return FilterContext(ids, x, label_prob, self._eval_texts,
                             self._eval_vectors).input_for(table, groups)


def filter_context(store: RunStore, with_teacher: bool) -> FilterContext:
    """The filters' context (normalised features, teacher p(own label), the eval split),
    read on demand for the rows being filtered (`StreamedFilterContext`)."""
    return StreamedFilterContext(store, with_teacher)
