"""The teacher stage over a corpus of any size: fitted on training rows read by position,
then read out over the corpus batch by batch, each batch written as it is computed.

The stage held the corpus, its embeddings and a copy of the training rows' features at once:
about three times the vectors' bytes (5M rows of 384 floats is 7.7 GB before any copy). Now
it holds the fit rows' features (every training row up to `IN_MEMORY_POOL_ROWS`, a seeded,
class-stratified sample of that many above it: the selection pool's own limit and seed) and
one batch of rows. Up to the limit the teacher and every row it writes are the same as when
the stage held the corpus (the same rows, in corpus order, fit the same model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.stage_writer import StageWriter
from distill_core.artifacts.store import RunStore
from distill_core.pipeline.batches import (
    BATCH_ROWS,
    aligned_batches,
    rows_at,
    stage_batches,
    stage_rows,
)
from distill_core.pipeline.inputs import (
    IN_MEMORY_POOL_ROWS,
    POOL_SAMPLE_SEED,
    class_sample,
    features_at,
    signal_columns,
)
from distill_core.signals.embeddings import features, pair_texts
from distill_core.signals.teacher import TeacherSignals, teacher_table

# Corpus rows a fine-tuned teacher reads out per executor call (texts, logits and head inputs
# of this many rows held at a time; on Ray each call starts the actor pool once)
READOUT_ROWS = 262_144
ROWS_PER_BATCH = BATCH_ROWS  # corpus rows (and their vectors) a linear teacher reads out at once
ROW_COLUMNS = ["example_id", "split", "label_id"]


@dataclass
class FitRows:
    """The training rows a teacher is fitted on: sorted corpus positions and their labels."""

    positions: np.ndarray
    labels: np.ndarray
    training_rows: int

    def record(self) -> dict[str, Any]:
        """For the manifest: how many rows the teacher saw, of how many, and the sample's
        seed (None: every training row)."""
        sampled = len(self.positions) < self.training_rows
        return {"rows": int(len(self.positions)), "of": int(self.training_rows),
                "seed": POOL_SAMPLE_SEED if sampled else None}


def fit_rows(store: RunStore, limit: int | None = None) -> FitRows:
    """Every training row of the corpus (one pass over its split and label columns), or a
    seeded class-stratified sample of `limit` (default `IN_MEMORY_POOL_ROWS`) of them when
    there are more."""
    limit = IN_MEMORY_POOL_ROWS if limit is None else limit
    positions, labels, start = [], [], 0
    for rows in stage_batches(store, "ingest", ["split", "label_id"]):
        train = np.asarray(pc.equal(rows.column("split"), "train").to_numpy(
            zero_copy_only=False), dtype=bool)
        positions.append(start + np.flatnonzero(train))
        labels.append(rows.column("label_id").to_numpy()[train])
        start += rows.num_rows
    where = np.concatenate(positions) if positions else np.zeros(0, np.int64)
    label_ids = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    if len(where) <= limit:
        return FitRows(where, label_ids, len(where))
    keep = class_sample(label_ids, limit, 1, POOL_SAMPLE_SEED)
    return FitRows(where[keep], label_ids[keep], len(where))


def fit_features(store: RunStore, fit: FitRows) -> np.ndarray:
    """The fit rows' features, read row group by row group into one matrix."""
    ids, _ = rows_at(store, "ingest", fit.positions, ["example_id"])
    x, _ = features_at(store, fit.positions, ids.column("example_id"))
    return x


def fit_texts(store: RunStore, fit: FitRows) -> tuple[list[str], list[str] | None]:
    """The fit rows' texts (and second texts of a pair task), in corpus order."""
    table, _ = rows_at(store, "ingest", fit.positions, ["text", "text_pair"])
    return table.column("text").to_pylist(), pair_texts(table)


@dataclass
class SplitAccuracy:
    """The teacher's accuracy per split, summed batch by batch."""

    right: dict[str, int] = field(default_factory=lambda: {"train": 0, "eval": 0})
    seen: dict[str, int] = field(default_factory=lambda: {"train": 0, "eval": 0})

    def add(self, splits: pa.ChunkedArray | pa.Array, labels: np.ndarray,
            logits: np.ndarray) -> None:
        is_train = np.asarray(pc.equal(splits, "train").to_numpy(zero_copy_only=False),
                              dtype=bool)
        correct = logits.argmax(axis=1) == labels
        for split, mask in (("train", is_train), ("eval", ~is_train)):
            self.right[split] += int(correct[mask].sum())
            self.seen[split] += int(mask.sum())

    def result(self) -> dict[str, float | None]:
        return {split: self.right[split] / self.seen[split] if self.seen[split] else None
                for split in ("train", "eval")}


def write_linear_readout(store: RunStore, signals_of: Callable[[np.ndarray, np.ndarray],
                                                                TeacherSignals],
                         writer: StageWriter) -> tuple[int, SplitAccuracy]:
    """`signals_of(features, labels)` on every corpus row, walking the corpus and its
    embeddings side by side; each batch's teacher rows written. (rows, accuracy)."""
    accuracy, total = SplitAccuracy(), 0
    for _, rows, embedded in aligned_batches(store, ("ingest", ROW_COLUMNS),
                                             ("signals", signal_columns(store)),
                                             ROWS_PER_BATCH):
        if not rows.column("example_id").equals(embedded.column("example_id")):
            raise RuntimeError("embeddings are not aligned with the corpus (different run "
                               "inputs?)")
        labels = rows.column("label_id").to_numpy()
        signals = signals_of(features(embedded), labels)
        writer.write(teacher_table(rows.column("example_id"), rows.column("split"), signals))
        accuracy.add(rows.column("split"), labels, signals.logits)
        total += rows.num_rows
    return total, accuracy


def write_model_readout(store: RunStore,
                        read_out: Callable[[list[str], list[str] | None],
                                           tuple[np.ndarray, np.ndarray]],
                        signals_of: Callable[[np.ndarray, np.ndarray], TeacherSignals],
                        writer: StageWriter, progress: Callable[[int, int], None]
                        ) -> tuple[int, SplitAccuracy]:
    """A saved teacher model read out on the corpus `READOUT_ROWS` at a time:
    `read_out(texts, pairs)` gives (logits, head inputs); the teacher rows, with the head
    inputs, are written per batch. (rows, accuracy)."""
    accuracy, total, corpus_rows = SplitAccuracy(), 0, stage_rows(store, "ingest")
    for rows in stage_batches(store, "ingest", ROW_COLUMNS + ["text", "text_pair"],
                              READOUT_ROWS):
        logits, head_inputs = read_out(rows.column("text").to_pylist(), pair_texts(rows))
        labels = rows.column("label_id").to_numpy()
        signals = signals_of(logits, labels)
        writer.write(teacher_table(rows.column("example_id"), rows.column("split"), signals,
                                   head_inputs))
        accuracy.add(rows.column("split"), labels, signals.logits)
        total += rows.num_rows
        progress(total, corpus_rows)
    return total, accuracy
