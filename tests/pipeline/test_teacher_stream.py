"""The teacher stage batch by batch: the rows a teacher fitted on the whole training split
gives, and over the in-memory limit a teacher fitted on a seeded class-stratified sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from distill_core.config import load_config
from distill_core.pipeline import teacher_stream
from distill_core.pipeline.inputs import class_sample
from distill_core.signals.embeddings import features, matrix
from distill_core.signals.teacher import fit_teacher, teacher_signals

COLUMNS = ["logits", "soft_label", "grad_logits"]


def _config(slice_dir: Path):
    return load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]",
                              "run.name=teacher-stream", "filter.corpus=true",
                              "filter.teacher_consistency.enabled=true"])


def _reference(store, fit_on: np.ndarray | None = None):
    """The teacher of the whole tables: fitted on every training row (or the training rows
    `fit_on` picks), read out on every corpus row at once."""
    corpus, embeddings = store.read("ingest"), store.read("signals")
    x, labels = features(embeddings), corpus.column("label_id").to_numpy()
    train = np.flatnonzero(np.asarray(
        pc.equal(corpus.column("split"), "train").to_numpy(zero_copy_only=False)))
    fit = train if fit_on is None else train[fit_on]
    model = fit_teacher(x[fit], labels[fit])
    return corpus, teacher_signals(model, x, labels, len(store.manifest("ingest")
                                                         ["label_names"])), train


def test_streamed_teacher_equals_the_teacher_of_the_whole_tables(slice_dir: Path,
                                                                 tmp_path: Path, run_stages,
                                                                 monkeypatch) -> None:
    monkeypatch.setattr(teacher_stream, "ROWS_PER_BATCH", 64)
    store, _ = run_stages(_config(slice_dir), tmp_path / "runs", "teacher")
    corpus, whole, train = _reference(store)
    assert corpus.num_rows > 4 * 64  # several batches
    table = store.read("teacher")
    assert table.column("example_id").equals(corpus.column("example_id"))
    assert table.column("split").equals(corpus.column("split"))
    for column, expected in zip(COLUMNS, (whole.logits, whole.probabilities,
                                          whole.grad_logits), strict=True):
        assert np.array_equal(matrix(table, column), expected), column
    assert np.array_equal(table.column("loss").to_numpy(), whole.loss)
    manifest = store.manifest("teacher")
    assert manifest["fit_rows"] == {"rows": len(train), "of": len(train), "seed": None}
    labels = corpus.column("label_id").to_numpy()
    right = whole.logits.argmax(axis=1) == labels
    is_eval = np.ones(len(labels), bool)
    is_eval[train] = False
    assert manifest["accuracy"] == {"train": float(right[train].mean()),
                                    "eval": float(right[is_eval].mean())}
    assert manifest["counts"]["rows_in"] == manifest["counts"]["rows_out"] == corpus.num_rows


def test_over_the_limit_the_teacher_fits_a_seeded_class_sample(slice_dir: Path,
                                                               tmp_path: Path, run_stages,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(teacher_stream, "IN_MEMORY_POOL_ROWS", 60)
    store, _ = run_stages(_config(slice_dir), tmp_path / "runs", "teacher")
    corpus = store.read("ingest")
    labels = corpus.column("label_id").to_numpy()
    is_train = np.asarray(pc.equal(corpus.column("split"), "train").to_numpy(
        zero_copy_only=False))
    sample = class_sample(labels[is_train], 60, 1, 0)
    assert len(sample) == 60 and len(np.unique(labels[is_train][sample])) == 2
    _, sampled, train = _reference(store, sample)
    _, everything, _ = _reference(store)
    table = store.read("teacher")
    assert table.num_rows == corpus.num_rows  # every row read out, not only the sample's
    assert np.array_equal(matrix(table, "logits"), sampled.logits)
    assert not np.allclose(sampled.logits, everything.logits)  # the sample made a difference
    assert store.manifest("teacher")["fit_rows"] == {"rows": 60, "of": len(train), "seed": 0}
