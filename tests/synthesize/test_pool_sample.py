"""A pool larger than the in-memory limit: the methods that hold the pool draw from a seeded,
class-stratified sample of it (recorded in the manifest, the rest counted as not selected),
instead of refusing the run; methods that read teacher signals read those of the sampled rows
by corpus position."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from distill_core.audit import RunAudit
from distill_core.config import load_config
from distill_core.errors import ArtifactError
from distill_core.pipeline import inputs
from distill_core.pipeline.inputs import (
    class_sample,
    features_at,
    selection_pool,
    streamed_pool,
)
from distill_core.signals.embeddings import features, matrix

LIMIT = 120  # of the SST-2 slice's 300 training rows


def _args(slice_dir: Path, tiny_encoder: Path, *extra: str) -> list[str]:
    return [f"data.data_dir={slice_dir}", f"signals.model={tiny_encoder}",
            "signals.precision=fp32", "run.seeds=[0,1]", "synthesize.per_class=3",
            "compute.cv_workers=1", *extra]


def test_class_sample_keeps_shares_and_each_class_its_ranked_rows() -> None:
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    picked = class_sample(labels, 100, 5, seed=0)
    assert np.all(np.diff(picked) > 0)  # sorted, distinct
    assert np.bincount(labels[picked]).tolist() == [90, 9, 5]  # class 2: 1 by share, 5 least
    assert np.array_equal(picked, class_sample(labels, 100, 5, seed=0))
    assert not np.array_equal(picked, class_sample(labels, 100, 5, seed=1))
    assert np.bincount(labels[class_sample(labels, 100, 20, seed=0)]).tolist() == [90, 20, 10]


# auto (the default) among recipes that hold the pool: its choice runs on the sample
@pytest.mark.parametrize("method", [
    ["synthesize.method=span_pursuit"],
    ["synthesize.method=auto", "synthesize.auto.candidates=[span_pursuit,facility_location]"]])
def test_a_pool_over_the_limit_is_sampled_and_every_row_accounted_for(
        slice_dir: Path, tiny_encoder: Path, tmp_path: Path, run_stages,
        monkeypatch: pytest.MonkeyPatch, method: list[str]) -> None:
    monkeypatch.setattr(inputs, "IN_MEMORY_POOL_ROWS", LIMIT)
    cfg = load_config(None, _args(slice_dir, tiny_encoder, *method))
    store, _ = run_stages(cfg, tmp_path / "runs", until="filter")
    pool = streamed_pool(cfg, store, None)
    sample = store.manifest("synthesize")["selection"]["pool_sample"]
    assert sample == {"rows": LIMIT, "of": pool.rows.num_rows, "seed": 0}
    assert pool.rows.num_rows > LIMIT
    # every candidate comes from the sample's rows
    kept = class_sample(pool.label_ids, LIMIT, 3 * cfg.synthesize.oversample, 0)
    sampled = set(pool.rows.take(kept).column("example_id").to_pylist())
    picked = set(store.read("synthesize").column("example_id").to_pylist())
    assert picked and picked <= sampled
    # the rows outside the sample are not selected: the funnel still balances
    counts = store.manifest("synthesize")["counts"]
    assert counts["rows_in"] == pool.rows.num_rows * 2
    assert all(f["balanced"] for f in RunAudit(store.root).funnel())
    # a pool within the limit is held whole: no sample, other picks
    monkeypatch.setattr(inputs, "IN_MEMORY_POOL_ROWS", 10_000)
    whole, _ = run_stages(cfg, tmp_path / "whole", until="synthesize")
    assert "pool_sample" not in whole.manifest("synthesize")["selection"]
    assert whole.manifest("synthesize")["counts"]["rows_in"] == pool.rows.num_rows * 2


def test_a_method_reading_teacher_signals_draws_from_the_sample_over_the_limit(
        slice_dir: Path, tiny_encoder: Path, tmp_path: Path, run_stages,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """gradmatch with the teacher's soft labels on a pool over the limit: picks from the
    sample, each pick carrying the teacher's soft label of its own row, read by position."""
    monkeypatch.setattr(inputs, "IN_MEMORY_POOL_ROWS", LIMIT)
    cfg = load_config(None, _args(slice_dir, tiny_encoder, "synthesize.method=gradmatch",
                                  "synthesize.soft_labels=true"))
    store, _ = run_stages(cfg, tmp_path / "runs", until="synthesize")
    pool = streamed_pool(cfg, store, None)
    assert store.manifest("synthesize")["selection"]["pool_sample"] == {
        "rows": LIMIT, "of": pool.rows.num_rows, "seed": 0}
    kept = class_sample(pool.label_ids, LIMIT, 3 * cfg.synthesize.oversample, 0)
    positions = pool.rows.positions[kept].astype(np.int64)
    ids = pool.rows.take(kept).column("example_id")
    picked = store.read("synthesize")
    assert set(picked.column("example_id").to_pylist()) <= set(ids.to_pylist())
    # the view by position, and by id in any order, are the whole teacher table's rows
    whole = store.read("teacher")
    row_of = {e: i for i, e in enumerate(whole.column("example_id").to_pylist())}
    rows = np.array([row_of[e] for e in ids.to_pylist()])
    expected = {"grad_logits": matrix(whole, "grad_logits")[rows],
                "el2n": whole.column("el2n").to_numpy()[rows],
                "soft_labels": matrix(whole, "soft_label")[rows]}
    by_position = inputs.teacher_at(store, positions, ids, 1.0)
    shuffled = np.random.default_rng(0).permutation(len(rows))
    by_id = inputs.teacher_view(store, [ids.to_pylist()[i] for i in shuffled], 1.0)
    for field, values in expected.items():
        assert np.allclose(getattr(by_position, field), values, atol=1e-6), field
        assert np.allclose(getattr(by_id, field), values[shuffled], atol=1e-6), field
    with pytest.raises(RuntimeError, match="no teacher signals for training rows"):
        inputs.teacher_view(store, ["0" * 16], 1.0)
    soft = dict(zip(ids.to_pylist(), by_position.soft_labels.tolist(), strict=True))
    for row in picked.select(["example_id", "soft_label"]).to_pylist():
        assert np.allclose(row["soft_label"], soft[row["example_id"]], atol=1e-6)
    with pytest.raises(ArtifactError, match="teacher stage's rows are not the corpus's"):
        inputs.teacher_at(store, positions, pa.chunked_array([ids.to_pylist()[::-1]]), 1.0)


def test_the_pool_read_by_position_is_the_whole_split_filtered(
        slice_dir: Path, tiny_encoder: Path, tmp_path: Path, run_stages) -> None:
    """`pool_at` reads the training rows the corpus filters kept, and their features, row
    group by row group: the same rows, columns and vectors as both whole tables read and
    filtered; embeddings that do not name the corpus rows asked for are refused."""
    cfg = load_config(None, _args(slice_dir, tiny_encoder, "filter.corpus=true"))
    store, _ = run_stages(cfg, tmp_path / "runs", until="clean")
    train, x = selection_pool(cfg, store)
    corpus, embedded = store.read("ingest"), store.read("signals")
    kept = set(store.read("clean").column("example_id").to_pylist())
    mask = pa.array([split == "train" and e in kept for split, e in zip(
        corpus.column("split").to_pylist(), corpus.column("example_id").to_pylist(),
        strict=True)])
    assert 0 < train.num_rows < pc.sum(pc.equal(corpus.column("split"), "train")).as_py()
    assert train.equals(corpus.filter(mask))
    expected = features(embedded.filter(mask))
    assert x.dtype == expected.dtype and np.array_equal(x, expected)
    positions = streamed_pool(cfg, store, None).rows.positions
    ids = train.column("example_id")
    with pytest.raises(RuntimeError, match="embeddings are not aligned with the corpus"):
        features_at(store, positions, pa.chunked_array([ids[1:], ids[:1]]))
